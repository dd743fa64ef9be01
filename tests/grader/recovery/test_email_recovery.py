"""Emails that survive a killed worker or a lost broker without ever going to a student twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from grader.outputs import emails
from grader.outputs.models import EmailDelivery
from grader.recovery.services import work_recover
from tests.grader.outputs.conftest import scored_exam  # noqa: F401 (a fixture)
from tests.grader.outputs.test_email import _finish, _tested, fake_pdf  # noqa: F401 (a fixture)

Status = EmailDelivery.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(scored_exam, teacher, smtp):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    smtp.received.clear()
    return scored_exam


def _delivery(exam, student_id, **fields) -> EmailDelivery:
    student = exam.students.get(student_id=student_id)
    return EmailDelivery.objects.create(exam=exam, student=student, to=student.email, **fields)


def test_the_scored_pdf_is_made_before_the_delivery_is_marked_sending(ready, smtp, monkeypatch):
    delivery = _delivery(ready, "S1", status=Status.QUEUED, queued_at=timezone.now())
    seen = []
    real_pdf = emails.script_pdf

    def pdf_noting_status(*, result):
        seen.append(EmailDelivery.objects.get(pk=delivery.pk).status)
        return real_pdf(result=result)

    monkeypatch.setattr(emails, "script_pdf", pdf_noting_status)
    emails.email_delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert seen == [Status.QUEUED] and delivery.status == Status.SENT
    (received,) = smtp.to("ada@example.org")
    assert received.message["Message-ID"] == delivery.message_id


def test_all_interrupted_emails_are_sent_again_at_once_each_once_with_its_first_message_id(
    ready, teacher, client_for, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - timedelta(minutes=10)
    unknown = [_delivery(ready, sid, status=Status.SENDING, attempts=1, attempted_at=long_ago, message_id=f"<{sid}@x>")
               for sid in ("S1", "S2")]
    just_now = _delivery(ready, "S4", status=Status.SENDING, attempts=1, attempted_at=timezone.now(), message_id="<S4@x>")
    client = client_for(teacher)
    page = client.get(reverse("email_students", args=[ready.pk])).content.decode()
    assert "send them again (2)" in page

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("email_unknown_retry_all", args=[ready.pk]))

    assert [len(smtp.to(address)) for address in ("ada@example.org", "ben@example.org", "dev@example.org")] == [1, 1, 0]
    assert {r.message["Message-ID"] for r in smtp.received} == {"<S1@x>", "<S2@x>"}
    for delivery in unknown:
        delivery.refresh_from_db()
        assert delivery.status == Status.SENT and delivery.attempts == 2
    just_now.refresh_from_db()
    assert just_now.status == Status.SENDING  # maybe still talking to the server: not the teacher's call yet
    message = client.get(reverse("email_students", args=[ready.pk])).content.decode()
    assert "No interrupted email is waiting for a check." in message


def test_a_queued_email_whose_task_was_lost_is_sent_once_by_the_sweep(
    ready, settings, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    settings.WORK_STALLED_MINUTES = 5
    lost = _delivery(ready, "S1", status=Status.QUEUED, queued_at=timezone.now() - timedelta(minutes=6))
    _delivery(ready, "S2", status=Status.QUEUED, queued_at=timezone.now())  # its task may still be on its way
    _delivery(ready, "S4", status=Status.SENDING, attempts=1, attempted_at=timezone.now() - timedelta(minutes=60))

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            work_recover()

    lost.refresh_from_db()
    assert lost.status == Status.SENT and len(smtp.received) == 1 and smtp.to("ada@example.org")
