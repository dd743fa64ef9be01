"""``manage.py demo`` has a rubric question: marked by the key's RUBRIC sheet, scored by dimension with a
bank comment in the graded copy, and its feedback reaches the spreadsheet and the email."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from openpyxl import load_workbook

from grader.management.commands.demo import GRADED_TITLE
from grader.models import Exam
from grader.outputs.emails import email_render
from grader.outputs.selectors import script_results
from grader.outputs.spreadsheet import scores_workbook
from grader.reading.models import Answer
from grader.rubrics.models import DimensionScore
from ml.demo_data import FULL_MARK_KINDS, RUBRIC_COMMENTS, RUBRIC_NAME, RUBRIC_QUESTION, TITLE

pytestmark = pytest.mark.usefixtures("remembered_ocr")


def test_the_demo_marks_q11_by_a_rubric_and_grades_it_by_dimension_with_feedback(db, settings):
    settings.DEBUG = True
    call_command("demo", students=3, seed=3, stdout=io.StringIO())
    truth = json.loads((django_settings.VAR_DIR / "demo" / "truth.json").read_text())
    for title in (TITLE, GRADED_TITLE):
        question = Exam.objects.get(title=title).questions.get(label=RUBRIC_QUESTION)
        assert question.rubric_link.rubric.name == RUBRIC_NAME and question.max_score == Decimal("2")
        assert [c.text for c in question.feedback_comments.all()] == list(RUBRIC_COMMENTS)
    graded = Exam.objects.get(title=GRADED_TITLE)
    answers = Answer.objects.filter(script__exam=graded, question__label=RUBRIC_QUESTION).select_related("script")
    kinds = {script["student_id"]: next(a["kind"] for a in script["answers"] if a["label"] == RUBRIC_QUESTION)
             for script in truth["scripts"]}
    for answer in answers:
        full = kinds[answer.script.student.student_id] in FULL_MARK_KINDS
        assert answer.score == (Decimal("2") if full else Decimal("0"))
        assert DimensionScore.objects.filter(answer=answer).count() == 3
        assert answer.feedback.full_text == RUBRIC_COMMENTS[0 if full else 1]
    assert "Feedback" in load_workbook(io.BytesIO(scores_workbook(exam=graded))).sheetnames
    result = next(r for r in script_results(exam=graded) if r.student)
    body = email_render(subject="{exam}", body="{feedback}", exam=graded, result=result).body
    assert body.startswith(f"{RUBRIC_QUESTION} (Content ") and body.endswith(tuple(RUBRIC_COMMENTS))
