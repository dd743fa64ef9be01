"""A real Celery worker process takes a task from the configured broker and writes to the configured database.

On the embedded default that is a filesystem broker and a SQLite file; in CI's second pass it is
Redis and PostgreSQL over real connections.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files import File
from django.conf import settings
from django.db import connection
from django_celery_results.models import TaskResult

from annotations import services as box_services
from grader import celery_app, services
from grader.reading.models import Answer, ScriptIdentity
from grader.models import ScanUpload
from grader.tasks import scan_upload_process_task
from tests.conftest import layout_page, pdf_upload

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
def worker(tmp_path):
    """A `celery worker` process with this test's database and media folder, stopped afterwards."""
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
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
    intake = services.scan_files_accept(exam=exam, files=[pdf_upload([layout_page(1), layout_page(2)] * 2)], user=teacher)
    upload = intake.accepted[0]

    result = scan_upload_process_task.delay(upload.pk)

    deadline = time.monotonic() + _TASK_SECONDS
    while not ScanUpload.objects.get(pk=upload.pk).finished:
        assert time.monotonic() < deadline, f"The task did not finish:\n{worker.read_text()}"
        time.sleep(0.3)
    upload.refresh_from_db()
    assert upload.status == ScanUpload.Status.DONE, upload.error
    assert sorted(exam.scripts.values_list("number", flat=True)) == [1, 2]
    assert f"Task grader.tasks.scan_upload_process_task[{result.id}] succeeded" in worker.read_text()
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
        upload = services.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=teacher).accepted[0]

    scan_upload_process_task.delay(upload.pk)

    deadline = time.monotonic() + _TASK_SECONDS
    while Answer.objects.filter(script__exam=exam, suggested_score__isnull=False).count() < 2 * 12 or not all(
        ScriptIdentity.objects.filter(script__exam=exam).values_list("candidates", flat=True)
    ) or ScriptIdentity.objects.filter(script__exam=exam).count() < 2:
        assert time.monotonic() < deadline, f"Reading did not finish:\n{worker.read_text()[-3000:]}"
        time.sleep(0.5)
    assert "script_read_task" in worker.read_text()
    assert not Answer.objects.filter(script__exam=exam).exclude(read_error="").exists()
