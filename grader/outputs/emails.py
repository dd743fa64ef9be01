"""Emailing each student their own scored script: the email's templates, the test a teacher sends to
themselves, and one ``EmailDelivery`` per student sent by a Celery task.

The subject and body are templates with ``{placeholder}`` fields (``PLACEHOLDERS``), filled in per
student: marks as a teacher writes them ("4.5", "6"), the percentage to at most one decimal ("75",
"41.7"). Only bare names are allowed, so a template cannot reach attributes (``{name.__class__}``).

Rules that keep students from getting a wrong or second email:

- students are emailed only once the exam is finished (scores locked) and only with the subject and
  body of the last test email the teacher sent to themselves (``ExamEmail.tested_digest``);
- a delivery is sent only from ``queued`` or ``failed``; its message (scored PDF included) is made
  first, then it is marked ``sending`` (committed, with the message's ``Message-ID``) just before the
  SMTP conversation, so a worker that dies mid-send leaves ``sending``, which is never resent
  automatically: the teacher checks and asks for a retry explicitly (one at a time or all at once);
  a resent email keeps its ``Message-ID``, so a mail system that got the first copy can tell;
- a delivery left ``queued`` for ``WORK_STALLED_MINUTES`` (its message lost with the broker, or its
  worker killed before it began) is queued again by the recovery sweep: it cannot have been sent.

Mail goes through Django's mail settings (``EMAIL_URL`` in the environment, see ``grader/settings.py``);
SMTP and network errors become readable text on the delivery and in the log.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr

from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage, make_msgid
from django.db import transaction
from django.utils import timezone

from grader.grading.selectors import exam_finished
from grader.models import Exam, Script, Student, User
from grader.recovery.jobs import DB_ERRORS, db_retrying
from grader.recovery.models import stalled_before
from grader.rubrics import selectors as rubric_selectors
from ml.scoring import figure_text, marks_text

from .models import EmailDelivery, ExamEmail
from .pdf import script_pdf
from .selectors import ScriptResult, script_results, student_results
from .services import file_stem

logger = logging.getLogger(__name__)

Status = EmailDelivery.Status

PLACEHOLDERS = {
    "name": "the student's name",
    "student_id": "the student's ID",
    "class_name": "the student's class",
    "total": "the student's total, in marks",
    "max": "the most marks possible",
    "percent": "the total as a percentage (no % sign)",
    "exam": "the exam's title",
    "feedback": "your written feedback on the rubric questions, a paragraph each (empty when there is none)",
}
DEFAULT_SUBJECT = "{exam}: your scored script"
DEFAULT_BODY = (
    "Dear {name},\n\n"
    "Your scored script for {exam} is attached. You scored {total} out of {max} ({percent}%).\n\n"
    "If you think a question was scored wrongly, please speak to your teacher.\n\n"
    "Best wishes"
)
TEST_PREFIX = "[TEST] "
# A delivery still ``sending`` after this long lost its worker: the SMTP timeout and the PDF take seconds.
SENDING_STUCK_AFTER = timedelta(minutes=2)
# Seconds to wait on the SMTP server when EMAIL_TIMEOUT is not set (Django would wait forever).
SMTP_TIMEOUT_S = 30


class EmailRefused(ValueError):
    """The email cannot be sent (or saved) as asked; the message says why, for the teacher."""


class EmailTemplateRefused(EmailRefused):
    """The subject or body has problems: ``problems`` maps "subject"/"body" to sentences."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__(" ".join(f"{name.capitalize()}: {p}" for name, found in problems.items() for p in found))


# ---------------------------------------------------------------- templates


