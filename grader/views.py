"""Views: parse the request, call one service or selector, render. Permissions come from ``selectors``."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from grader.scans.views import image_response
from grader.wording import counted

from . import selectors, services
from .forms import ExamForm, QuestionForm, ScanUploadForm, SpreadsheetForm, StudentForm, TemplateForm
from .models import Question, Student
from .sheet_import import workbook_bytes
from .uploads import upload_form_read

logger = logging.getLogger(__name__)

_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


# ---------------------------------------------------------------- exams


@login_required
def exam_list(request: HttpRequest) -> HttpResponse:
    exams = selectors.exam_list_for_user(user=request.user)
    return render(request, "grader/exam_list.html", {"exams": exams})


@login_required
def exam_create(request: HttpRequest) -> HttpResponse:
    if request.user.is_department_head:
        messages.error(request, "Department heads read exams; a teacher creates them.")
        return redirect("exam_list")
    form = ExamForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        exam = services.exam_create(owner=request.user, **{key: data[key] for key in form.Meta.fields})
        messages.success(request, f"Created {exam.title}. Next: the roster, the answer key and the blank exam.")
        return redirect(exam)
    return render(request, "grader/exam_form.html", {"form": form})


@login_required
def exam_edit(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    form = ExamForm(request.POST or None, instance=exam, owner=exam.owner)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            exam = services.exam_update(exam=exam, **{key: data[key] for key in form.Meta.fields})
        except services.RecordRefused as refused:
            form.add_error("default_granularity", str(refused))
        else:
            messages.success(request, "Exam settings saved.")
            return redirect(exam)
    return render(request, "grader/exam_form.html", {"form": form, "exam": exam})


@login_required
def exam_detail(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    can_change = selectors.exam_can_change(user=request.user, exam=exam)
    counts = selectors.exam_overview(exam=exam)
    context = {
        "exam": exam,
        "can_change": can_change,
        "counts": counts,
        "next_steps": selectors.exam_next_steps(exam=exam, counts=counts, can_change=can_change),
        "uploads": exam.uploads.order_by("-created_at"),
        "scripts": selectors.script_list_for_exam(exam=exam),
        "template_pages": exam.template_pages.all(),
        "flagged": selectors.page_list_flagged(exam=exam),
        "unassigned": selectors.page_list_unassigned(exam=exam),
        "discarded": selectors.page_list_discarded(exam=exam),
        "template_form": TemplateForm(),
        "scan_form": ScanUploadForm(),
    }
    return render(request, "grader/exam_detail.html", context)


# ---------------------------------------------------------------- roster and answer key


def _problems_key(kind: str, exam_id: int) -> str:
    """Session key for the problems of a refused import, shown once on that exam's page."""
    return f"{kind}_problems_{exam_id}"


def _import_view(request: HttpRequest, exam_id: int, *, kind: str) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    page = "roster" if kind == "roster" else "answer_key"
    form, problem = upload_form_read(request, SpreadsheetForm)
    if problem:
        messages.error(request, problem)
        return redirect(page, exam_id=exam.pk)
    importer = services.roster_import if kind == "roster" else services.answer_key_import
    noun = "roster" if kind == "roster" else "answer key"
    try:
        summary = importer(exam=exam, file=form.cleaned_data["file"])
    except services.ImportProblems as error:
        logger.info("Refused %s import for exam %s: %s", noun, exam.pk, error)
        request.session[_problems_key(kind, exam.pk)] = {
            "file": form.cleaned_data["file"].name,
            "problems": error.problems,
        }
        return redirect(page, exam_id=exam.pk)
    messages.success(request, summary.message(noun))
    if kind == "key":
        _rubric_sheet_import(request, exam, form.cleaned_data["file"])
    return redirect(page, exam_id=exam.pk)


def _rubric_sheet_import(request: HttpRequest, exam, file) -> None:
    """The answer-key spreadsheet's RUBRIC sheet, when it has one: its questions are marked by rubrics."""
    from grader.rubrics.sheets import RubricSheetError, rubric_sheet_import

    file.seek(0)
    try:
        labels = rubric_sheet_import(exam=exam, user=request.user, data=file.read())
    except RubricSheetError as refused:
        for problem in refused.problems[:20]:
            messages.error(request, problem)
        return
    if labels:
        messages.success(request, f"RUBRIC sheet: {', '.join(labels)} marked by a rubric.")


def _record_save(form, save, **where):
    """``save(**where, **form.cleaned_data)`` for a valid form: the saved record, or None with the form's errors."""
    if not form.is_valid():
        return None
    try:
        return save(**where, **form.cleaned_data)
    except services.RecordRefused as refused:
        form.add_error(None, str(refused))
        return None


