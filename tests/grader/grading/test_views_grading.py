"""Grading screens: permissions, saving scores over htmx, refusals, stale saves, text, revert,
anonymous exams, groups and the completeness page."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from grader.grading import services
from grader.grading.selectors import exam_completeness
from grader.grading.models import AnswerChange, CompletenessWaiver, ExamStatus
from grader.models import Student


def _score_url(exam, answer):
    return reverse("grading_score", args=[exam.pk, answer.pk])


def _question_url(exam, question):
    return reverse("grading_question", args=[exam.pk, question.pk])


@pytest.fixture
def named(exam, scripts):
    """Scripts 1 and 2 belong to named students."""
    for script, (sid, name) in zip(scripts, [("S1001", "Amira Haddad"), ("S1002", "Ben Okafor")]):
        script.student = baker.make(Student, exam=exam, student_id=sid, name=name)
        script.save()
    return scripts


# ---------------------------------------------------------------- permissions


def test_another_teacher_gets_404_everywhere(client_for, other_teacher, exam, question, answer):
    client = client_for(other_teacher)
    for url in (reverse("grading_index", args=[exam.pk]), _question_url(exam, question),
                reverse("grading_finish", args=[exam.pk])):
        assert client.get(url).status_code == 404
    assert client.post(_score_url(exam, answer), {"score": "1", "version": 0}).status_code == 404


def test_a_department_head_reads_but_cannot_change(client_for, head, exam, question, answer):
    client = client_for(head, htmx=True)
    page = client.get(_question_url(exam, question))
    assert page.status_code == 200
    assert 'hx-post="' + _score_url(exam, answer) not in page.content.decode()
    assert client.get(reverse("grading_index", args=[exam.pk])).status_code == 200
    assert client.post(_score_url(exam, answer), {"score": "1", "version": 0}).status_code == 403
    assert client.post(reverse("grading_finish", args=[exam.pk])).status_code == 403
    answer.refresh_from_db()
    assert answer.score is None


# ---------------------------------------------------------------- the question page and scores


def test_the_question_page_lists_answers_with_labels_and_suggestions(client_for, teacher, exam, question, answer_for, named):
    answer_for(question, 1, "42", suggested_score=Decimal("2"), similarity=1.0)
    answer_for(question, 3, "4?", suggested_score=Decimal("0"), similarity=0.2, flagged=True, flag_reason="low confidence")
    html = client_for(teacher).get(_question_url(exam, question)).content.decode()
    assert "Q1 score for script 1 (Amira Haddad)" in html
    assert "Q1 score for script 3" in html
    assert 'placeholder="2"' in html
    assert "low confidence" in html and "grading-flagged" in html
    by_similarity = client_for(teacher).get(_question_url(exam, question) + "?sort=similarity").content.decode()
    assert by_similarity.index("Q1 score for script 3") < by_similarity.index("Q1 score for script 1")


def test_an_anonymous_exam_shows_script_numbers_only(client_for, teacher, exam, question, answer_for, named):
    exam.anonymous = True
    exam.save()
    answer_for(question, 1, "42", suggested_score=Decimal("2"))
    answer_for(question, 2, "42", suggested_score=Decimal("2"))
    html = client_for(teacher).get(_question_url(exam, question)).content.decode()
    assert "Q1 score for script 1" in html
    for secret in ("Amira", "Haddad", "S1001", "Ben Okafor", "S1002"):
        assert secret not in html


def test_saving_a_score_updates_the_answer_and_returns_the_row(client_for, teacher, exam, question, answer):
    response = client_for(teacher, htmx=True).post(_score_url(exam, answer), {"score": "1.5", "version": answer.version})
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"])["scoreSaved"]["answer"] == answer.pk
    answer.refresh_from_db()
    assert answer.score == Decimal("1.5") and answer.version == 1 and answer.scored_by == teacher
    html = response.content.decode()
    assert f'id="answer-{answer.pk}"' in html and '"version": "1"' in html and 'value="1.5"' in html
    assert "saved" in html


def test_an_invalid_score_is_refused_with_a_message_and_nothing_saved(client_for, teacher, exam, question, answer):
    client = client_for(teacher, htmx=True)
    for bad in ("3", "0.3", "-1", "abc"):
        response = client.post(_score_url(exam, answer), {"score": bad, "version": answer.version})
        assert response.status_code == 422, bad
        assert "grading-refused" in response.content.decode()
    answer.refresh_from_db()
    assert answer.score is None and answer.version == 0
    assert not AnswerChange.objects.exists()


def test_a_stale_save_shows_the_current_value_and_saves_nothing(client_for, teacher, other_teacher, exam, question, answer):
    exam.co_markers.add(other_teacher)
    other_teacher.first_name, other_teacher.last_name = "Olu", "Other"
    other_teacher.save()
    services.score_set(answer_id=answer.pk, score=Decimal("2"), expected_version=0, user=other_teacher)
    response = client_for(teacher, htmx=True).post(_score_url(exam, answer), {"score": "1", "version": 0})
    assert response.status_code == 409
    html = response.content.decode()
    assert "Changed by Olu Other to 2; yours was not saved." in html
    assert 'value="2"' in html and '"version": "1"' in html
    answer.refresh_from_db()
    assert answer.score == Decimal("2")


def test_correcting_the_text_confirms_it_and_updates_the_suggestion(client_for, teacher, exam, question, answer):
    url = reverse("grading_text", args=[exam.pk, answer.pk])
    response = client_for(teacher, htmx=True).post(url, {"text": " 42 ", "version": answer.version})
    assert response.status_code == 200
    answer.refresh_from_db()
    assert answer.confirmed_text == "42" and answer.text == "42"
    assert answer.suggested_score == Decimal("2")
    assert "corrected" in response.content.decode()


def test_history_lists_changes_and_revert_undoes_one(client_for, teacher, exam, question, answer):
    client = client_for(teacher, htmx=True)
    client.post(_score_url(exam, answer), {"score": "1", "version": 0})
    client.post(_score_url(exam, answer), {"score": "2", "version": 1})
    history = client.get(reverse("grading_row", args=[exam.pk, answer.pk]) + "?history=1").content.decode()
    latest = AnswerChange.objects.filter(answer=answer).first()
    assert "Revert" in history and reverse("grading_revert", args=[exam.pk, latest.pk]) in history
    response = client.post(reverse("grading_revert", args=[exam.pk, latest.pk]))
    assert response.status_code == 200
    answer.refresh_from_db()
    assert answer.score == Decimal("1")
    # Reverting the same change again is refused: the value is no longer what it set.
    again = client.post(reverse("grading_revert", args=[exam.pk, latest.pk]))
    assert again.status_code == 409 and "revert the later change first" in again.content.decode()
    answer.refresh_from_db()
    assert answer.score == Decimal("1")


# ---------------------------------------------------------------- groups


def test_a_group_is_scored_at_once_and_a_member_pulled_out(client_for, teacher, exam, question, answer_for):
    members = [answer_for(question, number, "41", suggested_score=Decimal("0")) for number in (1, 2, 3)]
    answer_for(question, 4, "42", suggested_score=Decimal("2"))
    client = client_for(teacher, htmx=True)
    html = client.get(_question_url(exam, question)).content.decode()
    assert "Answers that read the same (1 group)" in html
    versions = ",".join(f"{m.pk}:{m.version}" for m in members[:2])  # script 3 changed since (not seen)
    response = client.post(reverse("grading_group_score", args=[exam.pk, question.pk]),
                           {"group": "41", "score": "0.5", "versions": versions})
    assert response.status_code == 200 and "scoreSaved" in response["HX-Trigger"]
    assert "Scored 2 answers 0.5" in response.content.decode()
    assert [m.score for m in (type(members[0]).objects.filter(pk__in=[m.pk for m in members]).order_by("script__number"))] == [
        Decimal("0.5"), Decimal("0.5"), None]
    response = client.post(reverse("grading_detach", args=[exam.pk, members[0].pk]))
    assert response.status_code == 200
    assert "Q1 score for the group" in response.content.decode()  # 2 and 3 still read the same
    refused = client.post(reverse("grading_group_score", args=[exam.pk, question.pk]), {"group": "41", "score": "9"})
    assert refused.status_code == 422


# ---------------------------------------------------------------- index and completeness


def test_the_index_shows_progress_per_question(client_for, teacher, exam, question, answer_for):
    answer_for(question, 1, "42", suggested_score=Decimal("2"), score=Decimal("2"))
    answer_for(question, 2, "4", suggested_score=None)
    html = client_for(teacher).get(reverse("grading_index", args=[exam.pk])).content.decode()
    assert "Grade Q1" in html and "1 / 2" in html
    assert reverse("question_settings", args=[exam.pk, question.pk]) in html
    assert reverse("grading_finish", args=[exam.pk]) in html


def test_waive_then_finish(client_for, teacher, exam, question, answer_for):
    unscored = answer_for(question, 1, "4", suggested_score=None)
    client = client_for(teacher)
    page = client.get(reverse("grading_finish", args=[exam.pk])).content.decode()
    assert "Script 1 Q1 has no score" in page
    assert f"{_question_url(exam, question)}#answer-{unscored.pk}" in page
    refused = client.post(reverse("grading_finish", args=[exam.pk]))
    assert refused.status_code == 422 and "Not finished" in refused.content.decode()
    assert not ExamStatus.objects.filter(exam=exam, finished_at__isnull=False).exists()
    waive = reverse("grading_waive", args=[exam.pk])
    client.post(waive, {"kind": "unscored", "object_id": unscored.pk, "reason": "  "})
    assert not CompletenessWaiver.objects.exists()
    client.post(waive, {"kind": "unscored", "object_id": unscored.pk, "reason": "Left the room ill"})
    assert CompletenessWaiver.objects.get().reason == "Left the room ill"
    for item in exam_completeness(exam_id=exam.pk).open_items:  # the scripts have no students
        client.post(waive, {"kind": item.kind, "object_id": item.object_id, "reason": "Practice scripts"})
    assert client.post(reverse("grading_finish", args=[exam.pk])).status_code == 302
    assert ExamStatus.objects.get(exam=exam).finished
    locked = client_for(teacher, htmx=True).post(_score_url(exam, unscored), {"score": "1", "version": 0})
    assert locked.status_code == 422 and "finished" in locked.content.decode()


def test_completeness_groups_items_by_question_and_kind_each_group_linking_to_its_fix(
        client_for, teacher, exam, question, answer_for):
    for number in (1, 2, 3):
        answer_for(question, number, "4", suggested_score=None)
    answer_for(question, 4, "7", flagged=True, flag_reason="Low confidence (easyocr 0.20).", suggested_score=Decimal("0"))

    page = client_for(teacher).get(reverse("grading_finish", args=[exam.pk])).content.decode()

    assert "Q1: 3 answers with no score" in page and "Q1: 1 flagged answer to check" in page
    assert "6 scripts without a student" in page
    assert page.count(f'href="{_question_url(exam, question)}">Grade Q1</a>') == 2
    assert f'href="{reverse("identity", args=[exam.pk])}">Identity screen</a>' in page


def test_a_finished_exam_can_be_reopened_by_a_teacher_but_not_by_a_head(client_for, teacher, head, exam, answer):
    ExamStatus.objects.create(exam=exam, finished_at=timezone.now(), finished_by=teacher)
    page = client_for(teacher).get(reverse("grading_finish", args=[exam.pk])).content.decode()
    assert reverse("grading_reopen", args=[exam.pk]) in page and reverse("outputs", args=[exam.pk]) in page
    assert client_for(head).post(reverse("grading_reopen", args=[exam.pk])).status_code == 403
    assert ExamStatus.objects.get(exam=exam).finished

    response = client_for(teacher).post(reverse("grading_reopen", args=[exam.pk]), follow=True)
    assert "open for grading again" in response.content.decode()
    assert not ExamStatus.objects.get(exam=exam).finished
    saved = client_for(teacher, htmx=True).post(_score_url(exam, answer), {"score": "1", "version": answer.version})
    assert saved.status_code == 200


def test_rolling_the_exam_back_undoes_every_change_after_the_time_given(client_for, teacher, exam, question, answer):
    client = client_for(teacher)
    client.post(_score_url(exam, answer), {"score": "1", "version": 0})
    AnswerChange.objects.update(at=timezone.now() - timedelta(minutes=5))
    client.post(_score_url(exam, answer), {"score": "2", "version": 1})
    cut = timezone.localtime() - timedelta(minutes=1)  # after the first change, before the second

    response = client.post(reverse("grading_rollback", args=[exam.pk]), {"to": f"{cut:%Y-%m-%dT%H:%M:%S}"}, follow=True)

    answer.refresh_from_db()
    assert answer.score == Decimal("1")
    assert "1 change undone" in response.content.decode()
    refused = client.post(reverse("grading_rollback", args=[exam.pk]), {"to": "soon"}, follow=True)
    assert "Give the date and time to roll back to." in refused.content.decode()