def email_template_problems(text: str) -> list[str]:
    """What is wrong with a subject or body template, one sentence per problem (empty: fine)."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text)
                  if name is not None]
    except ValueError:
        return [_stray_brace(text)]
    unknown, problems = [], []
    for name, spec, conversion in fields:
        written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name not in PLACEHOLDERS:
            unknown.append(written)
        elif spec or conversion:
            problems.append(f"Write {{{name}}} without anything after the name ({written} is not allowed).")
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        problems.insert(0, f"Unknown placeholder {', '.join(dict.fromkeys(unknown))}: use one of {known}.")
    return list(dict.fromkeys(problems))


def _stray_brace(text: str) -> str:
    """The sentence for a template ``string.Formatter`` cannot parse: where the unmatched brace is."""
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith(char * 2, index) and char in "{}":
            index += 2
        elif char == "{":
            close = text.find("}", index)
            if close < 0 or "{" in text[index + 1:close]:
                break
            index = close + 1
        elif char == "}":
            break
        else:
            index += 1
    near = text[max(0, index - 15):index + 15].replace("\n", " ")
    return (f"Stray “{text[index:index + 1] or '{'}” near “{near}”: placeholders are written {{name}}; "
            "for a brace in the text itself write {{ or }}.")


def email_templates_check(*, subject: str, body: str) -> dict[str, list[str]]:
    """Problems of a subject and body, by field ("subject", "body"); empty when both are fine."""
    problems = {"subject": email_template_problems(subject), "body": email_template_problems(body)}
    if "\n" in subject.strip() or "\r" in subject.strip():
        problems["subject"].append("Keep the subject on one line.")
    return {name: found for name, found in problems.items() if found}


def _normalised(subject: str, body: str) -> tuple[str, str]:
    # Browsers post textareas with CRLF line ends: the same text must give the same digest.
    return subject.strip(), body.replace("\r\n", "\n")


def email_digest(*, subject: str, body: str) -> str:
    """sha256 (hex) of a subject and body as saved: what a test email is matched against."""
    subject, body = _normalised(subject, body)
    return hashlib.sha256(f"{subject}\x00{body}".encode()).hexdigest()


def exam_email_get(*, exam: Exam) -> ExamEmail:
    """The exam's saved email, or the default one (not saved) when the teacher has not written any."""
    return ExamEmail.objects.filter(exam=exam).first() or ExamEmail(exam=exam, subject=DEFAULT_SUBJECT, body=DEFAULT_BODY)


@transaction.atomic
def exam_email_save(*, exam: Exam, subject: str, body: str) -> ExamEmail:
    """Save the subject and body templates; ``EmailTemplateRefused`` names every problem. Saving a
    changed text keeps the last test's digest: students are refused until a test matches the new text."""
    problems = email_templates_check(subject=subject, body=body)
    if problems:
        raise EmailTemplateRefused(problems)
    subject, body = _normalised(subject, body)
    email, _ = ExamEmail.objects.update_or_create(exam=exam, defaults={"subject": subject, "body": body})
    return email


def _fill(template: str, values: dict[str, str]) -> str:
    # Filled field by field rather than with str.format, which would follow attributes and indexes.
    return "".join(literal + (values[name] if name is not None else "")
                   for literal, name, _, _ in string.Formatter().parse(template))


@dataclass(frozen=True)
class RenderedEmail:
    """One student's email as it will be sent: ``to`` is empty when the student has no address."""

    student: Student
    to: str
    subject: str
    body: str
    filename: str


def email_attachment_name(*, exam: Exam, student: Student) -> str:
    """``<exam title> - <student ID>.pdf``, safe as a file name on every system."""
    return f"{file_stem(f'{exam.title} - {student.student_id}')}.pdf"


def email_render(*, subject: str, body: str, exam: Exam, result: ScriptResult) -> RenderedEmail:
    """Fill the (valid) templates for the student ``result`` belongs to."""
    student = result.student
    values = {
        "name": student.name,
        "student_id": student.student_id,
        "class_name": student.class_name,
        "total": marks_text(result.total),
        "max": marks_text(result.max_total),
        "percent": figure_text(result.percent, 1),
        "exam": exam.title,
        "feedback": rubric_selectors.script_feedback_text(
            labelled_answers=[(row.question.label, row.answer.pk) for row in result.rows if row.answer is not None]),
    }
    return RenderedEmail(
        student=student,
        to=student.email,
        subject=" ".join(_fill(subject, values).split()),
        body=_fill(body, values),
        filename=email_attachment_name(exam=exam, student=student),
    )


def _student_result(*, exam: Exam, student: Student) -> ScriptResult | None:
    """The student's result, taking their first script by number as ``student_results`` does."""
    script = Script.objects.filter(exam=exam, student=student).order_by("number").first()
    return script_results(exam=exam, script_ids=[script.pk])[0] if script else None


def _preview_result(*, exam: Exam, student_pk: int | None) -> ScriptResult | None:
    results = [result for _, result in student_results(exam=exam) if result is not None]
    return next((r for r in results if r.student.pk == student_pk), results[0] if results else None)


