"""Dimension scores and feedback reach the scored PDF's summary page, the spreadsheet and the email."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from model_bakery import baker
from openpyxl import load_workbook

from grader.models import Student
from grader.outputs.emails import email_render, email_template_problems
from grader.outputs.pdf import scripts_html
from grader.outputs.selectors import script_results
from grader.outputs.spreadsheet import scores_workbook
from grader.rubrics.services import comment_add, rubric_answer_save


@pytest.fixture
def graded(exam, essay, essay_answers, teacher):
    """Script 1 (Ada) scored 3 + 2.5 + 2 with a bank comment and her own line; script 2 scored, no feedback."""
    for answer, name in zip(essay_answers, ("Ada Lovelace", "Ben Okafor", "Cy Young"), strict=True):
        answer.script.student = baker.make(Student, exam=exam, name=name, student_id=f"S{answer.script.number}")
        answer.script.save()
    comment_add(question_id=essay.pk, text="Name both causes.")
    first, second, _ = essay_answers
    rubric_answer_save(answer_id=first.pk, points=[Decimal("3"), Decimal("2.5"), Decimal("2")], comment_numbers=[1],
                       text="Clear paragraphs.", expected_version=first.version, user=teacher)
    rubric_answer_save(answer_id=second.pk, points=[Decimal("1")] * 3, comment_numbers=[], text="",
                       expected_version=second.version, user=teacher)
    return first


def test_the_spreadsheet_has_a_column_per_dimension_and_a_feedback_sheet(exam, graded):
    workbook = load_workbook(io.BytesIO(scores_workbook(exam=exam)))
    dimensions = list(workbook["Dimensions"].values)
    assert dimensions[0] == ("SCRIPT", "ID", "NAME", "Q5 Content (4)", "Q5 Organisation (3)", "Q5 Language (3)")
    assert dimensions[1][3:] == (3, 2.5, 2) and dimensions[2][3:] == (1, 1, 1) and dimensions[3][3:] == (None,) * 3
    feedback = list(workbook["Feedback"].values)
    assert len(feedback) == 2  # only script 1 has feedback
    assert feedback[1][3:] == ("Q5", 7.5, "Content 3/4 · Organisation 2.5/3 · Language 2/3",
                               "Name both causes.\nClear paragraphs.")


def test_an_exam_without_rubrics_gets_no_rubric_sheets(exam):
    from grader.models import Question, Script
    from grader.reading.models import Answer

    question = baker.make(Question, exam=exam, label="Q1", answer="42")
    baker.make(Answer, script=baker.make(Script, exam=exam, number=1), question=question, text="42",
               score=Decimal("1"))
    workbook = load_workbook(io.BytesIO(scores_workbook(exam=exam)))
    assert "Dimensions" not in workbook.sheetnames and "Feedback" not in workbook.sheetnames


def test_the_email_template_quotes_the_feedback(exam, graded):
    assert email_template_problems("Dear {name},\n{feedback}") == []
    result = next(r for r in script_results(exam=exam) if r.script.number == 1)
    email = email_render(subject="{exam}", body="Dear {name},\n\n{feedback}", exam=exam, result=result)
    assert email.body == ("Dear Ada Lovelace,\n\nQ5 (Content 3/4 · Organisation 2.5/3 · Language 2/3): "
                          "Name both causes.\nClear paragraphs.")


def test_the_scored_scripts_summary_page_shows_dimensions_and_feedback(exam, graded):
    html = scripts_html(exam=exam, results=[r for r in script_results(exam=exam) if r.script.number == 1])
    assert "Content 3/4 · Organisation 2.5/3 · Language 2/3" in html
    assert "Name both causes.<br>Clear paragraphs." in html


def test_the_scored_page_shows_the_dimensions_points_beside_the_box(exam, graded):
    from grader.outputs.pdf import _script_context

    from .test_export import _page

    first = graded
    first.page = _page(exam, first.script, 0)
    type(first).objects.filter(pk=first.pk).update(page=first.page, crop=[20, 30, 220, 130])
    result = next(r for r in script_results(exam=exam) if r.script.number == 1)
    context = _script_context(result, [first.page])
    assert [box.text for box in context["pages"][0].boxes] == ["7.5/10 (3+2.5+2)"]
