"""A learning job whose worker stopped shows stalled with "Learn again" and "Cancel"; a redelivered task
leaves a job another worker is running."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from grader.learning import services, tasks
from grader.learning.models import LearningJob

pytestmark = pytest.mark.django_db
Status = LearningJob.Status


@pytest.fixture
def stalled(exam, teacher, settings) -> LearningJob:
    settings.WORK_STALLED_MINUTES = 5
    return baker.make(LearningJob, exam=exam, created_by=teacher, status=Status.RUNNING, stage="train", done=2, total=8,
                      attempts=1, heartbeat_at=timezone.now() - timedelta(minutes=30))


def test_a_stalled_learning_job_shows_stalled_with_learn_again_and_cancel(exam, teacher, client_for, stalled):
    html = client_for(teacher, htmx=True).get(reverse("learning_progress", args=[exam.pk, stalled.pk])).content.decode()

    assert "Stalled" in html and "No progress since" in html
    assert reverse("learning_job_action", args=[exam.pk, stalled.pk, "again"]) in html
    assert reverse("learning_job_action", args=[exam.pk, stalled.pk, "cancel"]) in html


def test_learn_again_queues_the_stalled_job_from_the_start(exam, teacher, client_for, stalled, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(tasks.reader_learn_task, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("learning_job_action", args=[exam.pk, stalled.pk, "again"]))

    stalled.refresh_from_db()
    assert response.status_code == 200 and queued == [stalled.pk]
    assert (stalled.status, stalled.done, stalled.attempts) == (Status.QUEUED, 0, 2)


def test_asking_to_learn_again_restarts_a_stalled_job_instead_of_refusing(exam, teacher, stalled, monkeypatch,
                                                                         django_capture_on_commit_callbacks):
    monkeypatch.setattr(tasks.reader_learn_task, "delay", lambda job_id: None)

    job = services.reader_learn_start(exam=exam, user=teacher)

    assert job.pk == stalled.pk and job.status == Status.QUEUED and LearningJob.objects.count() == 1


def test_cancel_ends_a_stalled_job_and_a_redelivered_task_then_does_nothing(exam, teacher, client_for, stalled):
    response = client_for(teacher, htmx=True).post(reverse("learning_job_action", args=[exam.pk, stalled.pk, "cancel"]))

    stalled.refresh_from_db()
    assert "Learning was cancelled" in response.content.decode()
    assert stalled.status == Status.CANCELLED and stalled.finished
    assert services.reader_learn_run(job_id=stalled.pk).status == Status.CANCELLED


def test_a_redelivered_task_leaves_a_learning_job_another_worker_is_running(stalled):
    LearningJob.objects.filter(pk=stalled.pk).update(heartbeat_at=timezone.now())

    job = services.reader_learn_run(job_id=stalled.pk)

    assert (job.status, job.done, job.attempts) == (Status.RUNNING, 2, 1)


def test_an_unknown_action_is_not_found(exam, teacher, client_for, stalled):
    response = client_for(teacher).post(reverse("learning_job_action", args=[exam.pk, stalled.pk, "explode"]))

    assert response.status_code == 404


def test_the_sweep_runs_a_stalled_learning_job_again_so_no_card_polls_forever(stalled, monkeypatch,
                                                                              django_capture_on_commit_callbacks):
    from grader.recovery.services import work_recover

    queued = []
    monkeypatch.setattr(tasks.reader_learn_task, "delay", queued.append)
    rereading = baker.make(LearningJob, exam=stalled.exam, status=Status.DONE, stage="reread", finished_at=None,
                           attempts=1, heartbeat_at=timezone.now() - timedelta(minutes=30))
    finished = baker.make(LearningJob, exam=stalled.exam, status=Status.DONE, finished_at=timezone.now(),
                          heartbeat_at=timezone.now() - timedelta(minutes=30))

    with django_capture_on_commit_callbacks(execute=True):
        found = work_recover()

    assert found.learning == 2 and sorted(queued) == sorted([stalled.pk, rereading.pk])
    finished.refresh_from_db()
    assert finished.status == Status.DONE and finished.attempts == 0
