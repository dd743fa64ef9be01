"""Read access to exams and their parts, with the permission rules in one place.

A teacher sees and changes the exams they own or co-mark. A department head sees every exam of
their department but changes none. An administrator sees and changes everything. An exam a user
may not see is reported as missing (404), so ids of other teachers' exams reveal nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.urls import reverse

from .models import Exam, ScanPage, ScanUpload, Script, User


def exam_list_for_user(*, user: User) -> QuerySet[Exam]:
    exams = Exam.objects.select_related("owner", "department")
    if user.is_markdesk_admin:
        return exams
    visible = Q(owner=user) | Q(co_markers=user)
    if user.is_department_head and user.department_id:
        visible |= Q(department_id=user.department_id)
    return exams.filter(visible).distinct()


def exam_can_change(*, user: User, exam: Exam) -> bool:
    if user.is_markdesk_admin or exam.owner_id == user.pk:
        return True
    return exam.co_markers.filter(pk=user.pk).exists()


def exam_get_for_user(*, user: User, exam_id: int, change: bool = False) -> Exam:
    """The exam if ``user`` may see it (and change it, when ``change``); else 404, or 403 for read-only users."""
    exam = exam_list_for_user(user=user).filter(pk=exam_id).first()
    if exam is None:
        raise Http404("No such exam.")
    if change and not exam_can_change(user=user, exam=exam):
        raise PermissionDenied("You can read this exam but not change it.")
    return exam


def exam_overview(*, exam: Exam) -> dict:
    """Counts for the exam page."""
    return {
        "students": exam.students.count(),
        "questions": exam.questions.count(),
        "template_pages": exam.template_pages.count(),
        "boxes": exam.boxes.filter(parent=None).count(),
        "scripts": exam.scripts.count(),
        "pages": exam.pages.count(),
        "flagged_pages": exam.pages.exclude(flag="").count(),
        "unassigned_pages": exam.pages.filter(script=None, discarded=False).count(),
        "discarded_pages": exam.pages.filter(discarded=True).count(),
        "uploads_running": exam.uploads.exclude(status__in=[ScanUpload.Status.DONE, ScanUpload.Status.FAILED]).count(),
    }


@dataclass(frozen=True)
class NextStep:
    """One thing to do next on an exam, in the workflow's order: what, and the page to do it on."""

    text: str
    url: str


def exam_next_steps(*, exam: Exam, counts: dict, can_change: bool) -> list[NextStep]:
    """What is left to do on ``exam``, first things first (``counts`` from :func:`exam_overview`).

    A department head (``can_change`` false) is only pointed at what they may do: the results.
    """
    from grader.grading.selectors import exam_finished
    from grader.reading.models import Answer

    page = reverse("exam_detail", args=[exam.pk])
    if not can_change:
        return [NextStep("Download the sample report and results", reverse("outputs", args=[exam.pk]))]
    steps = []
    for missing, text, url in (
        (not counts["students"], "Import the class roster (ID, NAME, CLASS, EMAIL)", reverse("roster", args=[exam.pk])),
        (not counts["questions"], "Import the answer key (QUESTION, ANSWER, MAX_SCORE)", reverse("answer_key", args=[exam.pk])),
        (not counts["template_pages"], "Upload the blank exam (PDF)", f"{page}#template"),
        (not counts["boxes"], "Draw the answer boxes, or accept the suggested ones", reverse("box_editor", args=[exam.pk])),
        (not counts["scripts"], "Follow the scans being split into scripts" if counts["uploads_running"]
         else "Upload the scanned scripts", f"{page}#uploads"),
    ):
        if missing:
            steps.append(NextStep(text, url))
    if counts["unassigned_pages"] or counts["flagged_pages"]:
        pages = counts["unassigned_pages"] + counts["flagged_pages"]
        steps.append(NextStep(f"Check {pages} scanned page{'s' if pages != 1 else ''} that need attention", f"{page}#attention"))
    unmatched = exam.scripts.filter(student__isnull=True).exclude(identity__confirmed_at__isnull=False).count()
    if counts["scripts"] and unmatched:
        steps.append(NextStep(f"Say whose {unmatched} script{'s' if unmatched != 1 else ''} "
                              f"{'are' if unmatched != 1 else 'is'} (identity screen)", reverse("identity", args=[exam.pk])))
    if counts["scripts"] and counts["boxes"] and not exam_finished(exam_id=exam.pk):
        unscored = Answer.objects.filter(script__exam=exam, score__isnull=True)
        open_answers = unscored.count()
        if open_answers:
            # Straight to the first question with answers left: the grading form is where the keys work.
            first = unscored.order_by("question__order", "question_id").values_list("question_id", flat=True).first()
            steps.append(NextStep(f"Grade: {open_answers} answer{'s' if open_answers != 1 else ''} "
                                  "without your score yet", reverse("grading_question", args=[exam.pk, first])))
        else:
            steps.append(NextStep("Check nothing is missed and mark the exam finished",
                                  reverse("grading_finish", args=[exam.pk])))
    if counts["scripts"] and exam_finished(exam_id=exam.pk):
        steps.append(NextStep("Download the scored scripts and email each student", reverse("outputs", args=[exam.pk])))
    return steps


def script_scan_pages(*, script: Script) -> tuple[int, ...]:
    """The script's pages as 0-based page indexes of their scanned file, in template order (pages set
    aside left out): how ``results.json`` and a replayed teacher's file name a script."""
    return tuple(
        script.pages.filter(discarded=False).order_by("position", "source_index").values_list("source_index", flat=True)
    )


def script_list_for_exam(*, exam: Exam) -> QuerySet[Script]:
    return (
        exam.scripts.select_related("student")
        .annotate(
            page_count=Count("pages", filter=Q(pages__discarded=False)),
            flag_count=Count("pages", filter=~Q(pages__flag="")),
        )
        .order_by("number")
    )


def script_get(*, exam: Exam, number: int) -> Script:
    script = exam.scripts.select_related("student").filter(number=number).first()
    if script is None:
        raise Http404("No such script.")
    return script


def page_list_for_script(*, script: Script) -> QuerySet[ScanPage]:
    return script.pages.filter(discarded=False).select_related("upload").order_by("position")


def page_list_unassigned(*, exam: Exam) -> QuerySet[ScanPage]:
    return exam.pages.filter(script=None, discarded=False).select_related("upload")


def page_list_discarded(*, exam: Exam) -> QuerySet[ScanPage]:
    return exam.pages.filter(discarded=True).select_related("upload")


def page_list_flagged(*, exam: Exam) -> QuerySet[ScanPage]:
    return exam.pages.exclude(flag="").select_related("upload", "script")


def page_get(*, exam: Exam, page_id: int) -> ScanPage:
    page = exam.pages.select_related("script", "upload").filter(pk=page_id).first()
    if page is None:
        raise Http404("No such page.")
    return page
