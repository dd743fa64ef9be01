"""The "Email students" page: the email's subject and body with a live preview, a test to the teacher,
sending to students and the delivery table, polled while emails are on their way.

Every change is a plain form POST answered with a redirect (the page works without JavaScript); htmx
refreshes the preview as the teacher types and polls the status card (``HTMX_STOP_POLLING`` once
nothing is queued or sending). Department heads may look; every POST needs the right to change the
exam (403 otherwise). Rules live in ``grader.outputs.emails``.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from grader import selectors as grader_selectors
from grader.grading.selectors import exam_finished
from grader.inputs import whole_number_parse
from grader.models import Exam
from grader.wording import counted

from . import emails


class ExamEmailForm(forms.Form):
    subject = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}))

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.disabled = read_only


def _student_pk(data: QueryDict) -> int | None:
    """The roster student (pk) whose email the page shows, None for the default one; ``ValueError``
    when ``student`` is not a number."""
    raw = data.get("student", "")
    student_pk = whole_number_parse(raw)
    if raw and student_pk is None:
        raise ValueError(f"student must be a student's number, not {raw[:20]!r}.")
    return student_pk


def _bad_request(error: ValueError) -> HttpResponse:
    return HttpResponseBadRequest(str(error), content_type="text/plain")


def _page_url(exam: Exam, student_pk: int | None) -> str:
    url = reverse("email_students", args=[exam.pk])
    return f"{url}?student={student_pk}" if student_pk else url


def _text_digest(request: HttpRequest) -> str | None:
    """Digest of the subject and body the teacher's screen shows (posted with the send buttons)."""
    if "subject" not in request.POST or "body" not in request.POST:
        return None
    return emails.email_digest(subject=request.POST["subject"], body=request.POST["body"])


def _status_context(request: HttpRequest, exam: Exam) -> dict:
    email = emails.exam_email_get(exam=exam)
    overview = emails.email_overview(exam=exam)
    blocker = emails.email_send_blocker(exam=exam, email=email)
    if not blocker and not overview.with_script:
        blocker = "No student has a script yet."
    return {
        "exam": exam,
        "email": email,
        "overview": overview,
        "send_blocker": blocker,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
    }


def _page_context(request: HttpRequest, exam: Exam, *, form: ExamEmailForm | None = None, student_pk: int | None = None,
                  unsaved: bool = False) -> dict:
    context = _status_context(request, exam)
    email = context["email"]
    if form is None:
        form = ExamEmailForm(initial={"subject": email.subject, "body": email.body}, read_only=not context["can_change"])
    if form.is_bound:
        subject, body = form.data.get("subject", ""), form.data.get("body", "")
    else:
        subject, body = email.subject, email.body
    problems = emails.email_templates_check(subject=subject, body=body)
    preview = None if problems else emails.email_preview(exam=exam, subject=subject, body=body, student_pk=student_pk)
    return {
        **context,
        "form": form,
        "problems": problems,
        "preview": preview,
        "unsaved": unsaved,
        "finished": exam_finished(exam_id=exam.pk),
        "placeholders": emails.PLACEHOLDERS,
        "tested_current": bool(email.tested_digest)
        and email.tested_digest == emails.email_digest(subject=email.subject, body=email.body),
    }