def email_preview(*, exam: Exam, subject: str, body: str, student_pk: int | None = None) -> RenderedEmail | None:
    """The email for the chosen roster student (default: the first with a script); None when no
    student has a script. Templates must be valid (see ``email_template_problems``)."""
    result = _preview_result(exam=exam, student_pk=student_pk)
    return email_render(subject=subject, body=body, exam=exam, result=result) if result else None


# ---------------------------------------------------------------- sending


def _from_domain() -> str | None:
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or None


def _message(*, rendered: RenderedEmail, to: str, subject: str, pdf: bytes, reply_to: str = "",
             message_id: str = "") -> EmailMessage:
    message = EmailMessage(
        subject=subject, body=rendered.body, to=[to], reply_to=[reply_to] if reply_to else None,
        headers={"Message-ID": message_id or make_msgid(domain=_from_domain())},
    )
    message.attach(rendered.filename, pdf, "application/pdf")
    return message


def _send(message: EmailMessage) -> None:
    """Send one message; raises ``smtplib.SMTPException`` or ``OSError`` when it was not accepted."""
    connection = mail.get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT_S)
    connection.send_messages([message])


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(text.split())}"


def smtp_error_text(error: OSError | ValueError) -> str:
    """An SMTP or network error (or an address Python cannot encode) as a sentence a teacher, or
    their IT person, can act on."""
    if isinstance(error, ValueError):
        return f"The address could not be used: {error}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{address}: {_reply(*reply)}" for address, reply in error.recipients.items())
        return f"SMTP server refused recipient {refused}"
    if isinstance(error, smtplib.SMTPSenderRefused):
        return (f"SMTP server refused the sender {error.sender}: {_reply(error.smtp_code, error.smtp_error)} "
                "(check DEFAULT_FROM_EMAIL).")
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"SMTP login failed: {_reply(error.smtp_code, error.smtp_error)} (check the user and password in EMAIL_URL)."
    if isinstance(error, smtplib.SMTPResponseException):
        return f"SMTP server said {_reply(error.smtp_code, error.smtp_error)}"
    if isinstance(error, smtplib.SMTPException):
        return f"SMTP error: {error or type(error).__name__}"
    reason = error.strerror or str(error) or type(error).__name__
    return f"Could not reach the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: {reason} (check EMAIL_URL)."


def email_send_blocker(*, exam: Exam, email: ExamEmail) -> str:
    """Why students cannot be emailed now (a sentence for the teacher), or "" when they can."""
    if not exam_finished(exam_id=exam.pk):
        return "The exam is not finished: finish it first, so the scores students receive are final."
    if not email.pk or not email.tested_digest:
        return "Send a test to yourself first, to check the email and its attachment."
    problems = email_templates_check(subject=email.subject, body=email.body)
    if problems:  # only a text saved around the form (admin, shell) gets here
        return f"The saved email has problems: {EmailTemplateRefused(problems)}"
    if email.tested_digest != email_digest(subject=email.subject, body=email.body):
        return "The subject or body changed since your last test: send a test to yourself again."
    return ""


def _send_check(*, exam: Exam, email: ExamEmail, text_digest: str | None) -> None:
    blocker = email_send_blocker(exam=exam, email=email)
    if not blocker and text_digest is not None and text_digest != email.tested_digest:
        blocker = "The text on screen is not the text you tested: save it and send a test to yourself first."
    if blocker:
        raise EmailRefused(blocker)


def email_test_send(*, exam: Exam, user: User, student_pk: int | None = None) -> RenderedEmail:
    """Send the saved email for one student (as ``email_preview`` picks them) to ``user``'s own address,
    "[TEST]" in the subject and that student's scored script attached. Records the tested text, which
    unlocks sending to students. Sent at once, not queued: the teacher waits for the answer."""
    if not user.email:
        raise EmailRefused("Your account has no email address, so the test has nowhere to go: ask an administrator to add one.")
    email = ExamEmail.objects.filter(exam=exam).first()
    if email is None:
        raise EmailRefused("Save the email first.")
    result = _preview_result(exam=exam, student_pk=student_pk)
    if result is None:
        raise EmailRefused("No student has a script yet, so there is nothing to attach.")
    rendered = email_render(subject=email.subject, body=email.body, exam=exam, result=result)
    message = _message(rendered=rendered, to=user.email, subject=TEST_PREFIX + rendered.subject,
                       pdf=script_pdf(result=result))
    try:
        _send(message)
    except (OSError, ValueError) as error:
        text = smtp_error_text(error)
        logger.warning("Test email for exam %s to %s failed: %s", exam.pk, user.email, text)
        raise EmailRefused(f"The test was not sent. {text}") from error
    # The digest of what was sent: if the teacher saved new text meanwhile, it simply does not match.
    ExamEmail.objects.filter(pk=email.pk).update(
        tested_digest=email_digest(subject=email.subject, body=email.body), tested_at=timezone.now(), tested_to=user.email
    )
    return rendered


