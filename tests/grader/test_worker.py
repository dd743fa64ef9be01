"""A real Celery worker process takes a task from the configured broker and writes to the configured database.

On the embedded default that is a filesystem broker and a SQLite file; in CI's second pass it is
Redis and PostgreSQL over real connections.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files import File
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult
from openpyxl import load_workbook

from annotations import services as box_services
from grader import celery_app, services
from grader.scans import services as scans
from grader.grading.models import ExamStatus
from grader.outputs import emails
from grader.outputs import services as outputs
from grader.outputs.models import EmailDelivery, ExportJob
from grader.reading.models import Answer, ScriptIdentity
from grader.models import ScanUpload
from grader.scans.tasks import scan_upload_process_task
from tests.conftest import layout_page, pdf_first_page_text, pdf_upload
from tests.grader.outputs.conftest import scored_exam  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

_WORKER_START_SECONDS = 60
_TASK_SECONDS = 240


def _database_url() -> str:
    """The URL of the database this test runs in (the test database, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(request, tmp_path):
    """A `celery worker` process with this test's database and media folder, stopped afterwards.

    In a test that also asks for ``smtp_server`` (or ``smtp``), the worker sends mail to that server.
    """
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    if "smtp_server" in request.fixturenames:
        server = request.getfixturevalue("smtp_server")
        env["EMAIL_URL"] = f"smtp://{server.host}:{server.port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "grader", "worker", "-Q", "default,ocr", "--pool", "solo",
             "--hostname", f"test-{os.getpid()}@%h", "-l", "info", "--without-heartbeat", "--without-mingle"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=settings.BASE_DIR,
        )
        deadline = time.monotonic() + _WORKER_START_SECONDS
        while "ready." not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"The worker did not start:\n{log.read_text()}")
            time.sleep(0.2)
        try:
            yield log
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def not_eager():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = previous


def test_a_worker_process_splits_an_upload_sent_through_the_broker(exam, teacher, template_pdf, worker, not_eager):
    services.template_upload(exam=exam, file=template_pdf)
    intake = scans.scan_files_accept(exam=exam, files=[pdf_upload([layout_page(1), layout_page(2)] * 2)], user=teacher)
    upload = intake.accepted[0]

    result = scan_upload_process_task.delay(upload.pk)

    deadline = time.monotonic() + _TASK_SECONDS
    while not ScanUpload.objects.get(pk=upload.pk).finished:
        assert time.monotonic() < deadline, f"The task did not finish:\n{worker.read_text()}"
        time.sleep(0.3)
    upload.refresh_from_db()
    assert upload.status == ScanUpload.Status.DONE, upload.error
    assert sorted(exam.scripts.values_list("number", flat=True)) == [1, 2]
    assert f"Task grader.scans.tasks.scan_upload_process_task[{result.id}] succeeded" in worker.read_text()
    deadline = time.monotonic() + 10
    while not TaskResult.objects.filter(task_id=result.id, status="SUCCESS").exists():
        assert time.monotonic() < deadline, "The worker did not record the task's result in the database."
        time.sleep(0.2)


def test_a_worker_reads_matches_and_suggests_every_script_of_an_upload(exam, teacher, demo_folder_for, worker, not_eager):
    folder = demo_folder_for(students=3, absent=1, seed=8)
    for importer, name in ((services.roster_import, "roster.xlsx"), (services.answer_key_import, "answers.xlsx")):
        with (folder / name).open("rb") as handle:
            importer(exam=exam, file=File(handle, name=name))
    with (folder / "template.pdf").open("rb") as handle:
        services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    box_services.boxes_import(exam=exam, fmt="annotations", data=(folder / "annotations.json").read_bytes(), user=teacher)
    with (folder / "scans.pdf").open("rb") as handle:
        upload = scans.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=teacher).accepted[0]

    scan_upload_process_task.delay(upload.pk)

    deadline = time.monotonic() + _TASK_SECONDS
    while Answer.objects.filter(script__exam=exam, suggested_score__isnull=False).count() < 2 * 12 or not all(
        ScriptIdentity.objects.filter(script__exam=exam).values_list("candidates", flat=True)
    ) or ScriptIdentity.objects.filter(script__exam=exam).count() < 2:
        assert time.monotonic() < deadline, f"Reading did not finish:\n{worker.read_text()[-3000:]}"
        time.sleep(0.5)
    assert "script_read_task" in worker.read_text()
    assert not Answer.objects.filter(script__exam=exam).exclude(read_error="").exists()


def _wait_until(done: Callable[[], bool], worker: Path, what: str) -> None:
    """Poll ``done`` until it holds; fail with ``what`` and the worker's log when a task raised or time ran out."""
    deadline = time.monotonic() + _TASK_SECONDS
    while not done():
        log = worker.read_text()
        assert "raised unexpected" not in log and time.monotonic() < deadline, f"{what}:\n{log[-3000:]}"
        time.sleep(0.3)


def test_a_worker_process_makes_the_spreadsheet_asked_for_on_the_results_page(scored_exam, teacher, worker, not_eager):
    job = outputs.export_create(exam=scored_exam, kind=ExportJob.Kind.SPREADSHEET, params={}, user=teacher)

    _wait_until(lambda: ExportJob.objects.get(pk=job.pk).finished, worker, "The export did not finish")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE, job.error
    assert job.filename == "Year 9 Science - scores.xlsx"
    path = Path(job.file.path)
    assert path.is_file() and path.is_relative_to(settings.MEDIA_ROOT)
    rows = load_workbook(path, read_only=True).worksheets[0].iter_rows(values_only=True)
    assert {"S1", "S6", "Ada Lovelace"} <= {str(cell) for row in rows for cell in row}
    assert "Task grader.outputs.tasks.export_run_task[" in worker.read_text()


def test_a_worker_process_emails_each_student_their_scored_script_once_through_smtp(
    scored_exam, teacher, smtp, worker, not_eager
):
    ExamStatus.objects.create(exam=scored_exam, finished_at=timezone.now(), finished_by=teacher)
    teacher.email = "teacher@school.example"
    teacher.save()
    emails.exam_email_save(exam=scored_exam, subject=emails.DEFAULT_SUBJECT, body=emails.DEFAULT_BODY)
    emails.email_test_send(exam=scored_exam, user=teacher)  # from this process, as the page sends it

    summary = emails.email_students_send(exam=scored_exam, user=teacher)

    queued = {student.student_id: student for student in summary.queued}
    assert sorted(queued) == ["S1", "S2", "S4", "S5", "S6"]
    in_flight = [EmailDelivery.Status.QUEUED, EmailDelivery.Status.SENDING]
    _wait_until(lambda: not EmailDelivery.objects.filter(exam=scored_exam, status__in=in_flight).exists(), worker,
                "The emails were not sent")
    statuses = dict(EmailDelivery.objects.filter(exam=scored_exam).values_list("student__student_id", "status"))
    assert statuses == {**dict.fromkeys(queued, EmailDelivery.Status.SENT), "S3": EmailDelivery.Status.NO_ADDRESS}
    assert len(smtp.received) == 1 + len(queued)
    for student_id, student in queued.items():
        (received,) = smtp.to(student.email)
        assert received.recipients == [student.email]
        filename, pdf = received.attachment
        assert filename == f"Year 9 Science - {student_id}.pdf"
        assert student_id in pdf_first_page_text(pdf)
    assert "email_delivery_send_task" in worker.read_text()
