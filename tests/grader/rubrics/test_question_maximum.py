"""A rubric question's maximum is its rubric's total: the question settings show it read-only, and neither
they nor the answer key (its form or its spreadsheet) can set another."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from model_bakery import baker
from openpyxl import Workbook

from grader.models import Question
from grader.services import ImportProblems, answer_key_import
from grader.reading.services import QuestionSettingsRefused, question_settings_set


def _settings_post(client, question, **data):
    fields = {"max_score": "10", "min_similarity": "", "granularity": "0.5", "strategy": "auto", **data}
    return client.post(reverse("question_settings", args=[question.exam_id, question.pk]), fields)


def test_the_settings_show_a_rubric_questions_maximum_read_only_as_the_rubrics_total(client_for, teacher, essay):
    page = client_for(teacher).get(reverse("question_settings", args=[essay.exam_id, essay.pk])).content.decode()
    field = page.split('name="max_score"')[1].split(">")[0]
    assert re.match(r' value="10(\.00)?"', field) and "disabled" in field
    assert "Marked by a rubric: the max score is its total, 10." in page


def test_another_maximum_posted_in_the_settings_leaves_the_rubrics_total(client_for, teacher, essay):
    response = _settings_post(client_for(teacher), essay, max_score="5", granularity="1")

    assert response.status_code == 302
    essay.refresh_from_db()
    assert essay.max_score == Decimal("10") and essay.granularity == Decimal("1")  # the rest was saved


def test_the_settings_service_refuses_another_maximum_for_a_rubric_question_and_saves_nothing(essay):
    with pytest.raises(QuestionSettingsRefused, match="rubric's total, 10, not 5"):
        question_settings_set(question=essay, max_score=Decimal("5"), min_similarity=None, granularity=Decimal("1"),
                              strategy="auto", lowest_terms=False)
    essay.refresh_from_db()
    assert essay.max_score == Decimal("10") and essay.granularity == Decimal("0.5")
    question_settings_set(question=essay, max_score=Decimal("10"), min_similarity=None, granularity=Decimal("1"),
                          strategy="auto", lowest_terms=False)
    essay.refresh_from_db()
    assert essay.granularity == Decimal("1")


def test_the_answer_key_form_refuses_another_maximum_for_a_rubric_question(client_for, teacher, essay):
    client = client_for(teacher)
    url = reverse("question_edit", args=[essay.exam_id, essay.pk])

    response = client.post(url, {"label": "Q5", "answer": "", "accept_text": "", "max_score": "5"})

    assert response.status_code == 200
    assert "Q5 is marked by a rubric, so its max score is the rubric&#x27;s total, 10" in response.content.decode()
    essay.refresh_from_db()
    assert essay.max_score == Decimal("10")
    response = client.post(url, {"label": "Q5", "answer": "", "accept_text": "", "max_score": "10"})
    assert response.status_code == 302


def test_a_question_marked_by_its_key_keeps_any_maximum(exam):
    question = baker.make(Question, exam=exam, label="Q1", order=1, max_score=Decimal("1"))
    assert question.rubric_total() is None
    question_settings_set(question=question, max_score=Decimal("3"), min_similarity=None, granularity=None,
                          strategy="auto", lowest_terms=False)
    question.refresh_from_db()
    assert question.max_score == Decimal("3")



def _key_upload(rows) -> SimpleUploadedFile:
    workbook = Workbook()
    workbook.active.append(["QUESTION", "ANSWER", "MAX_SCORE"])
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile("key.xlsx", buffer.getvalue())


def test_an_answer_key_import_refuses_another_maximum_for_a_rubric_question_and_changes_nothing(exam, essay):
    with pytest.raises(ImportProblems) as refused:
        answer_key_import(exam=exam, file=_key_upload([["Q1", "42", 1], ["Q5", "", 6]]))
    assert refused.value.problems == ["Row 3: Q5 is marked by a rubric, so its MAX_SCORE is the rubric's total, 10; "
                                      "change the rubric to change it."]
    assert list(exam.questions.values_list("label", flat=True)) == ["Q5"]

    answer_key_import(exam=exam, file=_key_upload([["Q1", "42", 1], ["Q5", "", "10"]]))
    essay.refresh_from_db()
    assert essay.max_score == Decimal("10") and exam.questions.count() == 2