@dataclass
class SendSummary:
    """What "Send to students" did; lists of students."""

    queued: list[Student] = field(default_factory=list)
    no_address: list[Student] = field(default_factory=list)
    already: list[Student] = field(default_factory=list)  # sent or sending: left alone
    absent: list[Student] = field(default_factory=list)


def _enqueue(delivery_ids: list[int]) -> None:
    from .tasks import email_delivery_send_task

    transaction.on_commit(lambda: [email_delivery_send_task.delay(pk) for pk in delivery_ids])


def _locked_email(exam: Exam) -> ExamEmail:
    # Locking the email serialises two teachers sending (or one editing while another sends).
    email = ExamEmail.objects.select_for_update().filter(exam=exam).first()
    return email or ExamEmail(exam=exam)


@transaction.atomic
def email_students_send(*, exam: Exam, user: User, text_digest: str | None = None) -> SendSummary:
    """Queue the email to every roster student with a script who has not had it: one delivery each,
    ``queued`` (a task sends it) or ``no-address``. Deliveries ``sent`` or ``sending`` are left alone,
    so nobody is emailed twice. ``text_digest``: the digest of the text the teacher is looking at,
    refused when it is not the tested text. Raises ``EmailRefused`` (see ``email_send_blocker``)."""
    _send_check(exam=exam, email=_locked_email(exam), text_digest=text_digest)
    deliveries = {d.student_id: d for d in EmailDelivery.objects.select_for_update().filter(exam=exam)}
    summary, now, to_send = SendSummary(), timezone.now(), []
    for student, result in student_results(exam=exam):
        if result is None:
            summary.absent.append(student)
            continue
        delivery = deliveries.get(student.pk) or EmailDelivery(exam=exam, student=student)
        if delivery.status in (Status.SENT, Status.SENDING):
            summary.already.append(student)
            continue
        delivery.to, delivery.error, delivery.queued_at, delivery.queued_by = student.email, "", now, user
        delivery.status = Status.QUEUED if student.email else Status.NO_ADDRESS
        delivery.save()
        if student.email:
            summary.queued.append(student)
            to_send.append(delivery.pk)
        else:
            summary.no_address.append(student)
    _enqueue(to_send)
    return summary


@transaction.atomic
def email_failed_retry(*, exam: Exam, user: User, text_digest: str | None = None) -> int:
    """Queue every ``failed`` delivery again (and nothing else); returns how many."""
    _send_check(exam=exam, email=_locked_email(exam), text_digest=text_digest)
    failed = list(EmailDelivery.objects.select_for_update().filter(exam=exam, status=Status.FAILED))
    for delivery in failed:
        delivery.status, delivery.queued_at, delivery.queued_by = Status.QUEUED, timezone.now(), user
        delivery.save(update_fields=["status", "queued_at", "queued_by"])
    _enqueue([d.pk for d in failed])
    return len(failed)


@transaction.atomic
def email_unknown_retry(*, exam: Exam, user: User, delivery_id: int | None = None,
                        text_digest: str | None = None) -> list[EmailDelivery]:
    """Queue again the deliveries whose attempt was interrupted mid-send (state ``unknown``: ``sending``
    for longer than ``SENDING_STUCK_AFTER``): the one ``delivery_id``, or every one of the exam. The
    teacher says so after checking the students did not get them. Each is queued once (locked; a
    second request finds it queued and leaves it), and keeps its ``Message-ID``. Refused when there
    is none, or the one asked for is in any other state."""
    _send_check(exam=exam, email=_locked_email(exam), text_digest=text_digest)
    unknown = EmailDelivery.objects.select_for_update().filter(
        exam=exam, status=Status.SENDING, attempted_at__lt=timezone.now() - SENDING_STUCK_AFTER)
    if delivery_id is not None:
        unknown = unknown.filter(pk=delivery_id)
    deliveries = list(unknown.select_related("student"))
    if not deliveries:
        raise EmailRefused("That email is not waiting for a check (it may have been dealt with already)."
                           if delivery_id is not None else "No interrupted email is waiting for a check.")
    for delivery in deliveries:
        delivery.status, delivery.queued_at, delivery.queued_by = Status.QUEUED, timezone.now(), user
        delivery.error = "Queued again by a teacher after an interrupted attempt."
        delivery.save(update_fields=["status", "queued_at", "queued_by", "error"])
    _enqueue([d.pk for d in deliveries])
    return deliveries


