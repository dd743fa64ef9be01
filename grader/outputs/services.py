"""Export jobs: every generated file (scored scripts, spreadsheet, sample report, backup) is made by a
Celery task from an ``ExportJob``, so the teacher sees progress and downloads the file when it is done.

A department head may ask for the sample report of any exam of their department; every other kind
needs the right to change the exam (they carry the whole class's data, or the exam itself).
"""

from __future__ import annotations

import logging
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation

from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from grader.inputs import whole_number_parse
from grader.models import Exam, User
from grader.recovery.jobs import (
    DB_ERRORS,
    JobLost,
    db_reconnect,
    db_retrying,
    job_beat,
    job_cancel,
    job_claim,
    job_end,
    job_restart,
)
from grader.selectors import exam_can_change
from ml.score_stats import BandsRefused
from ml.scoring import marks_text

from . import backup, pdf, spreadsheet
from .models import ExportJob
from .selectors import ScriptResult, script_results

logger = logging.getLogger(__name__)

Kind = ExportJob.Kind
READ_ONLY_KINDS = {Kind.SAMPLE_REPORT}
SAMPLE_N_MAX = 50


class ExportRefused(ValueError):
    """The request cannot make a file; the message says why, for the teacher."""


def export_kind_allowed(*, user: User, exam: Exam, kind: str) -> bool:
    return kind in READ_ONLY_KINDS or exam_can_change(user=user, exam=exam)


def file_stem(text: str) -> str:
    """``text`` made safe as a file name on every system (letters, digits, spaces, ``-_.()``; dashes become "-")."""
    stem = re.sub(r"[^\w\-. ()]+", "_", re.sub(r"[\u2010-\u2015]", "-", text)).strip(" ._")
    return stem[:120] or "file"


def script_pdf_name(*, result: ScriptResult) -> str:
    """``<student ID>.pdf``, or ``script-<number>.pdf`` for a script with no student."""
    if result.student:
        return f"{file_stem(result.student.student_id)}.pdf"
    return f"script-{result.script.number}.pdf"


def _sample_params(*, exam: Exam, raw: dict) -> dict:
    n = whole_number_parse(str(raw.get("n") or 3))
    if n is None:
        raise ExportRefused("Scripts per band must be a whole number.")
    if not 1 <= n <= SAMPLE_N_MAX:
        raise ExportRefused(f"Scripts per band must be between 1 and {SAMPLE_N_MAX}.")
    pass_mark = raw.get("pass_mark")
    if pass_mark in (None, ""):
        return {"n": n, "pass_mark": None}
    try:
        mark = Decimal(str(pass_mark))
    except InvalidOperation as error:
        raise ExportRefused(f"The pass mark {str(pass_mark)[:20]!r} is not a number of marks.") from error
    if not mark.is_finite() or mark < 0:
        raise ExportRefused("The pass mark must be a number of marks, 0 or more.")
    total = exam.questions.aggregate(total=Sum("max_score"))["total"] or 0
    if mark > total:
        raise ExportRefused(f"The pass mark must be at most the exam's total of {marks_text(total)} marks.")
    return {"n": n, "pass_mark": float(mark)}


def _params_clean(*, exam: Exam, kind: str, raw: dict) -> dict:
    if kind == Kind.SCRIPT_PDF:
        number = whole_number_parse(str(raw.get("script", "")))
        script = exam.scripts.filter(number=number).first() if number is not None else None
        if script is None:
            raise ExportRefused("Choose a script of this exam.")
        return {"script_id": script.pk, "number": script.number}
    if kind == Kind.SAMPLE_REPORT:
        return _sample_params(exam=exam, raw=raw)
    return {}


@transaction.atomic
def export_create(*, exam: Exam, kind: str, params: dict, user: User) -> ExportJob:
    """Queue a job making a file of ``kind`` (an ``ExportJob.Kind`` value) from the request's ``params``.

    The same file already being made is not made twice: its job is returned. Raises ``ExportRefused``
    for an unknown kind, bad parameters or an exam with nothing to export, and ``PermissionError``
    when ``user`` may not have this kind.
    """
    if kind not in Kind.values:
        raise ExportRefused(f"Unknown kind of file {kind!r}.")
    if not export_kind_allowed(user=user, exam=exam, kind=kind):
        raise PermissionError("You can read this exam but not make this file.")
    if kind != Kind.BACKUP and not exam.scripts.exists():
        raise ExportRefused("This exam has no scripts yet: upload the scans first.")
    clean = _params_clean(exam=exam, kind=kind, raw=params)
    running = ExportJob.objects.select_for_update().filter(
        exam=exam, kind=kind, params=clean, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]
    ).first()
    if running and running.stalled:
        return export_restart(job=running)  # never hand back a job nobody is making
    if running:
        return running
    job = ExportJob.objects.create(exam=exam, kind=kind, params=clean, created_by=user)
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from .tasks import export_run_task

    export_run_task.delay(job_id)


def export_restart(*, job: ExportJob) -> ExportJob:
    """Make the file again from the start ("Make again" on a stalled or failed job, or the recovery
    sweep); a run still going stops at its next step."""
    return job_restart(ExportJob, job.pk, enqueue=_enqueue)


def export_cancel(*, job: ExportJob) -> ExportJob:
    """Stop making the file (a run still going stops at its next step); a finished job is left as it is."""
    return job_cancel(ExportJob, job.pk)


def _progress_for(job: ExportJob) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        job_beat(job, done=done, total=total)

    return progress