@login_required
@require_GET
def email_students(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    try:
        student_pk = _student_pk(request.GET)
    except ValueError as error:
        return _bad_request(error)
    return render(request, "outputs/email.html", _page_context(request, exam, student_pk=student_pk))


@login_required
@require_GET
def email_preview(request: HttpRequest, exam_id: int) -> HttpResponse:
    """The email as typed (not saved) for ``?student=``: the preview card for htmx, else the whole page."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    try:
        student_pk = _student_pk(request.GET)
    except ValueError as error:
        return _bad_request(error)
    can_change = grader_selectors.exam_can_change(user=request.user, exam=exam)
    form = ExamEmailForm(request.GET, read_only=not can_change) if "subject" in request.GET else None
    context = _page_context(request, exam, form=form, student_pk=student_pk, unsaved=form is not None)
    return render(request, "outputs/email.html#preview" if request.htmx else "outputs/email.html", context)


@login_required
@require_GET
def email_status(request: HttpRequest, exam_id: int) -> HttpResponse:
    """The status card (htmx polling); 286 stops the polling once nothing is queued or sending."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    if not request.htmx:
        return redirect("email_students", exam_id=exam.pk)
    context = _status_context(request, exam)
    response = render(request, "outputs/email.html#status", context)
    if not context["overview"].in_flight:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def email_save(request: HttpRequest, exam_id: int) -> HttpResponse:
    """Save the subject and body; with ``action=test`` also send the test email to the teacher."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    try:
        student_pk = _student_pk(request.POST)
    except ValueError as error:
        return _bad_request(error)
    form = ExamEmailForm(request.POST)
    if form.is_valid():
        try:
            emails.exam_email_save(exam=exam, **form.cleaned_data)
        except emails.EmailTemplateRefused as refused:
            for name, problems in refused.problems.items():
                form.add_error(name, problems)
    if not form.is_valid():
        messages.error(request, "Not saved: fix the problems shown under the subject or body.")
        context = _page_context(request, exam, form=form, student_pk=student_pk, unsaved=True)
        return render(request, "outputs/email.html", context, status=422)
    if request.POST.get("action") != "test":
        messages.success(request, "Email saved.")
        return redirect(_page_url(exam, student_pk))
    try:
        rendered = emails.email_test_send(exam=exam, user=request.user, student_pk=student_pk)
    except emails.EmailRefused as refused:
        messages.error(request, f"Email saved. {refused}")
    else:
        messages.success(request, f"Test sent to {request.user.email}: {rendered.student.name}'s email, with "
                                  f"{rendered.filename} attached. Check it, then send to students.")
    return redirect(_page_url(exam, student_pk))


@login_required
@require_POST
def email_send(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    try:
        summary = emails.email_students_send(exam=exam, user=request.user, text_digest=_text_digest(request))
    except emails.EmailRefused as refused:
        messages.error(request, f"Nothing sent. {refused}")
        return redirect("email_students", exam_id=exam.pk)
    parts = [f"Sending {counted(len(summary.queued), 'email')}." if summary.queued else "Nothing new to send."]
    if summary.no_address:
        names = ", ".join(student.name for student in summary.no_address)
        parts.append(f"No email address for {names}: add it on the roster, then send again.")
    if summary.already:
        parts.append(f"{len(summary.already)} already emailed (or being emailed) left alone.")
    if summary.absent:
        parts.append(f"{counted(len(summary.absent), 'absent student')} not emailed.")
    messages.success(request, " ".join(parts))
    return redirect("email_students", exam_id=exam.pk)


@login_required
@require_POST
def email_retry(request: HttpRequest, exam_id: int) -> HttpResponse:
    """Queue the failed emails again, and only those."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    try:
        count = emails.email_failed_retry(exam=exam, user=request.user, text_digest=_text_digest(request))
    except emails.EmailRefused as refused:
        messages.error(request, f"Nothing sent. {refused}")
    else:
        messages.success(request, f"Trying {counted(count, 'failed email')} again." if count else "No failed emails to retry.")
    return redirect("email_students", exam_id=exam.pk)


@login_required
@require_POST
def email_unknown_retry(request: HttpRequest, exam_id: int, delivery_id: int | None = None) -> HttpResponse:
    """The teacher checked that interrupted emails (one, or all of them) did not arrive: send them again."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    try:
        deliveries = emails.email_unknown_retry(exam=exam, delivery_id=delivery_id, user=request.user,
                                                text_digest=_text_digest(request))
    except emails.EmailRefused as refused:
        messages.error(request, str(refused))
    else:
        names = ", ".join(delivery.student.name for delivery in deliveries)
        messages.success(request, f"Sending again: {names}." if len(deliveries) > 1
                         else f"Sending {names}'s email again.")
    return redirect("email_students", exam_id=exam.pk)