def email_stalled_requeue() -> int:
    """Queue again every delivery ``queued`` with no attempt for ``WORK_STALLED_MINUTES`` (its task was
    lost with the broker or never ran); returns how many. A queued delivery was never handed to the
    SMTP server, so this cannot send anything twice."""
    with transaction.atomic():
        stalled = list(EmailDelivery.objects.select_for_update(skip_locked=True).filter(
            status=Status.QUEUED, queued_at__lt=stalled_before()).values_list("pk", flat=True))
        EmailDelivery.objects.filter(pk__in=stalled).update(queued_at=timezone.now())
        _enqueue(stalled)
    if stalled:
        logger.warning("Queued %d stalled email deliveries again", len(stalled))
    return len(stalled)


def _delivery_end(delivery: EmailDelivery, status: str, **fields) -> EmailDelivery:
    """Write a delivery's outcome, from the state this attempt put it in (a dropped connection is
    reconnected: the outcome of an SMTP conversation must not be lost)."""
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.status = status
    db_retrying(lambda: delivery.save(update_fields=["status", *fields]))
    return delivery


def _delivery_message(delivery: EmailDelivery) -> EmailMessage:
    """The message for a delivery about to be sent to ``delivery.to``; ``EmailRefused`` when the rules
    changed since it was queued (exam reopened, text edited and not tested) or the student lost their
    script. It keeps the delivery's ``Message-ID`` from an earlier attempt."""
    exam = delivery.exam
    email = ExamEmail.objects.filter(exam=exam).first() or ExamEmail(exam=exam)
    blocker = email_send_blocker(exam=exam, email=email)
    if blocker:
        raise EmailRefused(f"Not sent: {blocker} Then retry.")
    result = _student_result(exam=exam, student=delivery.student)
    if result is None:
        raise EmailRefused("Not sent: no script belongs to this student any more.")
    rendered = email_render(subject=email.subject, body=email.body, exam=exam, result=result)
    reply_to = delivery.queued_by.email if delivery.queued_by else ""
    return _message(rendered=rendered, to=delivery.to, subject=rendered.subject, pdf=script_pdf(result=result),
                    reply_to=reply_to, message_id=delivery.message_id)


def _delivery_refused(delivery_id: int, error: str) -> EmailDelivery | None:
    """Mark a delivery failed before anything was sent, unless another attempt took it meanwhile."""
    with transaction.atomic():
        delivery = EmailDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None or delivery.status not in (Status.QUEUED, Status.FAILED):
            return delivery
        return _delivery_end(delivery, Status.FAILED, error=error)


