"""Rubric pages: choosing or writing a question's rubric, and editing its comment bank.

Views parse, call one service and redirect (they work without JavaScript). Refusals come back as a
message on the page (422 with the form as sent), never a 500.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from grader import selectors as grader_selectors
from grader.inputs import whole_number_parse
from grader.wording import counted
from grader.reading import selectors as reading_selectors

from . import selectors, services
from .levels import levels_parse, points_parse
from .models import FeedbackComment, Rubric

DIMENSION_ROWS = 6  # rows offered on the form; a rubric rarely has more dimensions than this
TASK_MAX_CHARS = 2_000


def dimensions_parse(request: HttpRequest) -> list[services.DimensionSpec]:
    """The dimension rows of the rubric form that have a name."""
    names, maxima, levels = (request.POST.getlist(key) for key in ("dimension", "max_points", "levels"))
    dimensions = []
    for name, maximum, text in zip(names, maxima, levels + [""] * len(names), strict=False):
        if not name.strip():
            continue
        if not maximum.strip():
            raise services.RubricRefused(f"{name.strip()}: give its max points.")
        dimensions.append(services.DimensionSpec(name=name.strip()[:100], max_points=points_parse(maximum, what=name.strip()),
                                                 levels=levels_parse(text, dimension=name.strip())))
    return dimensions


def _rows(rubric: Rubric | None) -> list[dict]:
    """The dimension rows to show: the rubric's, then empty ones up to DIMENSION_ROWS."""
    rows = [{"name": d.name, "max_points": format(d.max_points.normalize(), "f"),
             "levels": "\n".join(f"{level['points']} {level['label']}" + (f": {level['description']}" if level["description"] else "")
                                 for level in d.levels)}
            for d in (rubric.dimensions.all() if rubric else [])]
    return rows + [{"name": "", "max_points": "", "levels": ""}] * max(1, DIMENSION_ROWS - len(rows))


@login_required
def question_rubric(request: HttpRequest, exam_id: int, question_id: int) -> HttpResponse:
    """Choose the rubric a question is marked by, or write one (new, or the chosen one edited)."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    question = reading_selectors.question_get(exam=exam, question_id=question_id)
    view = selectors.question_rubric_view(question=question)
    editing = view.rubric if view and view.rubric.owner_id == request.user.pk and request.GET.get("new") != "1" else None
    status = 200
    if request.method == "POST":
        try:
            task = request.POST.get("task", "").strip()
            if len(task) > TASK_MAX_CHARS:
                raise services.RubricRefused(f"The task is at most {TASK_MAX_CHARS:,} characters.")
            if request.POST.get("action") == "save":
                rubric_id = whole_number_parse(request.POST.get("rubric_id", ""))
                rubric = services.rubric_save(owner=request.user, name=request.POST.get("name", ""),
                                              dimensions=dimensions_parse(request), rubric_id=rubric_id)
                services.question_rubric_set(question_id=question.pk, rubric_id=rubric.pk, task=task, user=request.user)
                messages.success(request, f"Saved the rubric “{rubric.name}”; {question.label} is marked by it.")
            else:
                rubric_id = whole_number_parse(request.POST.get("rubric", ""))
                services.question_rubric_set(question_id=question.pk, rubric_id=rubric_id, task=task, user=request.user)
                messages.success(request, f"{question.label} is marked by its answer key again." if rubric_id is None
                                 else f"{question.label} is marked by the chosen rubric.")
            return redirect("question_rubric", exam_id=exam.pk, question_id=question.pk)
        except (services.RubricRefused, Rubric.DoesNotExist) as refused:
            message = str(refused) if isinstance(refused, services.RubricRefused) else "No such rubric among yours."
            messages.error(request, message)
            status = 422
    context = {
        "exam": exam, "question": question, "view": view, "editing": editing,
        "rubrics": selectors.rubrics_for_owner(owner=request.user),
        "rows": _rows(editing),
        "grading_url": reverse("grading_question", args=[exam.pk, question.pk]),
    }
    return render(request, "rubrics/question_rubric.html", context, status=status)


@login_required
@require_POST
def feedback_comment_edit(request: HttpRequest, exam_id: int, comment_id: int) -> HttpResponse:
    """Change a bank comment: every answer that has it gets the new words."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    comment = get_object_or_404(FeedbackComment, pk=comment_id, question__exam=exam)
    try:
        services.comment_edit(comment_id=comment.pk, text=request.POST.get("text", ""))
        messages.success(request, f"Comment {comment.number} saved for every answer that has it.")
    except services.RubricRefused as refused:
        messages.error(request, str(refused))
    return redirect(f"{reverse('grading_question', args=[exam.pk, comment.question_id])}#comment-bank")


