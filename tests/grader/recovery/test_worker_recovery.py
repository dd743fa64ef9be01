"""Faults injected into real workers over PostgreSQL and Redis: work completes without a person.

Each test starts `celery worker -B` processes (beat runs the recovery sweep) with short recovery
settings (``RECOVERY_ENV``), kills them with SIGKILL mid-task, drops their database connections
(``pg_terminate_backend``) or flushes the broker, then starts a new worker and checks the work ends
done, once, within 2 minutes. The broker is Redis database 15, flushed by these tests and so kept
apart from other runs on the same server. Skipped unless the suite runs over PostgreSQL and Redis
(``make test-services``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings
from django.core.files import File
from django.db import connection
from django.utils import timezone

from annotations import services as box_services
from annotations.models import AnswerBox
from grader import celery_app, services
from grader.grading.models import ExamStatus
from grader.models import ScanPage, ScanUpload
from grader.outputs import emails
from grader.outputs import services as outputs
from grader.outputs.models import EmailDelivery, ExportJob
from grader.reading.models import Answer, ScriptIdentity
from grader.scans import services as scans
from tests.conftest import layout_page, pdf_upload
from tests.grader.outputs.conftest import scored_exam  # noqa: F401 (a fixture)
from tests.grader.test_worker import _database_url, not_eager  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Recovery bounded by seconds instead of minutes: stalled after 12 s without progress, a sweep every
# 3 s, and Redis handing a dead worker's message to another after 20 s.
RECOVERY_ENV = {"WORK_STALLED_MINUTES": "0.2", "WORK_RECOVER_EVERY_S": "3", "CELERY_VISIBILITY_TIMEOUT": "20"}
RECOVERY_LIMIT_S = 120  # the bound: work done within 2 minutes of a new worker starting
BROKER_DB = 15
Status = ExportJob.Status


@pytest.fixture(autouse=True)
def _services_only(settings):
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("Needs PostgreSQL and Redis (make test-services).")
    settings.WORK_STALLED_MINUTES = float(RECOVERY_ENV["WORK_STALLED_MINUTES"])


BROKER_URLS = ("broker_url", "broker_write_url", "broker_read_url")


@pytest.fixture
def broker(not_eager) -> Iterator[redis.Redis]:
    """Redis database 15 as this process's broker (and the workers'), empty at the start and the end."""
    url = urlunsplit(urlsplit(settings.CELERY_BROKER_URL)._replace(path=f"/{BROKER_DB}"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    previous = {name: celery_app.conf[name] for name in BROKER_URLS}
    celery_app.conf.update(dict.fromkeys(BROKER_URLS, url))
    celery_app._pool, celery_app.amqp._producer_pool = None, None
    assert celery_app.connection_for_write().as_uri().endswith(f"/{BROKER_DB}")
    yield client
    celery_app.conf.update(previous)
    celery_app._pool, celery_app.amqp._producer_pool = None, None
    client.flushdb()


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    started: float

    def kill(self) -> None:
        """SIGKILL the worker and its beat: no warm shutdown, no acknowledgement, no last write."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start_worker(request, tmp_path, broker) -> Iterator[Callable[[], Worker]]:
    """Start a `celery worker -B` on this test's database, broker and media folder; all are killed
    at the end. With ``smtp_server`` in the test, workers send mail to it."""
    started: list[Worker] = []
    env = {
        **os.environ, **RECOVERY_ENV,
        # The app's own settings, not the tests' (which run tasks eagerly): beat only sends the sweep,
        # and the sweep only sends tasks, as in production.
        "DJANGO_SETTINGS_MODULE": "grader.settings", "SECRET_KEY": "markdesk-tests", "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": celery_app.connection_for_write().as_uri(include_password=True),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    if "smtp_server" in request.fixturenames:
        server = request.getfixturevalue("smtp_server")
        env["EMAIL_URL"] = f"smtp://{server.host}:{server.port}"

    def start() -> Worker:
        log = tmp_path / f"worker-{len(started) + 1}.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "grader", "worker", "-B", "-s", str(tmp_path / "beat-schedule"),
                 "-Q", "default,ocr", "--pool", "solo", "--hostname", f"recovery-{os.getpid()}-{len(started)}@%h",
                 "-l", "info", "--without-heartbeat", "--without-mingle", "--without-gossip"],
                env=env, stdout=output, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR, start_new_session=True,
            )
        worker = Worker(process=process, log=log, started=time.monotonic())
        started.append(worker)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"The worker did not start:\n{log.read_text()}")
            time.sleep(0.2)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def _wait(done: Callable[[], bool], what: str, worker: Worker, *, limit_s: float = RECOVERY_LIMIT_S,
          every_s: float = 0.5) -> float:
    """Poll ``done`` until it holds; seconds since ``worker`` started. Fails after ``limit_s`` from its start."""
    while not done():
        if time.monotonic() - worker.started > limit_s:
            pytest.fail(f"{what} within {limit_s} s of the worker starting:\n{worker.text()[-4000:]}")
        time.sleep(every_s)
    return time.monotonic() - worker.started


