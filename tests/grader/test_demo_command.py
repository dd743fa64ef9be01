"""``manage.py demo``: an exam ready to grade, and a graded, finished copy whose outputs can be tried at once."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from grader.grading.models import CompletenessWaiver, ExamStatus
from grader.management.commands.demo import GRADED_TITLE
from grader.models import Exam
from grader.reading.models import Answer
from ml.demo_data import TITLE

pytestmark = pytest.mark.usefixtures("remembered_ocr")


@pytest.fixture
def demo(db, settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("demo", students=5, seed=3, stdout=out)
    truth = json.loads((django_settings.VAR_DIR / "demo" / "truth.json").read_text())
    return out.getvalue(), truth


def test_the_demo_loads_an_exam_to_grade_and_a_graded_finished_copy(demo):
    output, truth = demo
    to_grade, graded = Exam.objects.get(title=TITLE), Exam.objects.get(title=GRADED_TITLE)
    assert "graded and finished" in output
    assert to_grade.scripts.count() == graded.scripts.count() == len(truth["scripts"])
    assert not Answer.objects.filter(script__exam=to_grade, score__isnull=False).exists()
    assert not ExamStatus.objects.filter(exam=to_grade, finished_at__isnull=False).exists()
    assert ExamStatus.objects.get(exam=graded).finished


def test_the_graded_copy_is_scored_from_the_truth_with_every_student_confirmed(demo):
    _, truth = demo
    graded = Exam.objects.get(title=GRADED_TITLE)
    for script, written in zip(graded.scripts.order_by("number"), truth["scripts"], strict=True):
        assert script.student.student_id == written["student_id"] and script.identity.confirmed_at
        kinds = {answer["label"]: answer["kind"] for answer in written["answers"]}
        for answer in script.answers.select_related("question"):
            right = kinds[answer.question.label] in ("correct", "misspelt")
            assert answer.score == (answer.question.max_score if right else 0)
            assert answer.changes.filter(field="score").exists()
    waived = CompletenessWaiver.objects.filter(exam=graded, kind="absent").values_list("object_id", flat=True)
    assert sorted(graded.students.filter(pk__in=waived).values_list("student_id", flat=True)) == sorted(truth["absent"])
    assert graded.scripts.exclude(comment="").count() == 2


def test_running_the_demo_again_keeps_what_is_loaded(demo):
    out = io.StringIO()
    call_command("demo", students=5, seed=3, stdout=out)
    assert "already loaded" in out.getvalue() and Exam.objects.count() == 2
