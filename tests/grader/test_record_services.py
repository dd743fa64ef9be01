"""Roster, answer key and exam settings change through services: one lock, clashes refused, and
suggestions follow a changed key or scoring default (teacher scores stay)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from model_bakery import baker

from grader import services
from grader.models import Exam, Question, Student
from grader.reading import tasks as reading_tasks


@pytest.fixture
def resuggested(monkeypatch) -> list[int]:
    """Question ids queued for re-suggestion."""
    queued: list[int] = []
    monkeypatch.setattr(reading_tasks.question_resuggest_task, "delay", queued.append)
    return queued


def test_a_student_id_used_by_another_student_is_refused_and_nothing_changes(exam):
    services.student_save(exam=exam, student_id="S1", name="Amira Haddad")
    ben = services.student_save(exam=exam, student_id="S2", name="Ben Okafor")

    with pytest.raises(services.RecordRefused, match="S1 is already on the roster"):
        services.student_save(exam=exam, student=ben, student_id="S1", name="Ben Okafor")

    assert Student.objects.get(pk=ben.pk).student_id == "S2"


def test_a_new_question_goes_to_the_end_of_the_key(exam):
    baker.make(Question, exam=exam, label="Q1", order=4, max_score=1)

    question = services.question_save(exam=exam, label="Q2", answer="Na", accept=["sodium"], max_score=Decimal("2"))

    assert (question.order, question.accept) == (5, ["sodium"])


def test_a_changed_key_answer_is_suggested_again_but_a_new_label_alone_is_not(
    exam, resuggested, django_capture_on_commit_callbacks
):
    question = baker.make(Question, exam=exam, label="Q1", answer="Na", accept=[], max_score=Decimal("1.00"))

    with django_capture_on_commit_callbacks(execute=True):
        services.question_save(exam=exam, question=question, label="Q1a", answer="Na", accept=[], max_score=Decimal("1"))
    assert resuggested == []

    with django_capture_on_commit_callbacks(execute=True):
        services.question_save(exam=exam, question=question, label="Q1a", answer="K", accept=[], max_score=Decimal("1"))
    assert resuggested == [question.pk]


def test_new_scoring_defaults_suggest_every_question_again(exam, resuggested, django_capture_on_commit_callbacks):
    questions = baker.make(Question, exam=exam, max_score=1, _quantity=2)

    with django_capture_on_commit_callbacks(execute=True):
        services.exam_update(exam=exam, title="Renamed")
    assert resuggested == []

    with django_capture_on_commit_callbacks(execute=True):
        services.exam_update(exam=exam, default_granularity=exam.default_granularity / 2)
    assert sorted(resuggested) == sorted(question.pk for question in questions)


def test_exam_update_refuses_a_field_the_exam_form_does_not_change(exam):
    with pytest.raises(TypeError, match="owner"):
        services.exam_update(exam=exam, owner=None)


def test_a_default_granularity_the_key_does_not_fit_is_refused_on_the_exam_form(exam, teacher, client_for):
    baker.make(Question, exam=exam, label="Q1", max_score=Decimal("1.5"))
    baker.make(Question, exam=exam, label="Q2", max_score=Decimal("1.5"), granularity=Decimal("0.5"))
    form = {"title": "Renamed", "subject": "", "date": "", "department": exam.department_id or "", "classes": "",
            "pages_per_script": exam.pages_per_script, "default_min_similarity": "0.8", "default_granularity": "1"}

    response = client_for(teacher).post(reverse("exam_edit", args=[exam.pk]), form)

    assert response.status_code == 200
    assert "not multiples of 1: Q1 (max 1.5)" in response.content.decode()
    assert Exam.objects.get(pk=exam.pk).title == exam.title
