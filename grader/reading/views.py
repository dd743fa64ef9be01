"""Reading screens: pipeline progress, re-reading, question settings, crop images and the identity screen.

Views parse the request, call one service or selector and render; permissions come from
``grader.selectors.exam_get_for_user`` (404 for exams a user may not see, 403 for changes by
read-only users).
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from grader import selectors as grader_selectors
from grader.inputs import whole_number_parse
from grader.wording import counted

from . import selectors, services
from .forms import IdentityChoiceForm, QuestionSettingsForm

logger = logging.getLogger(__name__)

# Polls (every 2 s) with no change in any count before the progress card stops polling: 5 minutes.
IDLE_POLLS = 150


def _jpeg(data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


# ---------------------------------------------------------------- pipeline progress


def _poll_idle(request: HttpRequest, pipeline: selectors.Pipeline, *, started: bool) -> int | None:
    """How many polls in a row saw no change (0 = poll on), or None when the card should stop polling.

    The card polls while work that runs by itself (processing uploads, reading boxes) is unfinished,
    and stops when everything is complete or nothing has changed for ``IDLE_POLLS`` polls.
    """
    if pipeline.complete or not pipeline.pending:
        return None
    if "idle" in request.GET:
        idle = whole_number_parse(request.GET["idle"]) or 0
        idle = idle + 1 if request.GET.get("seen") == pipeline.fingerprint else 0
        return idle if idle < IDLE_POLLS else None
    return 0 if started or pipeline.recently_active or pipeline.uploads_running else None


def _pipeline_response(request: HttpRequest, exam, *, started: bool = False, notice: str = "") -> HttpResponse:
    pipeline = selectors.pipeline_progress(exam=exam)
    idle = _poll_idle(request, pipeline, started=started)
    context = {
        "exam": exam,
        "pipeline": pipeline,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "poll": idle is not None,
        "idle": idle or 0,
        "notice": notice,
    }
    if not request.htmx:
        return render(request, "reading/progress.html", context)
    response = render(request, "reading/progress.html#pipeline-card", context)
    if idle is None and request.method == "GET":
        response.status_code = HTMX_STOP_POLLING
        if "idle" in request.GET:  # a poll that ends: the exam page refreshes its scripts (names, counts)
            trigger_client_event(response, "readingFinished", {"complete": pipeline.complete})
    return response


@login_required
@require_GET
def reading_progress(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    return _pipeline_response(request, exam)


@login_required
@require_POST
def reading_read_all(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    count = services.exam_read_enqueue(exam=exam)
    return _reading_queued(request, exam, f"Reading {counted(count, 'script')} again. Teacher scores and corrected "
                                          "texts are kept.")


@login_required
@require_POST
def reading_read_unread(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    count = services.exam_unread_enqueue(exam=exam)
    return _reading_queued(request, exam, f"Reading {counted(count, 'script')} with boxes not read yet.")


def _reading_queued(request: HttpRequest, exam, notice: str) -> HttpResponse:
    """The answer to a button that queued reading: the card, polling again, or back to the exam page."""
    if request.htmx:
        return _pipeline_response(request, exam, started=True, notice=notice)
    messages.success(request, notice)
    return redirect(f"{exam.get_absolute_url()}#reading")


@login_required
@require_POST
def reading_match(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    result = services.exam_identity_match(exam_id=exam.pk)
    confident = sum(match.confident for match in result.matches)
    notice = (
        f"Matched students again: {counted(confident, 'script')} matched, {len(result.unmatched)} need a teacher, "
        f"{counted(len(result.absent), 'student')} without a script. Scripts a teacher confirmed were left alone."
    )
    if request.htmx:
        response = _pipeline_response(request, exam, notice=notice)
        trigger_client_event(response, "readingFinished", {"complete": False})
        return response
    messages.success(request, notice)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = f"{exam.get_absolute_url()}#reading"
    return redirect(back)


# ---------------------------------------------------------------- one script


@login_required
@require_GET
def script_reading(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    script = grader_selectors.script_get(exam=exam, number=number)
    context = {
        "exam": exam,
        "script": script,
        "answers": selectors.answer_list_for_script(script=script),
        "row": selectors.identity_row(script=script),
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
    }
    template = "reading/script_reading.html#script-card" if request.htmx else "reading/script_reading.html"
    return render(request, template, context)


@login_required
@require_POST
def script_read_again(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    script = grader_selectors.script_get(exam=exam, number=number)
    services.exam_read_enqueue(exam=exam, scripts=[script])
    messages.success(
        request, f"Script {script.number} is queued to be read again; teacher scores and corrected texts are kept."
    )
    return redirect(script)


# ---------------------------------------------------------------- question settings


@login_required
def question_settings(request: HttpRequest, exam_id: int, question_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=request.method == "POST")
    question = selectors.question_get(exam=exam, question_id=question_id)
    auto = selectors.question_strategy_auto(question=question)
    form = QuestionSettingsForm(request.POST or None, instance=question, auto_strategy=auto)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            above = services.question_settings_set(question=question, **{name: data[name] for name in form.Meta.fields})
        except services.QuestionSettingsRefused as refused:  # e.g. a rubric attached since the form was shown
            form.add_error("max_score", str(refused))
            status = 422
        else:
            messages.success(request, f"Saved {question.label}; suggested scores updated. Teacher scores are unchanged.")
            if above:
                messages.warning(request, f"{counted(above, 'teacher score')} for {question.label} above the new max score.")
            return redirect("question_settings", exam_id=exam.pk, question_id=question.pk)
    context = {
        "exam": exam,
        "question": question,
        "form": form,
        "auto_strategy": auto,
        "strategy_in_force": services.question_strategy(question),
        "answers": selectors.answer_list_for_question(question=question),
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "questions": exam.questions.all(),
    }
    return render(request, "reading/question_settings.html", context, status=status)


@login_required
@require_POST
def question_read_again(request: HttpRequest, exam_id: int, question_id: int) -> HttpResponse:
    """Read the question's box again on every script; suggestions follow, teacher scores are kept."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    question = selectors.question_get(exam=exam, question_id=question_id)
    count = services.question_read_enqueue(question=question)
    if count:
        messages.success(
            request,
            f"{question.label} is queued to be read again on {counted(count, 'script')}; its suggestions update as each one "
            "finishes. Teacher scores and corrected texts are kept.",
        )
    else:
        messages.error(request, f"{question.label} has no answer box (or the exam no scripts) to read.")
    return redirect("question_settings", exam_id=exam.pk, question_id=question.pk)


