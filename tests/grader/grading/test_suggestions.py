"""Suggestions follow the teacher: a saved score is evidence for answers that read the same, the
form learns the new suggestions at once, a teacher's own score is never overwritten, and editing or
importing the key suggests again."""

from __future__ import annotations

import json
from decimal import Decimal

from django.urls import reverse

from grader.grading import services
from grader.models import Question
from grader.reading.models import Answer
from grader.reading.services import answers_suggest, question_resuggest
from tests.conftest import xlsx_upload


def test_a_saved_score_is_suggested_for_the_unscored_answers_that_read_the_same(teacher, question, answer_for):
    first, same, other = (answer_for(question, 1, "forty-one"), answer_for(question, 2, "Forty one"),
                          answer_for(question, 3, "7"))
    question_resuggest(question_id=question.pk)

    saved = services.score_set(answer_id=first.pk, score=Decimal("1"), expected_version=0, user=teacher)

    same.refresh_from_db()
    other.refresh_from_db()
    assert saved.resuggested == [same.pk]
    assert (same.suggested_score, same.suggestion_reason) == (Decimal("1"), "as script 1")
    assert (other.suggested_score, other.suggestion_reason) == (Decimal("0"), "rule: similarity 0.00")


def test_a_teachers_score_is_never_overwritten_by_a_resuggestion(teacher, question, answer_for):
    mine = answer_for(question, 1, "41")
    services.score_set(answer_id=mine.pk, score=Decimal("1.5"), expected_version=0, user=teacher)
    Question.objects.filter(pk=question.pk).update(answer="41")

    question_resuggest(question_id=question.pk)
    answers_suggest(answers=Answer.objects.filter(pk=mine.pk).select_related("question", "question__exam"))

    mine.refresh_from_db()
    assert mine.score == Decimal("1.5")
    assert mine.suggested_score == Decimal("2")  # the suggestion moves; the teacher's score does not


def test_an_answer_is_never_suggested_its_own_score(teacher, question, answer_for):
    only = answer_for(question, 1, "41")
    services.score_set(answer_id=only.pk, score=Decimal("1"), expected_version=0, user=teacher)

    question_resuggest(question_id=question.pk)

    only.refresh_from_db()
    assert only.suggestion_reason.startswith("rule:")


def test_the_score_view_sends_the_new_suggestions_of_other_rows(client_for, teacher, exam, question, answer_for):
    first, same = answer_for(question, 1, "forty-one"), answer_for(question, 2, "forty-one")
    question_resuggest(question_id=question.pk)

    response = client_for(teacher, htmx=True).post(reverse("grading_score", args=[exam.pk, first.pk]),
                                                   {"score": "0.5", "version": 0})

    event = json.loads(response["HX-Trigger"])["scoreSaved"]
    assert event["suggestions"] == {str(same.pk): {"score": "0.5", "reason": "as script 1"}}


def test_a_row_shows_why_its_score_is_suggested_and_what_was_read_beside_what_fits(
        client_for, teacher, exam, question, answer_for):
    answer = answer_for(question, 1, "42", suggestion_reason="fits key: 42", fit_text="42")
    Answer.objects.filter(pk=answer.pk).update(readings={"easyocr": {"text": "4Z", "confidence": 0.4}})

    html = client_for(teacher).get(reverse("grading_question", args=[exam.pk, question.pk])).content.decode()

    assert "fits key: 42" in html and "read: 4Z" in html


def test_editing_a_key_answer_suggests_again(client_for, teacher, exam, question, answer_for,
                                             django_capture_on_commit_callbacks):
    answer = answer_for(question, 1, "41")
    question_resuggest(question_id=question.pk)
    assert Answer.objects.get(pk=answer.pk).suggested_score == Decimal("0")

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher).post(reverse("question_edit", args=[exam.pk, question.pk]), {
            "label": "Q1", "order": 1, "answer": "41", "accept": "", "max_score": "2"})

    assert response.status_code == 302
    assert Answer.objects.get(pk=answer.pk).suggested_score == Decimal("2")


def test_importing_a_changed_key_suggests_again(client_for, teacher, exam, question, answer_for,
                                                django_capture_on_commit_callbacks):
    answer = answer_for(question, 1, "41")
    question_resuggest(question_id=question.pk)
    key = xlsx_upload([["QUESTION", "ANSWER", "MAX_SCORE"], ["Q1", "41", 2]], name="answers.xlsx")

    with django_capture_on_commit_callbacks(execute=True):
        client_for(teacher).post(reverse("answer_key_import", args=[exam.pk]), {"file": key})

    assert Answer.objects.get(pk=answer.pk).suggested_score == Decimal("2")

