"""The recovery sweep: the database is the source of truth for work, the broker only a way to hand it out.

``work_recover`` (run by Celery beat every ``WORK_RECOVER_EVERY_S`` seconds, and by ``manage.py
work_recover``) queues again, once per stall, whatever made no progress for ``WORK_STALLED_MINUTES``:

- scan uploads still queued or processing (``ScanUpload.heartbeat_at``): processed again from their
  file (the pages of the interrupted run, image files included, are replaced);
- export and learning jobs not finished (``heartbeat_at``): run again from the start;
- email deliveries still ``queued`` (``queued_at``): never handed to the SMTP server, so sent at
  most once (``sending`` ones are the teacher's call, ``emails.email_unknown_retry``);
- scripts with boxes not yet read, in an exam where nothing was read (no ``read_at``) for that long:
  read again (reading is idempotent), and the exam's identities matched for what is read, so one
  missing script does not keep the whole class unmatched.

Every step may run twice, or in two sweeps at once, without harm: re-queued work is claimed by one run
(jobs), locked (deliveries) or idempotent (reading). Work queued again ``WORK_REQUEUE_MAX`` times without
progress in between is given up and logged: it is what stops the worker, not a lost message.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from annotations.models import AnswerBox
from grader.models import Exam, ScanUpload, Script
from grader.learning import services as learning
from grader.learning.models import LearningJob
from grader.outputs import emails
from grader.outputs import services as outputs
from grader.outputs.models import ExportJob
from grader.reading import services as reading
from grader.reading.models import Answer, ScriptIdentity
from grader.reading.selectors import IDENTITY_LABELS, scripts_unread
from grader.scans.services import scan_upload_restart

from .models import Job, Requeue, stalled_before

logger = logging.getLogger(__name__)



@dataclass
class Recovered:
    """What one sweep queued again (counts) and what it gave up on (sentences, for the log)."""

    uploads: int = 0
    exports: int = 0
    learning: int = 0
    emails: int = 0
    scripts: int = 0
    identities: int = 0  # exams whose identities were matched for what is read
    given_up: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{self.uploads} upload(s), {self.exports} export job(s), {self.learning} learning job(s), {self.emails} email(s), {self.scripts} script(s) queued again; "
                 f"identities matched in {self.identities} exam(s)"]
        return "; ".join(parts + [f"gave up: {text}" for text in self.given_up])


def work_recover() -> Recovered:
    """Queue again every piece of work that stalled (see the module docstring); returns what it did."""
    found = Recovered()
    uploads_recover(found)
    jobs_recover(found)
    found.emails = emails.email_stalled_requeue()
    reading_recover(found)
    if found.uploads or found.exports or found.learning or found.emails or found.scripts or found.identities or found.given_up:
        logger.warning("Recovery: %s", found)
    return found


def _requeue_allowed(key: str, *, last_progress) -> tuple[bool, bool]:
    """Count one more queuing of the work ``key`` (reset when it made progress since the last one):
    (allowed, just given up). Called inside a transaction."""
    mark, created = Requeue.objects.select_for_update().get_or_create(key=key, defaults={"at": timezone.now()})
    if not created:
        mark.count = mark.count + 1 if mark.at >= last_progress else 1
        mark.at = timezone.now()
        mark.save(update_fields=["at", "count"])
    return mark.count <= settings.WORK_REQUEUE_MAX, mark.count == settings.WORK_REQUEUE_MAX + 1


def uploads_recover(found: Recovered) -> None:
    """Process again every scan upload queued or processing with no page done for ``WORK_STALLED_MINUTES``."""
    stalled = ScanUpload.objects.filter(status__in=[ScanUpload.Status.QUEUED, ScanUpload.Status.PROCESSING],
                                        heartbeat_at__lt=stalled_before())
    for upload in stalled:
        with transaction.atomic():
            allowed, given_up = _requeue_allowed(f"upload:{upload.pk}", last_progress=upload.heartbeat_at)
            if not allowed:
                if given_up:
                    error = (f"Stopped after {settings.WORK_REQUEUE_MAX} tries: the worker stopped while processing "
                             "it each time (the worker's log says why). Process again to try once more.")
                    ScanUpload.objects.filter(pk=upload.pk, status=upload.status).update(
                        status=ScanUpload.Status.FAILED, error=error)
                    found.given_up.append(f"upload {upload.pk}")
                continue
            restarted = scan_upload_restart(upload=upload)
            if restarted.heartbeat_at > upload.heartbeat_at:  # restarted now, not by another sweep a moment ago
                # Its heartbeat is the restart's: a page processed after it is progress.
                Requeue.objects.filter(key=f"upload:{upload.pk}").update(at=restarted.heartbeat_at)
                found.uploads += 1


def jobs_recover(found: Recovered) -> None:
    """Run again from the start every export or learning job not finished and with no heartbeat for
    ``WORK_STALLED_MINUTES`` (a learning job is done before it has read the exam again with what it learned)."""
    for model, restart, name in ((ExportJob, lambda job: outputs.export_restart(job=job), "exports"),
                                 (LearningJob, lambda job: learning.reader_learn_restart(job=job), "learning")):
        unfinished = Q(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]) | Q(status=Job.Status.DONE, finished_at=None)
        for job in model.objects.filter(unfinished, heartbeat_at__lt=stalled_before()):
            # Each recovery is a restart and a claim: two attempts.
            if job.attempts >= 2 * settings.WORK_REQUEUE_MAX:
                error = (f"Stopped after {job.attempts // 2} tries: the worker stopped during it each time "
                         "(the worker's log says why). Start it again to try once more.")
                if model.objects.filter(pk=job.pk, attempts=job.attempts, status=job.status).update(
                        status=Job.Status.FAILED, error=error, finished_at=timezone.now()):
                    found.given_up.append(f"{model._meta.verbose_name} {job.pk}")
                continue
            restart(job)
            setattr(found, name, getattr(found, name) + 1)


def _last_progress(exam_id: int):
    """The last sign of reading work in the exam: a box read, a script made, a box drawn or moved."""
    times = [
        Answer.objects.filter(script__exam_id=exam_id).aggregate(at=Max("read_at"))["at"],
        ScriptIdentity.objects.filter(script__exam_id=exam_id).aggregate(at=Max("read_at"))["at"],
        Script.objects.filter(exam_id=exam_id).aggregate(at=Max("created_at"))["at"],
        AnswerBox.objects.filter(exam_id=exam_id).aggregate(at=Max("updated_at"))["at"],
    ]
    return max(time for time in times if time is not None)


def reading_recover(found: Recovered) -> None:
    """Queue reading again for the unread scripts of every exam where reading stalled, and match its
    identities for what is read."""
    before = stalled_before()
    for exam_id, script_ids in scripts_unread().items():
        last = _last_progress(exam_id)
        if last >= before:
            continue  # still being read (or just queued)
        with transaction.atomic():
            mark = Requeue.objects.select_for_update().filter(key=f"read:{exam_id}").first()
            if mark and mark.at >= before:
                continue  # queued again less than WORK_STALLED_MINUTES ago
            allowed, given_up = _requeue_allowed(f"read:{exam_id}", last_progress=last)
            if not allowed:
                if given_up:
                    found.given_up.append(f"reading {len(script_ids)} script(s) of exam {exam_id}")
                continue
            found.scripts += reading.exam_read_enqueue(exam=Exam.objects.get(pk=exam_id),
                                                       scripts=Script.objects.filter(pk__in=script_ids))
        if ScriptIdentity.objects.filter(script__exam_id=exam_id, read_at__isnull=False).exists() and \
                AnswerBox.objects.filter(exam_id=exam_id, parent=None, label__in=IDENTITY_LABELS).exists():
            reading.exam_identity_match(exam_id=exam_id)
            found.identities += 1
