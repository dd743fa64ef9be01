"""A rubric question (Content /4, Organisation /3, Language /3 in steps of 0.5) with read answers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from model_bakery import baker

from grader.models import Question, Script
from grader.reading.models import Answer
from grader.rubrics.services import DimensionSpec, LevelSpec, question_rubric_set, rubric_save

DIMENSIONS = (
    DimensionSpec(name="Content", max_points=Decimal("4"), levels=(
        LevelSpec(points=Decimal("4"), label="exceptional", description="every cause, each explained"),
        LevelSpec(points=Decimal("2"), label="fair", description="one cause"))),
    DimensionSpec(name="Organisation", max_points=Decimal("3")),
    DimensionSpec(name="Language", max_points=Decimal("3")),
)


@pytest.fixture
def rubric(teacher):
    return rubric_save(owner=teacher, name="Explain", dimensions=DIMENSIONS)


@pytest.fixture
def essay(exam, rubric, teacher) -> Question:
    question = baker.make(Question, exam=exam, label="Q5", order=5, granularity=Decimal("0.5"))
    return question_rubric_set(question_id=question.pk, rubric_id=rubric.pk, task="Explain why we have seasons.",
                               user=teacher)


@pytest.fixture
def essay_answers(exam, essay) -> list[Answer]:
    return [baker.make(Answer, script=baker.make(Script, exam=exam, number=number), question=essay, text="",
                       read_at=timezone.now())
            for number in (1, 2, 3)]
