"""Stalled work is shown, made again, cancelled and queued again by the recovery sweep (tasks run eagerly)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from annotations.models import AnswerBox
from grader.models import Question, Script
from grader.outputs import services as outputs
from grader.outputs.models import ExportJob
from grader.outputs.tasks import export_run_task
from grader.reading import tasks as reading_tasks
from grader.reading.models import Answer, ScriptIdentity
from grader.recovery import jobs
from grader.recovery.models import Requeue
from grader.recovery.services import work_recover
from tests.grader.outputs.conftest import scored_exam  # noqa: F401 (a fixture)

Kind, Status = ExportJob.Kind, ExportJob.Status
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _short_stall(settings):
    settings.WORK_STALLED_MINUTES = 5
    settings.WORK_REQUEUE_MAX = 2


def _ago(minutes: float):
    return timezone.now() - timedelta(minutes=minutes)


def _stalled_job(exam, user, **fields) -> ExportJob:
    defaults = {"kind": Kind.SCRIPTS_ZIP, "params": {}, "status": Status.RUNNING, "attempts": 1, "done": 2, "total": 6,
                "heartbeat_at": _ago(30)}
    return baker.make(ExportJob, exam=exam, created_by=user, **{**defaults, **fields})


def test_a_job_without_progress_for_the_stall_time_shows_stalled_with_make_again_and_cancel(scored_exam, teacher, client_for):
    job = _stalled_job(scored_exam, teacher)
    running = _stalled_job(scored_exam, teacher, kind=Kind.SPREADSHEET, heartbeat_at=_ago(1))

    html = client_for(teacher).get(reverse("outputs", args=[scored_exam.pk])).content.decode()

    row = html[html.index(f'id="job-{job.pk}"'):html.index("</tr>", html.index(f'id="job-{job.pk}"'))]
    assert 'data-status="stalled"' in row and "No progress since" in row
    assert reverse("export_restart", args=[scored_exam.pk, job.pk]) in row
    assert reverse("export_cancel", args=[scored_exam.pk, job.pk]) in row
    other = html[html.index(f'id="job-{running.pk}"'):]
    assert 'data-status="running"' in other[:400] and reverse("export_restart", args=[scored_exam.pk, running.pk]) not in other


def test_make_again_makes_a_stalled_file_from_the_start(scored_exam, teacher, client_for, django_capture_on_commit_callbacks):
    job = _stalled_job(scored_exam, teacher)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("export_restart", args=[scored_exam.pk, job.pk]))

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == Status.DONE and (job.done, job.total) == (6, 6) and job.file
    assert job.attempts == 3  # the restart, then the run that claimed it


def test_asking_again_for_a_stalled_file_makes_it_again_instead_of_handing_back_the_stuck_job(
    scored_exam, teacher, django_capture_on_commit_callbacks
):
    stuck = _stalled_job(scored_exam, teacher)

    with django_capture_on_commit_callbacks(execute=True):
        job = outputs.export_create(exam=scored_exam, kind=Kind.SCRIPTS_ZIP, params={}, user=teacher)

    assert job.pk == stuck.pk and ExportJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == Status.DONE and job.file


def test_a_redelivered_task_leaves_a_job_another_worker_is_making_and_resumes_a_stalled_one(scored_exam, teacher):
    alive = _stalled_job(scored_exam, teacher, heartbeat_at=_ago(1))
    dead = _stalled_job(scored_exam, teacher, kind=Kind.SPREADSHEET)

    outputs.export_run(job_id=alive.pk)
    outputs.export_run(job_id=dead.pk)

    alive.refresh_from_db(), dead.refresh_from_db()
    assert (alive.status, alive.attempts, alive.done) == (Status.RUNNING, 1, 2)
    assert dead.status == Status.DONE and dead.attempts == 2 and dead.file


def test_a_cancelled_job_stops_at_its_next_step_and_keeps_no_file(scored_exam, teacher, client_for, monkeypatch):
    job = outputs.export_create(exam=scored_exam, kind=Kind.SCRIPTS_ZIP, params={}, user=teacher)  # not run: no on_commit
    real_pdf = outputs.pdf.script_pdf
    client = client_for(teacher, htmx=True)

    def cancel_midway(*, result):
        if result.script.number == 3:
            assert client.post(reverse("export_cancel", args=[scored_exam.pk, job.pk])).status_code == 200
        return real_pdf(result=result)

    monkeypatch.setattr(outputs.pdf, "script_pdf", cancel_midway)
    outputs.export_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.done < 6 and not job.file
    row = client.get(reverse("export_progress", args=[scored_exam.pk, job.pk]))
    assert row.status_code == 286 and "cancelled" in row.content.decode()


def test_a_dropped_database_connection_mid_export_is_retried_and_the_file_made(scored_exam, teacher, monkeypatch):
    real_beat, dropped = jobs.job_beat, []

    def beat_once_dropped(job, **fields):
        if not dropped:
            dropped.append(fields)
            raise OperationalError("terminating connection due to administrator command")
        real_beat(job, **fields)

    monkeypatch.setattr(outputs, "job_beat", beat_once_dropped)
    job = outputs.export_create(exam=scored_exam, kind=Kind.SCRIPTS_ZIP, params={}, user=teacher)  # queued only

    # As a worker runs it: the retry (after the broken connection is closed) runs it again.
    result = export_run_task.apply(args=[job.pk], throw=False)

    job.refresh_from_db()
    assert dropped and result.get() == Status.DONE
    assert job.status == Status.DONE and job.attempts == 2 and job.file


@pytest.mark.django_db(transaction=True)
def test_a_finishing_write_survives_a_dropped_connection(scored_exam, teacher, monkeypatch):
    job = jobs.job_claim(ExportJob, _stalled_job(scored_exam, teacher).pk)
    calls = []
    real_update = type(ExportJob.objects.all()).update

    def update_dropping_once(queryset, **fields):
        calls.append(fields)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_update(queryset, **fields)

    monkeypatch.setattr(type(ExportJob.objects.all()), "update", update_dropping_once)
    monkeypatch.setattr(jobs.time, "sleep", lambda seconds: None)
    jobs.job_end(job, Status.FAILED, error="The page image is unreadable.")

    assert len(calls) == 2
    assert ExportJob.objects.get(pk=job.pk).status == Status.FAILED


def test_the_sweep_makes_stalled_exports_again_and_gives_up_on_one_that_keeps_stopping_the_worker(
    scored_exam, teacher, django_capture_on_commit_callbacks
):
    stalled = _stalled_job(scored_exam, teacher)
    queued_lost = _stalled_job(scored_exam, teacher, kind=Kind.SPREADSHEET, status=Status.QUEUED, attempts=0)
    fresh = _stalled_job(scored_exam, teacher, kind=Kind.BACKUP, heartbeat_at=_ago(1))
    poison = _stalled_job(scored_exam, teacher, kind=Kind.SCRIPT_PDF, params={"script_id": 1, "number": 1}, attempts=4)

    with django_capture_on_commit_callbacks(execute=True):
        found = work_recover()

    assert found.exports == 2 and found.given_up == [f"export job {poison.pk}"]
    statuses = dict(ExportJob.objects.values_list("pk", "status"))
    assert statuses == {stalled.pk: Status.DONE, queued_lost.pk: Status.DONE, fresh.pk: Status.RUNNING,
                        poison.pk: Status.FAILED}
    assert "Stopped after 2 tries" in ExportJob.objects.get(pk=poison.pk).error
    with django_capture_on_commit_callbacks(execute=True):
        assert work_recover().exports == 0


def _exam_with_boxes(exam):
    question = baker.make(Question, exam=exam, label="Q1", max_score=1)
    AnswerBox.objects.create(exam=exam, page=0, label="Q1", question=question, x1=10, y1=10, x2=100, y2=100)
    AnswerBox.objects.create(exam=exam, page=0, label="NAME", x1=10, y1=200, x2=100, y2=300)
    AnswerBox.objects.filter(exam=exam).update(updated_at=_ago(60))
    scripts = [baker.make(Script, exam=exam, number=n) for n in (1, 2, 3)]
    Script.objects.filter(exam=exam).update(created_at=_ago(60))
    for script in scripts[:2]:
        baker.make(Answer, script=script, question=question, read_at=_ago(30))
        baker.make(ScriptIdentity, script=script, name_text=f"Student {script.number}", read_at=_ago(30))
    return scripts


def test_the_sweep_reads_scripts_left_unread_once_per_stall_and_matches_identities_for_what_is_read(
    exam, monkeypatch, django_capture_on_commit_callbacks
):
    scripts = _exam_with_boxes(exam)
    queued, matched = [], []
    monkeypatch.setattr(reading_tasks.script_read_task, "delay", queued.append)
    monkeypatch.setattr("grader.reading.services.exam_identity_match", lambda *, exam_id: matched.append(exam_id))

    with django_capture_on_commit_callbacks(execute=True):
        found = work_recover()
    with django_capture_on_commit_callbacks(execute=True):
        again = work_recover()

    assert queued == [scripts[2].pk] and matched == [exam.pk]
    assert (found.scripts, found.identities) == (1, 1) and (again.scripts, again.identities) == (0, 0)


def test_the_sweep_leaves_an_exam_being_read_and_gives_up_after_the_requeue_limit(
    exam, monkeypatch, django_capture_on_commit_callbacks
):
    scripts = _exam_with_boxes(exam)
    queued = []
    monkeypatch.setattr(reading_tasks.script_read_task, "delay", queued.append)
    monkeypatch.setattr("grader.reading.services.exam_identity_match", lambda *, exam_id: None)
    Answer.objects.filter(script=scripts[0]).update(read_at=timezone.now())
    assert work_recover().scripts == 0  # a script was read a moment ago: reading is going on

    Answer.objects.filter(script=scripts[0]).update(read_at=_ago(30))
    gave_up = []
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            found = work_recover()
        gave_up += found.given_up
        Requeue.objects.update(at=_ago(10))  # the next sweep comes after another stall

    assert queued == [scripts[2].pk] * 2 and gave_up == [f"reading 1 script(s) of exam {exam.pk}"]


def test_the_work_recover_command_runs_the_sweep(scored_exam, teacher, capsys):
    _stalled_job(scored_exam, teacher, status=Status.QUEUED)

    call_command("work_recover")

    assert "1 export job(s)" in capsys.readouterr().out