@login_required
def roster(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    can_change = selectors.exam_can_change(user=request.user, exam=exam)
    form = StudentForm(request.POST or None, instance=Student(exam=exam))
    if request.method == "POST":
        selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
        if student := _record_save(form, services.student_save, exam=exam):
            messages.success(request, f"Added {student.name} ({student.student_id}).")
            return redirect("roster", exam_id=exam.pk)
    context = {
        "exam": exam,
        "can_change": can_change,
        "students": exam.students.all(),
        "form": form,
        "import_form": SpreadsheetForm(),
        "import_problems": request.session.pop(_problems_key("roster", exam.pk), None),
    }
    return render(request, "grader/roster.html", context)


@login_required
@require_POST
def roster_import(request: HttpRequest, exam_id: int) -> HttpResponse:
    return _import_view(request, exam_id, kind="roster")


@login_required
def student_edit(request: HttpRequest, exam_id: int, student_pk: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    student = get_object_or_404(Student, exam=exam, pk=student_pk)
    form = StudentForm(request.POST or None, instance=student)
    if request.method == "POST":
        if "delete" in request.POST:
            services.student_delete(student=student)
            messages.success(request, f"Removed {student.name} from the roster.")
            return redirect("roster", exam_id=exam.pk)
        if _record_save(form, services.student_save, exam=exam, student=student):
            messages.success(request, f"Saved {student.name}.")
            return redirect("roster", exam_id=exam.pk)
    return render(request, "grader/record_form.html", {"exam": exam, "form": form, "record": student, "back": "roster"})


@login_required
def answer_key(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    can_change = selectors.exam_can_change(user=request.user, exam=exam)
    form = QuestionForm(request.POST or None, instance=Question(exam=exam))
    if request.method == "POST":
        selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
        if question := _record_save(form, services.question_save, exam=exam):
            messages.success(request, f"Added {question.label}.")
            return redirect("answer_key", exam_id=exam.pk)
    context = {
        "exam": exam,
        "can_change": can_change,
        # A question marked by a rubric shows its rubric's name instead of a key answer.
        "questions": exam.questions.annotate(rubric_name=F("rubric_link__rubric__name")),
        "form": form,
        "import_form": SpreadsheetForm(),
        "import_problems": request.session.pop(_problems_key("key", exam.pk), None),
    }
    return render(request, "grader/answer_key.html", context)


@login_required
@require_POST
def answer_key_import(request: HttpRequest, exam_id: int) -> HttpResponse:
    return _import_view(request, exam_id, kind="key")


@login_required
def question_edit(request: HttpRequest, exam_id: int, question_pk: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    question = get_object_or_404(Question, exam=exam, pk=question_pk)
    form = QuestionForm(request.POST or None, instance=question)
    if request.method == "POST":
        if "delete" in request.POST:
            services.question_delete(question=question)
            messages.success(request, f"Removed {question.label} from the answer key.")
            return redirect("answer_key", exam_id=exam.pk)
        if _record_save(form, services.question_save, exam=exam, question=question):
            messages.success(request, f"Saved {question.label}.")
            return redirect("answer_key", exam_id=exam.pk)
    return render(
        request, "grader/record_form.html", {"exam": exam, "form": form, "record": question, "back": "answer_key"}
    )


@login_required
@require_GET
def spreadsheet_template(request: HttpRequest, kind: str) -> HttpResponse:
    from grader.rubrics.sheets import rubric_sheet_template_add

    if kind == "roster":
        data = workbook_bytes(
            title="Roster",
            headers=services.ROSTER_COLUMNS,
            rows=[("S1001", "Amira Haddad", "9A", "amira.haddad@example.org"), ("S1002", "Ben Okafor", "9B", "")],
            notes=[
                "One row per student. ID and NAME are required; CLASS and EMAIL may be empty.",
                "IDs must be unique. Importing again updates students with the same ID.",
                "Column order and header case do not matter; other columns are ignored.",
            ],
        )
        filename = "markdesk-roster-template.xlsx"
    elif kind == "answer-key":
        data = workbook_bytes(
            title="Answer key",
            headers=(*services.KEY_COLUMNS, *services.KEY_OPTIONAL_COLUMNS),
            rows=[("Q1", "Na", 1, ""), ("Q2", "carbon dioxide", 1, "CO2|CO₂"), ("Q3", "light travels faster than sound", 2, "")],
            notes=[
                "One row per question, in the order of the paper. QUESTION labels match the answer boxes (Q1, Q2, ...).",
                "MAX_SCORE is a number of marks (0 or more, decimals allowed).",
                "ACCEPT lists other accepted answers separated by |.",
            ],
        )
        data = rubric_sheet_template_add(data)  # questions marked by a rubric instead, optionally
        filename = "markdesk-answer-key-template.xlsx"
    else:
        return HttpResponseBadRequest("Unknown template.")
    response = HttpResponse(data, content_type=_XLSX)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ---------------------------------------------------------------- the blank exam


@login_required
@require_POST
def template_upload(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    form, problem = upload_form_read(request, TemplateForm)
    if problem:
        messages.error(request, problem)
        return redirect(exam)
    try:
        pages = services.template_upload(exam=exam, file=form.cleaned_data["file"])
    except services.UploadRejected as error:
        logger.warning("Template refused for exam %s: %s", exam.pk, error)
        messages.error(request, str(error))
        return redirect(exam)
    messages.success(request, f"Blank exam stored: {counted(len(pages), 'page')}.")
    # The top of the page: the message, and "What's next" focused for the keyboard.
    return redirect(exam)


@login_required
@require_GET
def template_page_image(request: HttpRequest, exam_id: int, index: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    page = get_object_or_404(exam.template_pages, index=index)
    return image_response(page.image, thumb="thumb" in request.GET)


# ---------------------------------------------------------------- scripts


@login_required
@require_POST
def script_comment(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    script = selectors.script_get(exam=exam, number=number)
    try:
        services.script_comment_set(script=script, comment=request.POST.get("comment", ""))
    except ValueError as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Saved the comment on script {number}.")
    return redirect(script.get_absolute_url() + "#comment")