@login_required
@require_POST
def feedback_comment_delete(request: HttpRequest, exam_id: int, comment_id: int) -> HttpResponse:
    """Take a comment out of the bank: the answers that have it keep its words as their own."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    comment = get_object_or_404(FeedbackComment, pk=comment_id, question__exam=exam)
    had = services.comment_delete(comment_id=comment.pk, user=request.user)
    kept = f"; {counted(had, 'answer')} that had it keep its words" if had else ""
    messages.success(request, f"Comment {comment.number} taken out of the bank{kept}.")
    return redirect(f"{reverse('grading_question', args=[exam.pk, comment.question_id])}#comment-bank")


@login_required
@require_POST
def question_rubric_suggest(request: HttpRequest, exam_id: int, question_id: int) -> HttpResponse:
    """Suggest again: the rubric model makes anew the suggestions for the question's answers without a
    score (a `vlm` worker); it makes the missing ones by itself once reading is done."""
    from .suggest import exam_rubric_suggest_enqueue, rubric_model_configured

    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    question = reading_selectors.question_get(exam=exam, question_id=question_id)
    if selectors.question_rubric_view(question=question) is None:
        messages.error(request, f"{question.label} is not marked by a rubric.")
    elif not rubric_model_configured():
        messages.error(request, "No rubric model is configured (RUBRIC_MODEL_PATH).")
    else:
        exam_rubric_suggest_enqueue(exam_id=exam.pk, question_ids=[question.pk], again=True)
        messages.success(request, f"The rubric model is suggesting again for {question.label}'s answers without "
                                  "a score; reload to see them as they arrive.")
    return redirect("grading_question", exam_id=exam.pk, question_id=question.pk)


@login_required
def rubric_sheet(request: HttpRequest, exam_id: int) -> HttpResponse:
    """GET: the exam's rubric questions as a RUBRIC sheet (.xlsx). POST: import a workbook's RUBRIC sheet
    (the answer-key spreadsheet's, or this one edited) and go back to ``next``'s question page."""
    from .sheets import RubricSheetError, rubric_sheet_import, rubric_workbook

    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=request.method == "POST")
    if request.method != "POST":
        response = HttpResponse(rubric_workbook(exam=exam),
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f'attachment; filename="rubrics-exam-{exam.pk}.xlsx"'
        return response
    question_id = whole_number_parse(request.POST.get("question", ""))
    back = (redirect("question_rubric", exam_id=exam.pk, question_id=question_id) if question_id
            and exam.questions.filter(pk=question_id).exists() else redirect("grading_index", exam_id=exam.pk))
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose the spreadsheet with the RUBRIC sheet to import.")
        return back
    try:
        labels = rubric_sheet_import(exam=exam, user=request.user, data=upload.read())
    except RubricSheetError as refused:
        for problem in refused.problems[:20]:
            messages.error(request, problem)
        return back
    if labels is None:
        messages.error(request, "That workbook has no sheet called RUBRIC.")
    else:
        messages.success(request, f"Imported the RUBRIC sheet: {', '.join(labels) or 'no question'} marked by a rubric.")
    return back