def email_delivery_send(*, delivery_id: int) -> EmailDelivery | None:
    """Send one student's email if it is ``queued`` or ``failed``; any other state is returned as is.

    The message, scored PDF included, is made first; then the delivery is marked ``sending``
    (attempts + 1, its ``Message-ID``) and committed, under a lock that lets only one attempt do so;
    then the SMTP conversation, then ``sent`` (with ``sent_at``) or ``failed`` (with a readable error,
    logged). A worker killed while making the message leaves the delivery ``queued``, which is
    queued again; only one killed mid-conversation leaves ``sending`` (the teacher checks).
    """
    delivery = (EmailDelivery.objects.select_related("exam", "student", "queued_by").filter(pk=delivery_id).first())
    if delivery is None or delivery.status not in (Status.QUEUED, Status.FAILED):
        return delivery
    delivery.to = delivery.student.email
    if not delivery.to:
        with transaction.atomic():
            locked = EmailDelivery.objects.select_for_update().get(pk=delivery_id)
            if locked.status not in (Status.QUEUED, Status.FAILED):
                return locked
            return _delivery_end(locked, Status.NO_ADDRESS, to="")
    try:
        message = _delivery_message(delivery)
    except EmailRefused as refused:
        return _delivery_refused(delivery_id, str(refused))
    except DB_ERRORS:
        raise  # nothing was marked: the task is retried
    except Exception:
        # Nothing reached the SMTP server, so failed (retryable) is the truth; the trace is for the admin.
        logger.exception("Could not make the email of delivery %s (exam %s)", delivery.pk, delivery.exam_id)
        return _delivery_refused(delivery_id, "Could not make the scored script PDF; the server log has the details.")
    with transaction.atomic():
        locked = EmailDelivery.objects.select_for_update().get(pk=delivery_id)
        if locked.status not in (Status.QUEUED, Status.FAILED):
            return locked  # another attempt took it while this one made the message
        if locked.message_id:  # an attempt got this far meanwhile: every copy of the email is one Message-ID
            message.extra_headers["Message-ID"] = locked.message_id
        delivery = _delivery_end(delivery, Status.SENDING, to=delivery.to, attempts=locked.attempts + 1,
                                 attempted_at=timezone.now(), error="", message_id=message.extra_headers["Message-ID"])
    try:
        _send(message)
    except (OSError, ValueError) as error:
        text = smtp_error_text(error)
        logger.warning("Email to %s (delivery %s, exam %s) failed: %s", delivery.to, delivery.pk, delivery.exam_id, text)
        return _delivery_end(delivery, Status.FAILED, error=text)
    return _delivery_end(delivery, Status.SENT, sent_at=timezone.now(), subject=message.subject[:300])


# ---------------------------------------------------------------- the status table


@dataclass
class EmailRow:
    """A roster student and their email. ``state``: ``absent`` (no script, not emailed), ``not-sent``,
    ``no-address`` (also before any sending), ``unknown`` (``sending`` for longer than
    ``SENDING_STUCK_AFTER``) or the delivery's status."""

    student: Student
    has_script: bool
    delivery: EmailDelivery | None
    state: str


# state, how the summary names it, badge class
SUMMARY = (
    (Status.SENT, "sent", "good"),
    (Status.QUEUED, "queued", "busy"),
    (Status.SENDING, "sending", "busy"),
    ("unknown", "unknown: check before resending", "warn"),
    (Status.FAILED, "failed", "bad"),
    (Status.NO_ADDRESS, "no email address", "warn"),
    ("not-sent", "not sent yet", ""),
    ("absent", "absent (no script)", ""),
)


@dataclass
class EmailOverview:
    rows: list[EmailRow]
    counts: Counter
    errors: list[tuple[str, int]]  # distinct error texts of failed deliveries with how many, commonest first

    @property
    def in_flight(self) -> bool:
        return bool(self.counts[Status.QUEUED] or self.counts[Status.SENDING])

    @property
    def summary(self) -> list[tuple[str, int, str]]:
        """(label, count, badge class) of every state some student is in, in ``SUMMARY`` order."""
        return [(label, self.counts[state], badge) for state, label, badge in SUMMARY if self.counts[state]]

    @property
    def with_script(self) -> list[EmailRow]:
        return [row for row in self.rows if row.has_script]


def _state(student: Student, delivery: EmailDelivery | None, has_script: bool, now) -> str:
    if delivery is None:
        if not has_script:
            return "absent"
        return "not-sent" if student.email else Status.NO_ADDRESS
    if delivery.status == Status.SENDING and (delivery.attempted_at or now) < now - SENDING_STUCK_AFTER:
        return "unknown"
    return delivery.status


def email_overview(*, exam: Exam) -> EmailOverview:
    """Every roster student with the state of their email, counts by state, and the errors."""
    deliveries = {d.student_id: d for d in EmailDelivery.objects.filter(exam=exam)}
    has_script = set(Script.objects.filter(exam=exam, student__isnull=False).values_list("student_id", flat=True))
    now = timezone.now()
    rows = [
        EmailRow(student=student, has_script=student.pk in has_script, delivery=deliveries.get(student.pk),
                 state=_state(student, deliveries.get(student.pk), student.pk in has_script, now))
        for student in exam.students.order_by("class_name", "name")
    ]
    errors = Counter(row.delivery.error for row in rows if row.state == Status.FAILED and row.delivery.error)
    return EmailOverview(rows=rows, counts=Counter(row.state for row in rows), errors=errors.most_common())