# ---------------------------------------------------------------- crops


@login_required
@require_GET
def answer_crop(request: HttpRequest, exam_id: int, answer_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    answer = selectors.answer_get(exam=exam, answer_id=answer_id)
    return _jpeg(selectors.answer_crop_jpeg(answer=answer))


@login_required
@require_GET
def identity_crop(request: HttpRequest, exam_id: int, number: int, label: str) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    script = grader_selectors.script_get(exam=exam, number=number)
    return _jpeg(selectors.identity_crop_jpeg(script=script, label=label))


# ---------------------------------------------------------------- identity screen


def _identity_context(request: HttpRequest, exam) -> dict:
    return {
        "exam": exam,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "identity_labels": set(exam.boxes.filter(parent=None, label__in=["NAME", "ID", "CLASS"]).values_list("label", flat=True)),
    }


@login_required
@require_GET
def identity(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    rows = selectors.identity_rows(exam=exam)
    context = {
        **_identity_context(request, exam),
        "rows": rows,
        "summary": selectors.identity_summary(rows=rows),
        "roster": selectors.identity_roster(exam=exam),
        "absent": selectors.students_absent(exam=exam),
        "duplicates": selectors.duplicate_claims(exam=exam),
        "students": exam.students.order_by("name"),
    }
    return render(request, "reading/identity.html", context)


def _identity_lists_context(exam) -> dict:
    return {
        "summary": selectors.identity_summary(rows=selectors.identity_rows(exam=exam)),
        "absent": selectors.students_absent(exam=exam),
        "duplicates": selectors.duplicate_claims(exam=exam),
    }


def _identity_row_response(request: HttpRequest, exam, number: int, *, error: str = "", saved: bool = False):
    """The script's row; after a save, with the summary and the absent/duplicate lists swapped out of band."""
    script = grader_selectors.script_get(exam=exam, number=number)
    row = selectors.identity_row(script=script)
    row.error, row.saved = error, saved
    context = {**_identity_context(request, exam), "row": row, "students": exam.students.order_by("name")}
    response = render(request, "reading/identity.html#identity-row", context)
    if saved:
        context = {**context, **_identity_lists_context(exam), "oob": True}
        for partial in ("identity-summary", "identity-lists"):
            response.content += render_to_string(f"reading/identity.html#{partial}", context, request=request).encode()
    return response


@login_required
@require_http_methods(["GET", "POST"])
def identity_choose(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    """POST: confirm whose script this is (a student's pk, or ``none`` for not on the roster).

    GET (htmx): the script's row of the identity screen, to refresh one that another choice changed.
    """
    if request.method == "GET":
        exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
        if not request.htmx:
            return redirect(f"{reverse('identity', args=[exam.pk])}#script-{number}")
        return _identity_row_response(request, exam, number)
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    script = grader_selectors.script_get(exam=exam, number=number)
    form = IdentityChoiceForm(request.POST, exam=exam)
    error = ""
    released = None  # a script that loses the student to this one
    if not form.is_valid():
        error = form.errors["student"][0]
    else:
        student = form.cleaned_data["student"]
        if student is not None:
            released = exam.scripts.filter(student=student).exclude(pk=script.pk).values_list("number", flat=True).first()
        try:
            script = services.identity_confirm(script=script, student=student, user=request.user)
        except services.IdentityRefused as refused:
            error, released = str(refused), None
    if not request.htmx:
        if error:
            messages.error(request, f"Script {script.number}: {error}")
        else:
            who = f"{script.student.name} ({script.student.student_id})" if script.student else "not on the roster"
            messages.success(request, f"Script {script.number}: {who}, confirmed.")
        return redirect(f"{reverse('identity', args=[exam.pk])}#script-{script.number}")
    response = _identity_row_response(request, exam, number, error=error, saved=not error)
    if not error:
        trigger_client_event(
            response, "identitySaved", {"script": number, "student": script.student_id, "released": released}
        )
    return response