def scored_script_files(
    *, exam: Exam, progress: Callable[[int, int], None] | None = None
) -> Iterator[tuple[str, bytes]]:
    """Every script's scored PDF with its file name (``script_pdf_name``), in script order.

    A student claimed by two scripts gets ``<ID>.pdf`` and ``<ID>-script-<number>.pdf``.
    """
    results = script_results(exam=exam)
    names: set[str] = set()
    for done, result in enumerate(results, start=1):
        name = script_pdf_name(result=result)
        if name in names:
            name = f"{name[:-4]}-script-{result.script.number}.pdf"
        names.add(name)
        yield name, pdf.script_pdf(result=result)
        if progress:
            progress(done, len(results))


def _scripts_zip(*, job: ExportJob, progress: Callable[[int, int], None]) -> tuple[File, str]:
    spool = tempfile.TemporaryFile()
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in scored_script_files(exam=job.exam, progress=progress):
            archive.writestr(name, data)
    spool.seek(0)
    return File(spool), f"{file_stem(job.exam.title)} - scored scripts.zip"


def _script_pdf(*, job: ExportJob, progress: Callable[[int, int], None]) -> tuple[File, str]:
    [result] = script_results(exam=job.exam, script_ids=[job.params["script_id"]])
    progress(0, 1)
    return ContentFile(pdf.script_pdf(result=result)), f"{file_stem(job.exam.title)} - {script_pdf_name(result=result)}"


def _spreadsheet(*, job: ExportJob, progress: Callable[[int, int], None]) -> tuple[File, str]:
    return ContentFile(spreadsheet.scores_workbook(exam=job.exam)), f"{file_stem(job.exam.title)} - scores.xlsx"


def _sample_report(*, job: ExportJob, progress: Callable[[int, int], None]) -> tuple[File, str]:
    data = pdf.sample_report_pdf(exam=job.exam, n=job.params["n"], pass_mark=job.params["pass_mark"], progress=progress)
    return ContentFile(data), f"{file_stem(job.exam.title)} - sample report.pdf"


def _backup(*, job: ExportJob, progress: Callable[[int, int], None]) -> tuple[File, str]:
    spool = tempfile.TemporaryFile()
    backup.exam_backup_write(exam=job.exam, out=spool, progress=progress)
    spool.seek(0)
    return File(spool), f"{file_stem(job.exam.title)} - backup {timezone.localtime():%Y-%m-%d %H%M}.zip"


# How each kind of export is made: (job, progress) -> (file, the name it downloads under). A test
# checks that every ``ExportJob.Kind`` has its maker.
FILE_MAKERS: dict[str, Callable[..., tuple[File, str]]] = {
    Kind.SCRIPT_PDF: _script_pdf,
    Kind.SCRIPTS_ZIP: _scripts_zip,
    Kind.SPREADSHEET: _spreadsheet,
    Kind.SAMPLE_REPORT: _sample_report,
    Kind.BACKUP: _backup,
}


def _file_make(*, job: ExportJob, progress: Callable[[int, int], None]) -> tuple[File, str]:
    """The file for ``job`` and the name it downloads under; a kind without a maker is refused."""
    maker = FILE_MAKERS.get(job.kind)
    if maker is None:
        raise ExportRefused(f"markdesk cannot make an export of kind {job.kind!r}.")
    return maker(job=job, progress=progress)


def export_run(*, job_id: int) -> ExportJob | None:
    """Make the job's file (the Celery task's body). A failure is recorded on the job, never raised,
    except a broken database connection: the job goes back to the queue and the task is retried.

    Only a queued job, or a running one that stalled, is run (``job_claim``), so a redelivered task
    does no harm. Once a file is made, older finished files of the same kind and parameters are
    deleted: the newest wins. Returns None for a job that no longer exists.
    """
    job = job_claim(ExportJob, job_id, select=("exam",))
    if job is None:
        return ExportJob.objects.filter(pk=job_id).first()
    try:
        content, filename = _file_make(job=job, progress=_progress_for(job))
        with content:
            job.file.save(filename, content, save=False)
    except JobLost:
        return job
    except (BandsRefused, ExportRefused) as error:
        return _job_failed(job=job, error=str(error))
    except DB_ERRORS:
        # The retry claims it again; were retries to run out, the recovery sweep would.
        db_reconnect()
        db_retrying(lambda: ExportJob.objects.filter(pk=job.pk, attempts=job.attempts).update(
            status=ExportJob.Status.QUEUED))
        raise
    except Exception as error:  # a broken page image or a full disk: the teacher must hear of it
        logger.exception("Export job %s (%s for exam %s) failed", job.pk, job.kind, job.exam_id)
        return _job_failed(job=job, error=f"Making the file failed: {error}")
    job = job_end(job, ExportJob.Status.DONE, file=job.file.name, filename=filename, done=max(job.done, job.total))
    if ExportJob.objects.filter(pk=job.pk, file=job.file.name).exists():
        older = ExportJob.objects.filter(exam=job.exam, kind=job.kind, params=job.params).exclude(pk=job.pk)
        for other in older.filter(status__in=[ExportJob.Status.DONE, ExportJob.Status.FAILED, ExportJob.Status.CANCELLED]):
            export_delete(job=other)
    else:  # another run ended it (cancelled, restarted): this run's file is nobody's
        job.file.delete(save=False)
    return job


def _job_failed(*, job: ExportJob, error: str) -> ExportJob:
    logger.warning("Export job %s for exam %s failed: %s", job.pk, job.exam_id, error)
    return job_end(job, ExportJob.Status.FAILED, error=error)


def export_delete(*, job: ExportJob) -> None:
    if job.file:
        job.file.delete(save=False)
    job.delete()