def _kill_when(worker: Worker, moment: Callable[[], bool], what: str) -> None:
    _wait(moment, f"Never saw {what}", worker, every_s=0.05)
    worker.kill()


def test_an_export_killed_midway_is_made_again_and_done_once(scored_exam, teacher, start_worker):
    job = outputs.export_create(exam=scored_exam, kind=ExportJob.Kind.SCRIPTS_ZIP, params={}, user=teacher)
    first = start_worker()

    _kill_when(first, lambda: ExportJob.objects.filter(pk=job.pk, status=Status.RUNNING).exists(), "the export running")
    job.refresh_from_db()
    assert job.status == Status.RUNNING and not job.file  # killed mid-way, as the teacher would see it: stuck

    second = start_worker()
    _wait(lambda: ExportJob.objects.get(pk=job.pk).finished, "The export was not made again", second)

    job.refresh_from_db()
    assert job.status == Status.DONE and (job.done, job.total) == (6, 6) and job.attempts >= 2
    assert ExportJob.objects.filter(exam=scored_exam).count() == 1
    exports = Path(settings.MEDIA_ROOT) / "exams" / str(scored_exam.pk) / "exports"
    assert [path.name for path in exports.iterdir()] == [Path(job.file.name).name]


def _terminate_connections(times: int = 20, every_s: float = 0.3) -> int:
    """Terminate every other connection to the test database (the workers'), ``times`` times."""
    terminated = 0
    with connection.cursor() as cursor:
        for _ in range(times):
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            terminated += cursor.fetchone()[0]
            time.sleep(every_s)
    return terminated


def test_an_export_whose_database_connection_keeps_dropping_is_retried_and_done(scored_exam, teacher, start_worker):
    job = outputs.export_create(exam=scored_exam, kind=ExportJob.Kind.SCRIPTS_ZIP, params={}, user=teacher)
    worker = start_worker()
    _wait(lambda: ExportJob.objects.filter(pk=job.pk, status=Status.RUNNING).exists(), "Never saw the export running",
          worker, every_s=0.05)

    terminated = _terminate_connections()  # every 0.3 s for 6 s

    _wait(lambda: ExportJob.objects.get(pk=job.pk).finished, "The export did not finish", worker)
    job.refresh_from_db()
    assert terminated and job.status == Status.DONE and job.file, job.error
    # The worker noticed mid-task: a progress write reconnected, or the task was retried.
    assert any(sign in worker.text() for sign in ("Database connection lost", "OperationalError", "InterfaceError"))


def test_an_upload_whose_database_connection_keeps_dropping_is_processed_once(exam, teacher, template_pdf, start_worker):
    services.template_upload(exam=exam, file=template_pdf)
    upload = scans.scan_files_accept(exam=exam, files=[pdf_upload([layout_page(1), layout_page(2)] * 3)],
                                     user=teacher).accepted[0]
    scans.scan_upload_enqueue(upload=upload)
    worker = start_worker()
    _wait(lambda: ScanUpload.objects.filter(pk=upload.pk, status=ScanUpload.Status.PROCESSING).exists(),
          "Never saw the upload processing", worker, every_s=0.05)

    terminated = _terminate_connections()

    _wait(lambda: ScanUpload.objects.get(pk=upload.pk).finished, "The upload was not processed", worker)
    upload.refresh_from_db()
    assert terminated and upload.status == ScanUpload.Status.DONE, upload.error
    assert sorted(exam.scripts.values_list("number", flat=True)) == [1, 2, 3]
    assert ScanPage.objects.filter(upload=upload).count() == 6


def _ready_to_email(exam, teacher) -> list[str]:
    ExamStatus.objects.create(exam=exam, finished_at=timezone.now(), finished_by=teacher)
    teacher.email = "teacher@school.example"
    teacher.save()
    emails.exam_email_save(exam=exam, subject=emails.DEFAULT_SUBJECT, body=emails.DEFAULT_BODY)
    emails.email_test_send(exam=exam, user=teacher)
    return list(exam.students.exclude(email="").filter(scripts__isnull=False).values_list("email", flat=True))


def _each_emailed_once(smtp, addresses: list[str]) -> None:
    """Every address got its email, and only one email: a copy resent after an interrupted attempt
    (the teacher's call) carries the first one's Message-ID."""
    for address in addresses:
        received = smtp.to(address)
        assert received, f"{address} got nothing"
        assert len({r.message["Message-ID"] for r in received}) == 1, f"{address} got two different emails"


