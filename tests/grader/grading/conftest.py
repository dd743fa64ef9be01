"""An exam with questions and read answers made directly in the database (no scans, no OCR)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from model_bakery import baker

from grader.models import Question, Script
from grader.reading.models import Answer


@pytest.fixture
def question(exam) -> Question:
    """Q1: 2 marks in steps of 0.5, answer "42" compared exactly."""
    return baker.make(Question, exam=exam, label="Q1", order=1, answer="42", max_score=Decimal("2"),
                      granularity=Decimal("0.5"), strategy="exact")


@pytest.fixture
def scripts(exam) -> list[Script]:
    return [baker.make(Script, exam=exam, number=number) for number in range(1, 7)]


@pytest.fixture
def answer_for(scripts):
    """Make the answer of script ``number`` (1-6) to ``question`` as if the engines read ``text``."""

    def make(question: Question, number: int, text: str, **fields) -> Answer:
        return baker.make(
            Answer, script=scripts[number - 1], question=question, text=text, read_at=timezone.now(),
            readings={"easyocr": {"text": text, "confidence": 0.9}}, blank=not text, **fields,
        )

    return make


@pytest.fixture
def answer(question, answer_for) -> Answer:
    return answer_for(question, 1, "41", suggested_score=Decimal("0"))
