"""Emailing each student their own scored script, through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from grader.grading.models import ExamStatus
from grader.outputs import emails
from grader.outputs.models import EmailDelivery, ExamEmail
from tests.conftest import free_port, pdf_first_page_text

Status = EmailDelivery.Status
TEACHER_EMAIL = "teacher@school.example"
IDS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7")
EMAILED = {"S1": "ada@example.org", "S2": "ben@example.org", "S4": "dev@example.org", "S5": "eva@example.org",
           "S6": "femi@example.org"}


@pytest.fixture
def fake_pdf(monkeypatch):
    """A stand-in for the scored-script PDF naming its student, where a test is not about the PDF itself."""
    monkeypatch.setattr(emails, "script_pdf", lambda *, result: f"%PDF-1.4 stand-in {result.student.student_id}".encode())


def _finish(exam, teacher):
    ExamStatus.objects.update_or_create(exam=exam, defaults={"finished_at": timezone.now(), "finished_by": teacher})


def _tested(exam, teacher):
    """Save the default email and send the test, as a teacher does before emailing students."""
    teacher.email = TEACHER_EMAIL
    teacher.save()
    emails.exam_email_save(exam=exam, subject=emails.DEFAULT_SUBJECT, body=emails.DEFAULT_BODY)
    emails.email_test_send(exam=exam, user=teacher)


def _send(client, exam, capture, name="email_send", **data):
    with capture(execute=True):
        return client.post(reverse(name, args=[exam.pk]), data)


def _deliveries(exam) -> dict[str, EmailDelivery]:
    return {d.student.student_id: d for d in EmailDelivery.objects.filter(exam=exam).select_related("student")}


def test_each_student_with_an_address_gets_their_own_scored_script_exactly_once(
    scored_exam, teacher, client_for, smtp, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    client = client_for(teacher)

    response = _send(client, scored_exam, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    deliveries = _deliveries(scored_exam)
    assert {sid: d.status for sid, d in deliveries.items()} == {**dict.fromkeys(EMAILED, Status.SENT), "S3": Status.NO_ADDRESS}
    assert "S7" not in deliveries  # absent: no script, no email
    students = [r for r in smtp.received if TEACHER_EMAIL not in r.recipients]
    assert sorted(r.recipients[0] for r in students) == sorted(EMAILED.values())
    for student_id, address in EMAILED.items():
        (received,) = smtp.to(address)
        assert received.recipients == [address]
        assert received.sender == "markdesk@school.example"
        assert received.message["Subject"] == "Year 9 Science: your scored script"
        assert received.message["Message-ID"] == deliveries[student_id].message_id
        filename, pdf = received.attachment
        assert filename == f"Year 9 Science - {student_id}.pdf"
        text = pdf_first_page_text(pdf)
        assert student_id in text
        assert not [other for other in IDS if other != student_id and other in text]
    ben = smtp.to("ben@example.org")[0].message.get_body(("plain",)).get_content()
    assert "Dear Ben Okafor" in ben and "You scored 4.5 out of 6 (75%)" in ben
    assert deliveries["S2"].sent_at and deliveries["S2"].attempts == 1

    _send(client, scored_exam, django_capture_on_commit_callbacks)
    _send(client, scored_exam, django_capture_on_commit_callbacks, name="email_retry")

    assert len(smtp.received) == len(EMAILED) + 1  # the test email, then each student once
    assert {d.attempts for d in _deliveries(scored_exam).values() if d.status == Status.SENT} == {1}


def test_a_refused_recipient_fails_with_the_servers_reply_and_after_a_fix_retry_sends_it_once(
    scored_exam, teacher, client_for, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    smtp.refuse["ben@example.org"] = "550 5.1.1 <ben@example.org>: Recipient address rejected"
    client = client_for(teacher)

    _send(client, scored_exam, django_capture_on_commit_callbacks)

    ben = _deliveries(scored_exam)["S2"]
    assert ben.status == Status.FAILED and ben.attempts == 1
    assert ben.error == "SMTP server refused recipient ben@example.org: 550 5.1.1 <ben@example.org>: Recipient address rejected"
    page = client.get(reverse("email_students", args=[scored_exam.pk])).content.decode()
    assert "Recipient address rejected" in page and "Retry failed (1)" in page

    smtp.refuse.clear()
    _send(client, scored_exam, django_capture_on_commit_callbacks, name="email_retry")
    _send(client, scored_exam, django_capture_on_commit_callbacks, name="email_retry")

    ben = _deliveries(scored_exam)["S2"]
    assert ben.status == Status.SENT and ben.attempts == 2 and ben.error == ""
    assert len(smtp.to("ben@example.org")) == 1
    assert all(len(smtp.to(address)) == 1 for address in EMAILED.values())


def test_an_unreachable_smtp_server_fails_every_email_with_a_clear_message_and_nothing_is_lost(
    scored_exam, teacher, client_for, smtp, fake_pdf, settings, caplog, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    working_port, settings.EMAIL_PORT = settings.EMAIL_PORT, free_port()
    client = client_for(teacher)

    with caplog.at_level(logging.WARNING, logger="grader.outputs.emails"):
        _send(client, scored_exam, django_capture_on_commit_callbacks)

    failed = [d for d in _deliveries(scored_exam).values() if d.status == Status.FAILED]
    assert len(failed) == len(EMAILED)
    assert failed[0].error.startswith(f"Could not reach the SMTP server 127.0.0.1:{settings.EMAIL_PORT}: ")
    assert "check EMAIL_URL" in failed[0].error
    assert any("Could not reach the SMTP server" in record.getMessage() for record in caplog.records)
    page = client.get(reverse("email_students", args=[scored_exam.pk])).content.decode()
    assert f"{len(EMAILED)} emails: Could not reach the SMTP server" in page

    settings.EMAIL_PORT = working_port
    _send(client, scored_exam, django_capture_on_commit_callbacks, name="email_retry")

    assert {d.status for d in _deliveries(scored_exam).values()} == {Status.SENT, Status.NO_ADDRESS}
    assert len(smtp.received) == len(EMAILED) + 1


def test_the_test_email_goes_to_the_teacher_with_test_in_the_subject_and_the_chosen_students_script(
    scored_exam, teacher, client_for, smtp, fake_pdf
):
    teacher.email = TEACHER_EMAIL
    teacher.save()
    ben = scored_exam.students.get(student_id="S2")
    client = client_for(teacher)

    response = client.post(reverse("email_save", args=[scored_exam.pk]), {
        "subject": "{exam} for {name} ({class_name})", "body": "{name}: {total}/{max} = {percent}%",
        "student": ben.pk, "action": "test",
    })

    assert response.status_code == 302
    (received,) = smtp.received
    assert received.recipients == [TEACHER_EMAIL]
    assert received.message["Subject"] == "[TEST] Year 9 Science for Ben Okafor (9A)"
    assert received.message.get_body(("plain",)).get_content().strip() == "Ben Okafor: 4.5/6 = 75%"
    assert received.attachment == ("Year 9 Science - S2.pdf", b"%PDF-1.4 stand-in S2")
    saved = ExamEmail.objects.get(exam=scored_exam)
    assert saved.tested_digest == emails.email_digest(subject=saved.subject, body=saved.body)
    assert saved.tested_to == TEACHER_EMAIL
    assert not EmailDelivery.objects.exists()


def test_a_teacher_without_an_email_address_is_told_the_test_has_nowhere_to_go(scored_exam, teacher, client_for, smtp):
    response = client_for(teacher).post(reverse("email_save", args=[scored_exam.pk]), {
        "subject": emails.DEFAULT_SUBJECT, "body": emails.DEFAULT_BODY, "action": "test",
    }, follow=True)

    assert "Your account has no email address" in response.content.decode()
    assert smtp.received == []
    assert ExamEmail.objects.get(exam=scored_exam).tested_digest == ""


def test_students_are_refused_until_a_test_of_the_current_text_was_sent(
    scored_exam, teacher, client_for, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    _finish(scored_exam, teacher)
    teacher.email = TEACHER_EMAIL
    teacher.save()
    client = client_for(teacher)
    client.post(reverse("email_save", args=[scored_exam.pk]), {"subject": emails.DEFAULT_SUBJECT, "body": emails.DEFAULT_BODY})

    page = client.get(reverse("email_students", args=[scored_exam.pk])).content.decode()
    assert 'disabled aria-describedby="send-why"' in page and "Send a test to yourself first" in page
    response = _send(client, scored_exam, django_capture_on_commit_callbacks)
    assert "Send a test to yourself first" in client.get(response.url).content.decode()
    assert not EmailDelivery.objects.exists()

    emails.email_test_send(exam=scored_exam, user=teacher)
    client.post(reverse("email_save", args=[scored_exam.pk]), {"subject": "Changed: {exam}", "body": emails.DEFAULT_BODY})
    with pytest.raises(emails.EmailRefused, match="changed since your last test"):
        emails.email_students_send(exam=scored_exam, user=teacher)

    emails.email_test_send(exam=scored_exam, user=teacher)
    # The send button posts the text on screen: an edit not saved (so not tested) is refused too.
    _send(client, scored_exam, django_capture_on_commit_callbacks, subject="Edited: {exam}", body=emails.DEFAULT_BODY)
    assert not EmailDelivery.objects.exists()

    _send(client, scored_exam, django_capture_on_commit_callbacks, subject="Changed: {exam}", body=emails.DEFAULT_BODY)
    assert smtp.to("ada@example.org")[0].message["Subject"] == "Changed: Year 9 Science"


def test_students_are_not_emailed_while_the_exam_is_not_finished(
    scored_exam, teacher, client_for, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    client = client_for(teacher)

    response = _send(client, scored_exam, django_capture_on_commit_callbacks)

    assert "Nothing sent. The exam is not finished" in client.get(response.url).content.decode()
    assert not EmailDelivery.objects.exists()
    assert [r.recipients for r in smtp.received] == [[TEACHER_EMAIL]]


def test_the_page_lists_absent_students_and_students_without_an_address(
    scored_exam, teacher, client_for, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    client = client_for(teacher)

    response = _send(client, scored_exam, django_capture_on_commit_callbacks)

    message = client.get(response.url).content.decode()
    assert "Sending 5 emails. No email address for Chloe Martin" in message and "1 absent student not emailed" in message
    overview = emails.email_overview(exam=scored_exam)
    states = {row.student.student_id: row.state for row in overview.rows}
    assert states == {**dict.fromkeys(EMAILED, "sent"), "S3": "no-address", "S7": "absent"}
    assert "absent: no script, not emailed" in message and "no email address" in message
    assert overview.summary == [("sent", 5, "good"), ("no email address", 1, "warn"), ("absent (no script)", 1, "")]


def test_an_email_interrupted_mid_send_is_unknown_and_sent_again_only_when_the_teacher_says_so(
    scored_exam, teacher, client_for, smtp, fake_pdf, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    ada = scored_exam.students.get(student_id="S1")
    delivery = EmailDelivery.objects.create(exam=scored_exam, student=ada, to=ada.email, status=Status.SENDING,
                                            attempts=1, attempted_at=timezone.now() - timedelta(minutes=10))
    client = client_for(teacher)

    emails.email_delivery_send(delivery_id=delivery.pk)
    _send(client, scored_exam, django_capture_on_commit_callbacks)
    _send(client, scored_exam, django_capture_on_commit_callbacks, name="email_retry")

    assert smtp.to(ada.email) == []
    page = client.get(reverse("email_students", args=[scored_exam.pk])).content.decode()
    assert "unknown: check before resending" in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("email_unknown_retry", args=[scored_exam.pk, delivery.pk]))

    delivery.refresh_from_db()
    assert delivery.status == Status.SENT and delivery.attempts == 2
    assert len(smtp.to(ada.email)) == 1


@pytest.mark.parametrize(
    ("subject", "body", "problem"),
    [
        ("{exam}", "Dear {nme}, you got {total}", "Unknown placeholder {nme}"),
        ("{name.__class__}", "{name}", "Unknown placeholder {name.__class__}"),
        ("{exam}", "{total:.2f} marks", "Write {total} without anything after the name"),
        ("{exam", "{name}", "Stray “{” near “{exam”"),
        ("{exam}", "a } b", "Stray “}” near “a } b”"),
    ],
)
def test_a_template_with_an_unknown_placeholder_or_a_stray_brace_is_not_saved(
    scored_exam, teacher, client_for, subject, body, problem
):
    response = client_for(teacher).post(reverse("email_save", args=[scored_exam.pk]), {"subject": subject, "body": body})

    assert response.status_code == 422
    assert problem in response.content.decode()
    assert not ExamEmail.objects.exists()


def test_the_preview_fills_the_placeholders_for_the_chosen_student(scored_exam, teacher, client_for):
    dev = scored_exam.students.get(student_id="S4")
    client = client_for(teacher, htmx=True)

    response = client.get(reverse("email_preview", args=[scored_exam.pk]), {
        "subject": "{exam} {{literal}}", "body": "{name} {student_id} {class_name}: {total} of {max}, {percent}%",
        "student": dev.pk,
    })

    html = response.content.decode()
    assert response.status_code == 200 and 'id="email-preview"' in html and "<html" not in html
    assert "Year 9 Science {literal}" in html
    assert "Dev Patel S4 9B: 2.5 of 6, 41.7%" in html
    assert "Year 9 Science - S4.pdf" in html and "dev@example.org" in html
    default = client_for(teacher).get(reverse("email_students", args=[scored_exam.pk])).content.decode()
    assert "Ada Lovelace &lt;ada@example.org&gt;" in default  # the first student with a script
    without_js = client_for(teacher).get(reverse("email_preview", args=[scored_exam.pk]),
                                         {"subject": "Typed {name}", "body": "Hello"}).content.decode()
    assert "<html" in without_js and "Typed Ada Lovelace" in without_js and "not saved" in without_js
    assert 'value="Typed {name}"' in without_js  # the typed text stays in the form
    assert not ExamEmail.objects.exists()


def test_a_department_head_sees_the_page_read_only_and_gets_403_on_every_post(
    scored_exam, teacher, head, client_for, smtp, django_capture_on_commit_callbacks
):
    _tested(scored_exam, teacher)
    _finish(scored_exam, teacher)
    client = client_for(head)

    page = client.get(reverse("email_students", args=[scored_exam.pk]))
    assert page.status_code == 200 and "Read only" in page.content.decode()
    assert "Send to students" not in page.content.decode()

    delivery = EmailDelivery.objects.create(exam=scored_exam, student=scored_exam.students.first(), status=Status.SENDING)
    with django_capture_on_commit_callbacks(execute=True):
        for name, args in [("email_save", []), ("email_send", []), ("email_retry", []), ("email_unknown_retry", [delivery.pk])]:
            response = client.post(reverse(name, args=[scored_exam.pk, *args]),
                                   {"subject": "x", "body": "y", "action": "test"})
            assert response.status_code == 403, name
    assert len(smtp.received) == 1  # the teacher's own test only
    assert ExamEmail.objects.get(exam=scored_exam).subject == emails.DEFAULT_SUBJECT


def test_the_status_card_polls_while_emails_are_on_their_way_and_stops_when_done(scored_exam, teacher, client_for):
    ada = scored_exam.students.get(student_id="S1")
    delivery = EmailDelivery.objects.create(exam=scored_exam, student=ada, to=ada.email, status=Status.QUEUED)
    client = client_for(teacher, htmx=True)
    url = reverse("email_status", args=[scored_exam.pk])

    polling = client.get(url)
    assert polling.status_code == 200
    assert 'hx-trigger="every 1s"' in polling.content.decode() and "queued" in polling.content.decode()

    delivery.status, delivery.sent_at = Status.SENT, timezone.now()
    delivery.save()
    done = client.get(url)
    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode() and "1 sent" in done.content.decode()
