"""Grading screens: the question page (scores, transcriptions, history, groups), the question index
and the completeness page.

Views parse the request, call one service or selector and render; permissions come from
``grader.selectors.exam_get_for_user`` (404 for exams a user may not see, 403 for changes by
read-only users). Row saves answer htmx with the row partial: 200 + ``scoreSaved`` when saved,
422 when refused (nothing saved), 409 with the current value when someone changed it meanwhile.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from grader import selectors as grader_selectors
from grader.inputs import whole_number_parse
from grader.learning.selectors import answers_labelled_count, answers_scored, learning_job_latest
from grader.learning.services import MIN_LABELLED, MIN_SCORED
from grader.reading import selectors as reading_selectors
from grader.reading.models import Answer
from grader.reading.services import reading_best
from grader.rubrics import selectors as rubric_selectors
from grader.rubrics import services as rubric_services
from grader.rubrics.models import RubricChange
from grader.wording import counted

from . import selectors, services
from .models import AnswerChange

# Answer.score holds marks below 10,000 in hundredths.
SCORE_LIMIT = Decimal(10_000)
SCORE_PLACES = Decimal("0.01")
# An answer box holds a few lines of handwriting; far longer text is a paste gone wrong.
TRANSCRIPTION_MAX_CHARS = 2_000

SORTS = {
    "script": ("script", "Script"),
    "similarity": ("similarity", "Similarity (lowest first)"),
    "suggested": ("suggested", "Suggested score (lowest first)"),
}


# ---------------------------------------------------------------- helpers


def _score_parse(raw: str) -> Decimal | None:
    """The score typed (marks; None when empty), or ``ScoreRefused`` for what no question could take.

    Scores fit ``Answer.score``: below 10,000 with at most 2 decimal places. Refused here, since
    formatting a score of 1e999999999 in a message would take gigabytes.
    """
    raw = (raw or "").strip().replace(",", ".")
    if not raw:
        return None
    shown = raw if len(raw) <= 20 else f"{raw[:20]}…"
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise services.ScoreRefused(f"“{shown}” is not a number of marks.") from None
    if not value.is_finite():
        raise services.ScoreRefused(f"“{shown}” is not a number of marks.")
    if value.is_signed():  # "-0" too: a mark is never typed with a minus
        raise services.ScoreRefused("The score cannot be negative.")
    if value >= SCORE_LIMIT:
        raise services.ScoreRefused(f"“{shown}” is more marks than a question can have.")
    if value != value.quantize(SCORE_PLACES):
        raise services.ScoreRefused(f"“{shown}” has more than 2 decimal places.")
    return value


def _rubric_refuse(question_id: int) -> None:
    """A rubric question is scored by dimension (``grading_rubric``): a bare total would leave them out."""
    if rubric_selectors.question_has_rubric(question_id=question_id):
        raise services.ScoreRefused("This question is marked by a rubric: score each of its dimensions.")


def _version(request: HttpRequest) -> int:
    version = whole_number_parse(request.POST.get("version", ""))
    return -1 if version is None else version


def _text_parse(request: HttpRequest) -> str | None:
    """The transcription posted (None: clear it back to the engines'), or ``GradingRefused`` when too long."""
    if "clear" in request.POST:
        return None
    text = request.POST.get("text", "")
    length = len(text.strip())
    if length > TRANSCRIPTION_MAX_CHARS:
        raise services.GradingRefused(
            f"The text is {length:,} characters long; a transcription is at most {TRANSCRIPTION_MAX_CHARS:,}."
        )
    return text


def _fmt(score: Decimal | None) -> str:
    return "none" if score is None else format(score.normalize(), "f")


def _who(exam, answer: Answer) -> str:
    """How a row names its script: the number only on an anonymous exam."""
    student = answer.script.student
    if exam.anonymous or student is None:
        return f"script {answer.script.number}"
    return f"script {answer.script.number} ({student.name})"


def _decorate(exam, answers):
    for answer in answers:
        answer.who = _who(exam, answer)
        # Every row gets these, so the template never looks up a missing attribute (a slow path in
        # Django's templates: 300 rows pay for it on every page).
        answer.message, answer.state, answer.history = "", "", None
        # The engine's own reading, shown beside the known answer its ink fits ("read: Nz").
        answer.read_text = reading_best(answer.readings)[0] if answer.fit_text else ""
    return answers


def _answer_get(exam, answer_id: int) -> Answer:
    answer = (
        Answer.objects.select_related("script", "script__student", "page", "question", "scored_by")
        .filter(script__exam=exam, pk=answer_id)
        .first()
    )
    if answer is None:
        raise Http404("No such answer.")
    return _decorate(exam, [answer])[0]


def _base_context(request: HttpRequest, exam) -> dict:
    return {
        "exam": exam,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "finished": selectors.exam_finished(exam_id=exam.pk),
    }


def _row_response(request, exam, answer_id: int, *, status: int = 200, message: str = "", state: str = "",
                  history: bool = False, event: str = "", resuggested: list[int] | None = None,
                  posted: rubric_selectors.PostedRubric | None = None) -> HttpResponse:
    answer = _answer_get(exam, answer_id)
    answer.message, answer.state = message, state
    answer.history = rubric_selectors.answer_history(answer_id=answer.pk) if history else None
    rubric = rubric_selectors.question_rubric_view(question=answer.question)
    rubric_selectors.answers_rubric_decorate(view=rubric, answers=[answer],
                                             posted={answer.pk: posted} if posted else None)
    context = {**_base_context(request, exam), "answer": answer, "question": answer.question, "rubric": rubric}
    response = render(request, "grading/question.html#answer-row", context, status=status)
    if event:
        # Other rows whose suggestion this save changed are updated in place by grading.js, without
        # re-rendering them (the teacher may be typing in one).
        suggestions = {
            str(pk): {"score": "" if score is None else _fmt(score), "reason": reason}
            for pk, score, reason in Answer.objects.filter(pk__in=resuggested or [], score__isnull=True)
            .values_list("pk", "suggested_score", "suggestion_reason")
        }
        trigger_client_event(response, event, {"answer": answer.pk, "version": answer.version,
                                               "suggestions": suggestions})
    return response


def _back_to_row(exam, answer_id: int, question_id: int):
    return redirect(f"{reverse('grading_question', args=[exam.pk, question_id])}#answer-{answer_id}")


def _sorted_answers(question, sort: str) -> list[Answer]:
    answers = list(reading_selectors.answer_list_for_question(question=question).select_related("script__student"))
    if sort == "similarity":
        answers.sort(key=lambda a: (a.similarity is None, a.similarity or 0, a.script.number))
    elif sort == "suggested":
        answers.sort(key=lambda a: (a.suggested_score is None, a.suggested_score or 0, a.script.number))
    return answers


def _main_context(request, exam, question, *, sort: str = "script") -> dict:
    rubric = rubric_selectors.question_rubric_view(question=question)
    # A group's score would be a total without its dimensions: rubric answers are scored one by one.
    groups = [] if rubric else selectors.answer_groups_for_question(question_id=question.pk)
    for group in groups:
        _decorate(exam, group.members)
        group.versions = ",".join(f"{m.pk}:{m.version}" for m in group.members)
        group.suggestion = next((m.suggested_score for m in group.members if m.suggested_score is not None), None)
    answers = _decorate(exam, _sorted_answers(question, sort))
    rubric_selectors.answers_rubric_decorate(view=rubric, answers=answers)
    return {
        **_base_context(request, exam),
        "question": question,
        "rubric": rubric,
        "answers": answers,
        "groups": groups,
        "sort": sort,
        "sorts": SORTS,
    }


# ---------------------------------------------------------------- question index


@login_required
@require_GET
def grading_index(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    progress = selectors.question_progress(exam_id=exam.pk)
    context = {
        **_base_context(request, exam),
        "progress": progress,
        "open_items": len(selectors.exam_completeness(exam_id=exam.pk).open_items),
        "learning_job": learning_job_latest(exam=exam),
        "learning_labelled": answers_labelled_count(exam=exam),
        "learning_minimum": MIN_LABELLED,
        "learning_scored": answers_scored(exam=exam).count(),
        "learning_scored_minimum": MIN_SCORED,
    }
    return render(request, "grading/index.html", context)


# ---------------------------------------------------------------- question page


@login_required
@require_GET
def grading_question(request: HttpRequest, exam_id: int, question_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    question = reading_selectors.question_get(exam=exam, question_id=question_id)
    sort = request.GET.get("sort", "script")
    sort = sort if sort in SORTS else "script"
    questions = list(exam.questions.order_by("order", "label"))
    index = next(i for i, q in enumerate(questions) if q.pk == question.pk)
    context = {
        **_main_context(request, exam, question, sort=sort),
        "questions": questions,
        "previous": questions[index - 1] if index > 0 else None,
        "next": questions[index + 1] if index + 1 < len(questions) else None,
    }
    return render(request, "grading/question.html", context)


@login_required
@require_GET
def grading_row(request: HttpRequest, exam_id: int, answer_id: int) -> HttpResponse:
    """One answer's row (htmx), with its history when ``?history=1``."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    answer = _answer_get(exam, answer_id)
    if not request.htmx:
        return _back_to_row(exam, answer.pk, answer.question_id)
    return _row_response(request, exam, answer.pk, history=request.GET.get("history") == "1")


@login_required
@require_POST
def grading_score(request: HttpRequest, exam_id: int, answer_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    answer = _answer_get(exam, answer_id)
    try:
        _rubric_refuse(answer.question_id)
        score = _score_parse(request.POST.get("score", ""))
        answer = services.score_set(answer_id=answer.pk, score=score, expected_version=_version(request), user=request.user)
    except services.StaleAnswer as stale:
        current = stale.current
        who = (current.scored_by.get_full_name() or current.scored_by.username) if current.scored_by else "someone"
        message = f"Changed by {who} to {_fmt(current.score)}; yours was not saved."
        if not request.htmx:
            messages.error(request, message)
            return _back_to_row(exam, answer.pk, answer.question_id)
        return _row_response(request, exam, answer.pk, status=409, message=message, state="stale")
    except services.GradingRefused as refused:
        if not request.htmx:
            messages.error(request, f"Script {answer.script.number}: {refused}")
            return _back_to_row(exam, answer.pk, answer.question_id)
        return _row_response(request, exam, answer.pk, status=422, message=str(refused), state="refused")
    if not request.htmx:
        messages.success(request, f"Script {answer.script.number}: score saved.")
        return _back_to_row(exam, answer.pk, answer.question_id)
    return _row_response(request, exam, answer.pk, state="saved", event="scoreSaved", resuggested=answer.resuggested)


def _rubric_posted(request: HttpRequest) -> rubric_selectors.PostedRubric:
    """The dimension scores (as typed, in the rubric's order), comment numbers and feedback posted."""
    numbers = [whole_number_parse(raw) for raw in request.POST.getlist("comment")]
    if None in numbers:
        raise services.GradingRefused("A comment number is not a whole number.")
    return rubric_selectors.PostedRubric(points=[raw.strip() for raw in request.POST.getlist("points")],
                                         comments=numbers, text=request.POST.get("feedback", ""))


@login_required
@require_POST
def grading_rubric(request: HttpRequest, exam_id: int, answer_id: int) -> HttpResponse:
    """Save a rubric answer: one score per dimension (their sum is the answer's score) and its feedback."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    answer = _answer_get(exam, answer_id)
    posted = None
    try:
        posted = _rubric_posted(request)
        answer = rubric_services.rubric_answer_save(
            answer_id=answer.pk, points=[_score_parse(raw) for raw in posted.points], comment_numbers=posted.comments,
            text=posted.text, save_as_comment="save_comment" in request.POST, expected_version=_version(request),
            user=request.user)
    except services.StaleAnswer:
        message = "Changed by someone else meanwhile; yours was not saved. The current scores are shown."
        if not request.htmx:
            messages.error(request, f"Script {answer.script.number}: {message}")
            return _back_to_row(exam, answer.pk, answer.question_id)
        return _row_response(request, exam, answer.pk, status=409, message=message, state="stale")
    except services.GradingRefused as refused:
        if not request.htmx:
            messages.error(request, f"Script {answer.script.number}: {refused}")
            return _back_to_row(exam, answer.pk, answer.question_id)
        return _row_response(request, exam, answer.pk, status=422, message=str(refused), state="refused",
                             posted=posted)
    if not request.htmx:
        messages.success(request, f"Script {answer.script.number}: scores and feedback saved.")
        return _back_to_row(exam, answer.pk, answer.question_id)
    return _row_response(request, exam, answer.pk, state="saved", event="scoreSaved")


@login_required
@require_POST
def grading_text(request: HttpRequest, exam_id: int, answer_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    answer = _answer_get(exam, answer_id)
    try:
        answer = services.text_confirm(answer_id=answer.pk, text=_text_parse(request),
                                       expected_version=_version(request), user=request.user)
    except services.StaleAnswer:
        message = "Changed by someone else meanwhile; your text was not saved. The current text is shown."
        return _row_response(request, exam, answer.pk, status=409, message=message, state="stale")
    except services.GradingRefused as refused:
        return _row_response(request, exam, answer.pk, status=422, message=str(refused), state="refused")
    if not request.htmx:
        return _back_to_row(exam, answer.pk, answer.question_id)
    return _row_response(request, exam, answer.pk, state="saved", message="Text saved; suggestion updated.",
                         event="textSaved", resuggested=answer.resuggested)


def _revert_response(request, exam, answer: Answer, *, refused: services.GradingRefused | None = None) -> HttpResponse:
    """The row with its history after one of ``answer``'s changes was reverted, or after the revert was
    ``refused``: 409 when the answer changed again since, 422 otherwise."""
    if refused is not None:
        status = 409 if isinstance(refused, services.StaleAnswer) else 422
        return _row_response(request, exam, answer.pk, status=status, message=str(refused), state="refused",
                             history=True)
    if not request.htmx:
        return _back_to_row(exam, answer.pk, answer.question_id)
    return _row_response(request, exam, answer.pk, state="saved", message="Reverted.", history=True,
                         event="scoreSaved")


@login_required
@require_POST
def grading_revert(request: HttpRequest, exam_id: int, change_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    change = AnswerChange.objects.filter(pk=change_id, answer__script__exam=exam).select_related("answer").first()
    if change is None:
        raise Http404("No such change.")
    try:
        if change.field == AnswerChange.Field.SCORE:
            _rubric_refuse(change.answer.question_id)  # the dimensions would no longer add up to the total
        services.change_revert(change_id=change.pk, user=request.user)
    except services.GradingRefused as refused:
        return _revert_response(request, exam, change.answer, refused=refused)
    return _revert_response(request, exam, change.answer)


@login_required
@require_POST
def grading_rubric_revert(request: HttpRequest, exam_id: int, change_id: int) -> HttpResponse:
    """Undo one change of a rubric answer's dimension scores and feedback, its total with them."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    change = RubricChange.objects.filter(pk=change_id, answer__script__exam=exam).select_related("answer").first()
    if change is None:
        raise Http404("No such change.")
    try:
        rubric_services.rubric_change_revert(change_id=change.pk, user=request.user)
    except services.GradingRefused as refused:
        return _revert_response(request, exam, change.answer, refused=refused)
    return _revert_response(request, exam, change.answer)


# ---------------------------------------------------------------- groups


def _main_response(request, exam, question, *, status=200, message="", event="") -> HttpResponse:
    sort = request.POST.get("sort", "script")
    context = {**_main_context(request, exam, question, sort=sort if sort in SORTS else "script"),
               "group_message": message, "group_error": status != 200}
    response = render(request, "grading/question.html#grading-main", context, status=status)
    if event:
        trigger_client_event(response, event, {"question": question.pk})
    return response


def _versions(raw: str) -> dict[int, int]:
    """The ``answer id:version`` pairs (separated by commas) the page showed, or ``GradingRefused``."""
    versions = {}
    for part in filter(None, (part.strip() for part in raw.split(","))):
        answer_id, _, version = part.partition(":")
        answer_id, version = whole_number_parse(answer_id), whole_number_parse(version)
        if answer_id is None or version is None:
            shown = part if len(part) <= 20 else f"{part[:20]}…"
            raise services.GradingRefused(f"The page sent answer versions markdesk cannot read (“{shown}”); reload it.")
        versions[answer_id] = version
    return versions


@login_required
@require_POST
def grading_group_score(request: HttpRequest, exam_id: int, question_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    question = reading_selectors.question_get(exam=exam, question_id=question_id)
    try:
        _rubric_refuse(question.pk)
        score = _score_parse(request.POST.get("score", ""))
        result = services.group_score_set(question_id=question.pk, group_key=request.POST.get("group", ""), score=score,
                                          user=request.user, expected_versions=_versions(request.POST.get("versions", "")))
    except services.GradingRefused as refused:
        if not request.htmx:
            messages.error(request, str(refused))
            return redirect("grading_question", exam_id=exam.pk, question_id=question.pk)
        return _main_response(request, exam, question, status=422, message=str(refused))
    message = f"Scored {counted(len(result.scored), 'answer')} {_fmt(score)}."
    if result.skipped:
        scripts = ", ".join(str(a.script.number) for a in result.skipped)
        message += f" Left alone because they changed since you loaded the page: script(s) {scripts}."
    if not request.htmx:
        messages.success(request, message)
        return redirect("grading_question", exam_id=exam.pk, question_id=question.pk)
    return _main_response(request, exam, question, message=message, event="scoreSaved")


@login_required
@require_POST
def grading_detach(request: HttpRequest, exam_id: int, answer_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    answer = _answer_get(exam, answer_id)
    services.group_member_detach(answer_id=answer.pk, user=request.user)
    message = f"Pulled {answer.who} out of its group; score it on its own."
    if not request.htmx:
        messages.success(request, message)
        return redirect("grading_question", exam_id=exam.pk, question_id=answer.question_id)
    return _main_response(request, exam, answer.question, message=message)


# ---------------------------------------------------------------- completeness and finishing


def _completeness_context(request, exam, *, refused_items=None) -> dict:
    completeness = selectors.exam_completeness(exam_id=exam.pk)
    for item in completeness.items:
        if item.answer_id:
            item.fix_url = f"{reverse('grading_question', args=[exam.pk, item.question_id])}#answer-{item.answer_id}"
            item.fix_label = "Score it"
        else:
            item.fix_url = reverse("identity", args=[exam.pk])
            item.fix_label = "Identity screen"
    groups = selectors.completeness_groups(completeness=completeness)
    for group in groups:
        first = group.items[0]
        group.fix_url = (reverse("grading_question", args=[exam.pk, first.question_id]) if first.question_id
                         else reverse("identity", args=[exam.pk]))
        group.fix_label = f"Grade {group.question_label}" if first.question_id else "Identity screen"
    return {
        **_base_context(request, exam),
        "completeness": completeness,
        "groups": groups,
        "status": selectors.exam_status(exam_id=exam.pk),
        "refused_items": refused_items,
    }


@login_required
@require_POST
def grading_rollback(request: HttpRequest, exam_id: int) -> HttpResponse:
    """Undo every change made after the time given (``to``, local time of the server)."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    raw = request.POST.get("to", "").strip()
    try:
        to = parse_datetime(raw)
    except ValueError:  # well formed but no such time, e.g. 30 February
        to = None
    if to is None:
        shown = f"“{raw[:30]}” is not a date and time. " if raw else ""
        messages.error(request, f"{shown}Give the date and time to roll back to.")
        return redirect("grading_index", exam_id=exam.pk)
    if timezone.is_naive(to):
        to = timezone.make_aware(to)
    try:
        # Through the rubrics' rollback: a rubric answer's dimensions and feedback go back with its total.
        undone = rubric_services.exam_rollback(exam_id=exam.pk, to=to, user=request.user)
    except services.GradingRefused as error:
        messages.error(request, str(error))
        return redirect("grading_index", exam_id=exam.pk)
    messages.success(request, f"Rolled back to {timezone.localtime(to):%d %b %Y %H:%M:%S}: {counted(undone, 'change')} undone.")
    return redirect("grading_index", exam_id=exam.pk)


@login_required
def grading_finish(request: HttpRequest, exam_id: int) -> HttpResponse:
    """GET: what is left before the exam can be finished. POST: mark it finished."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=request.method == "POST")
    if request.method == "POST":
        try:
            services.exam_finish(exam_id=exam.pk, user=request.user)
        except services.CompletenessRefused as refused:
            messages.error(request, str(refused))
            context = _completeness_context(request, exam, refused_items=refused.items)
            return render(request, "grading/finish.html", context, status=422)
        messages.success(request, f"{exam.title} is marked finished; its scores are locked.")
        return redirect("grading_finish", exam_id=exam.pk)
    return render(request, "grading/finish.html", _completeness_context(request, exam))


@login_required
@require_POST
def grading_reopen(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    services.exam_reopen(exam_id=exam.pk, user=request.user)
    messages.success(request, f"{exam.title} is open for grading again; finish it once the changes are made.")
    return redirect("grading_finish", exam_id=exam.pk)


@login_required
@require_POST
def grading_waive(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    object_id = whole_number_parse(request.POST.get("object_id", ""))
    if object_id is None:
        messages.error(request, "No such item.")
        return redirect("grading_finish", exam_id=exam.pk)
    try:
        services.completeness_waive(exam_id=exam.pk, kind=request.POST.get("kind", ""), object_id=object_id,
                                    user=request.user, reason=request.POST.get("reason", ""))
    except services.GradingRefused as refused:
        messages.error(request, str(refused))
        return redirect("grading_finish", exam_id=exam.pk)
    messages.success(request, "Waived; it no longer stops the exam being finished.")
    return redirect("grading_finish", exam_id=exam.pk)