def test_emails_killed_midway_are_all_sent_once_with_the_one_button_for_an_interrupted_one(
    scored_exam, teacher, smtp, start_worker
):
    addresses = _ready_to_email(scored_exam, teacher)
    emails.email_students_send(exam=scored_exam, user=teacher)
    first = start_worker()

    _kill_when(first, lambda: EmailDelivery.objects.filter(exam=scored_exam, status=EmailDelivery.Status.SENT).exists(),
               "an email sent")
    killed_at = timezone.now()

    second = start_worker()
    deliveries = EmailDelivery.objects.filter(exam=scored_exam)
    _wait(lambda: not deliveries.filter(status=EmailDelivery.Status.QUEUED).exists() and not deliveries.filter(
        status=EmailDelivery.Status.SENDING, attempted_at__gt=killed_at).exists(), "The queued emails were not sent", second)
    interrupted = deliveries.filter(status=EmailDelivery.Status.SENDING)  # by the killed worker, mid-conversation
    if interrupted.exists():  # unknown once SENDING_STUCK_AFTER has passed: the teacher's one button
        interrupted.update(attempted_at=timezone.now() - emails.SENDING_STUCK_AFTER - timedelta(seconds=1))
        emails.email_unknown_retry(exam=scored_exam, user=teacher)  # "None of them arrived: send them again"
        _wait(lambda: not interrupted.exists(), "The interrupted emails were not sent again", second)

    statuses = set(EmailDelivery.objects.filter(exam=scored_exam).values_list("status", flat=True))
    assert statuses == {EmailDelivery.Status.SENT, EmailDelivery.Status.NO_ADDRESS}
    _each_emailed_once(smtp, addresses)


def test_work_whose_broker_messages_were_lost_is_done_by_the_sweep(scored_exam, teacher, smtp, broker, start_worker):
    addresses = _ready_to_email(scored_exam, teacher)
    emails.email_students_send(exam=scored_exam, user=teacher)
    job = outputs.export_create(exam=scored_exam, kind=ExportJob.Kind.SPREADSHEET, params={}, user=teacher)
    assert broker.llen("default") >= 6
    broker.flushdb()  # the broker's data is lost before any worker took it

    worker = start_worker()
    _wait(lambda: ExportJob.objects.get(pk=job.pk).finished and not EmailDelivery.objects.filter(
        exam=scored_exam, status__in=[EmailDelivery.Status.QUEUED, EmailDelivery.Status.SENDING]).exists(),
        "The lost work was not done", worker)

    assert ExportJob.objects.get(pk=job.pk).status == Status.DONE
    _each_emailed_once(smtp, addresses)
    assert len(smtp.received) == 1 + len(addresses)  # the teacher's test, then one each


def _demo_exam(exam, teacher, folder):
    for importer, name in ((services.roster_import, "roster.xlsx"), (services.answer_key_import, "answers.xlsx")):
        with (folder / name).open("rb") as handle:
            importer(exam=exam, file=File(handle, name=name))
    with (folder / "template.pdf").open("rb") as handle:
        services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    box_services.boxes_import(exam=exam, fmt="annotations", data=(folder / "annotations.json").read_bytes(), user=teacher)
    with (folder / "scans.pdf").open("rb") as handle:
        upload = scans.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=teacher).accepted[0]
    scans.scan_upload_enqueue(upload=upload)
    return upload


def _read_and_matched(exam) -> bool:
    """Every script has every question box read, its identity read, and the class matched to the roster."""
    questions = AnswerBox.objects.filter(exam=exam, parent=None, question__isnull=False).count()
    scripts = exam.scripts.count()
    identities = ScriptIdentity.objects.filter(script__exam=exam, read_at__isnull=False)
    return (scripts > 0 and Answer.objects.filter(script__exam=exam, read_at__isnull=False).count() == scripts * questions
            and identities.count() == scripts and all(identities.values_list("candidates", flat=True)))


def test_a_worker_killed_mid_scan_processing_and_again_mid_reading_leaves_the_exam_read_and_matched_once(
    exam, teacher, demo_folder_for, start_worker
):
    upload = _demo_exam(exam, teacher, demo_folder_for(students=3, absent=1, seed=8))
    pages = upload.pages_total
    first = start_worker()
    _kill_when(first, lambda: ScanUpload.objects.get(pk=upload.pk).pages_done >= 1, "a page processed")
    assert ScanUpload.objects.get(pk=upload.pk).status == ScanUpload.Status.PROCESSING

    second = start_worker()
    _kill_when(second, lambda: Answer.objects.filter(script__exam=exam, read_at__isnull=False).exists(), "a script read")
    assert not _read_and_matched(exam)

    third = start_worker()
    _wait(lambda: _read_and_matched(exam), "The exam was not read and matched", third)

    upload.refresh_from_db()
    assert upload.status == ScanUpload.Status.DONE and upload.pages_done == pages
    assert sorted(exam.scripts.values_list("number", flat=True)) == [1, 2]  # 3 students, 1 absent: no duplicates
    assert ScanPage.objects.filter(upload=upload).count() == pages
    folder = Path(settings.MEDIA_ROOT) / "exams" / str(exam.pk) / "pages"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        Path(name).name for name in ScanPage.objects.filter(upload=upload).values_list("image", flat=True))
    assert not Answer.objects.filter(script__exam=exam).exclude(read_error="").exists()
