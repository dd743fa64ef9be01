"""Teacher scores and transcriptions: validation, stale saves, history, reverts and rolling back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from model_bakery import baker
from django.utils import timezone

from grader.grading import services as grading
from grader.grading.models import AnswerChange, ExamStatus
from grader.grading.selectors import answer_history
from grader.models import Exam, Question, Script
from grader.reading.models import Answer


def test_a_valid_score_is_saved_with_who_and_when_and_the_version_goes_up(answer, teacher):
    saved = grading.score_set(answer_id=answer.pk, score=Decimal("1.5"), expected_version=0, user=teacher)

    answer.refresh_from_db()
    assert saved.score == answer.score == Decimal("1.5")
    assert answer.scored_by == teacher and answer.scored_at is not None
    assert answer.version == 1
    change = AnswerChange.objects.get(answer=answer)
    assert (change.field, change.old_value, change.new_value, change.by) == ("score", None, "1.5", teacher)


@pytest.mark.parametrize(
    ("score", "message"),
    [
        (Decimal("2.5"), "above the maximum of 2"),
        (Decimal("-0.5"), "cannot be negative"),
        (Decimal("0.25"), "not a multiple of 0.5"),
        (Decimal("NaN"), "must be a number"),
    ],
)
def test_an_invalid_score_is_refused_with_a_message_and_nothing_is_saved(answer, teacher, score, message):
    with pytest.raises(grading.ScoreRefused, match=message):
        grading.score_set(answer_id=answer.pk, score=score, expected_version=0, user=teacher)

    answer.refresh_from_db()
    assert answer.score is None and answer.version == 0
    assert not AnswerChange.objects.exists()


def test_a_save_against_a_stale_version_is_refused_and_shows_the_current_score(answer, teacher, other_teacher):
    grading.score_set(answer_id=answer.pk, score=Decimal("2"), expected_version=0, user=teacher)

    with pytest.raises(grading.StaleAnswer) as refused:
        grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=other_teacher)

    assert refused.value.current.score == Decimal("2") and refused.value.current.version == 1
    answer.refresh_from_db()
    assert answer.score == Decimal("2") and answer.scored_by == teacher
    assert AnswerChange.objects.count() == 1


def test_clearing_a_score_brings_back_the_suggestion_and_is_recorded(answer, teacher):
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=teacher)

    grading.score_set(answer_id=answer.pk, score=None, expected_version=1, user=teacher)

    answer.refresh_from_db()
    assert answer.score is None and answer.scored_by is None and answer.suggested_score == Decimal("0")
    assert answer_history(answer_id=answer.pk).first().new_value is None


def test_saving_the_score_an_answer_already_has_records_nothing(answer, teacher):
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=teacher)
    grading.score_set(answer_id=answer.pk, score=Decimal("1.00"), expected_version=1, user=teacher)

    answer.refresh_from_db()
    assert answer.version == 1 and AnswerChange.objects.count() == 1


def test_a_confirmed_transcription_replaces_the_text_and_the_suggestion_follows_it(answer, teacher):
    saved = grading.text_confirm(answer_id=answer.pk, text=" 42 ", expected_version=0, user=teacher)

    answer.refresh_from_db()
    assert answer.confirmed_text == answer.text == "42"
    assert answer.suggested_score == saved.suggested_score == Decimal("2")
    assert answer.similarity == 1.0 and answer.version == 1
    change = AnswerChange.objects.get(answer=answer)
    assert (change.field, change.old_value, change.new_value) == ("text", None, "42")


def test_a_stale_transcription_is_refused(answer, teacher, other_teacher):
    grading.text_confirm(answer_id=answer.pk, text="42", expected_version=0, user=teacher)

    with pytest.raises(grading.StaleAnswer) as refused:
        grading.text_confirm(answer_id=answer.pk, text="43", expected_version=0, user=other_teacher)

    assert refused.value.current.confirmed_text == "42"


def test_history_lists_every_change_newest_first(answer, teacher, other_teacher):
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=teacher)
    grading.text_confirm(answer_id=answer.pk, text="42", expected_version=1, user=other_teacher)
    grading.score_set(answer_id=answer.pk, score=Decimal("2"), expected_version=2, user=other_teacher)

    history = list(answer_history(answer_id=answer.pk))

    assert [(c.field, c.old_value, c.new_value, c.by) for c in history] == [
        ("score", "1", "2", other_teacher),
        ("text", None, "42", other_teacher),
        ("score", None, "1", teacher),
    ]


def test_reverting_a_score_change_applies_its_old_value_as_a_new_change(answer, teacher, other_teacher):
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=teacher)
    grading.score_set(answer_id=answer.pk, score=Decimal("2"), expected_version=1, user=teacher)
    latest = answer_history(answer_id=answer.pk).first()

    revert = grading.change_revert(change_id=latest.pk, user=other_teacher)

    answer.refresh_from_db()
    assert answer.score == Decimal("1") and answer.version == 3 and answer.scored_by == other_teacher
    assert (revert.old_value, revert.new_value, revert.reverted_change, revert.by) == ("2", "1", latest, other_teacher)


def test_reverting_a_transcription_back_to_none_restores_the_engines_reading_and_suggestion(answer, teacher):
    change = grading.text_confirm(answer_id=answer.pk, text="42", expected_version=0, user=teacher).changes.get()

    grading.change_revert(change_id=change.pk, user=teacher)

    answer.refresh_from_db()
    assert answer.confirmed_text is None and answer.text == "41"
    assert answer.suggested_score == Decimal("0")


def test_a_change_that_was_changed_again_since_cannot_be_reverted(answer, teacher):
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=teacher)
    first = answer_history(answer_id=answer.pk).get()
    grading.score_set(answer_id=answer.pk, score=Decimal("2"), expected_version=1, user=teacher)

    with pytest.raises(grading.StaleAnswer, match="changed again"):
        grading.change_revert(change_id=first.pk, user=teacher)

    answer.refresh_from_db()
    assert answer.score == Decimal("2") and AnswerChange.objects.count() == 2


def test_rolling_back_the_exam_restores_every_answer_as_it_was_at_that_time(question, answer_for, teacher, exam):
    first, second = answer_for(question, 1, "41"), answer_for(question, 2, "42")
    grading.score_set(answer_id=first.pk, score=Decimal("1"), expected_version=0, user=teacher)
    grading.text_confirm(answer_id=second.pk, text="4 2", expected_version=0, user=teacher)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    AnswerChange.objects.update(at=an_hour_ago - timedelta(minutes=5))
    # After the point in time: a score change on the first, a score and a text change on the second.
    grading.score_set(answer_id=first.pk, score=Decimal("2"), expected_version=1, user=teacher)
    grading.score_set(answer_id=second.pk, score=Decimal("0.5"), expected_version=1, user=teacher)
    grading.text_confirm(answer_id=second.pk, text="forty-two", expected_version=2, user=teacher)

    reverts = grading.exam_rollback(exam_id=exam.pk, to=an_hour_ago, user=teacher)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.score == Decimal("1")
    assert second.score is None and second.confirmed_text == "4 2" and second.text == "4 2"
    assert len(reverts) == 3 and all(r.reverted_change is not None for r in reverts)
    assert [r.reverted_change.new_value for r in reverts] == ["forty-two", "0.5", "2"]  # newest first


def test_a_rollback_can_itself_be_rolled_back(answer, teacher, exam):
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=0, user=teacher)
    before_rollback = timezone.now()
    AnswerChange.objects.update(at=before_rollback - timedelta(minutes=1))

    grading.exam_rollback(exam_id=exam.pk, to=before_rollback - timedelta(minutes=2), user=teacher)
    answer.refresh_from_db()
    assert answer.score is None

    grading.exam_rollback(exam_id=exam.pk, to=before_rollback, user=teacher)
    answer.refresh_from_db()
    assert answer.score == Decimal("1")


def test_a_rollback_that_meets_an_answer_changed_outside_its_history_changes_nothing(question, answer_for, teacher, exam):
    first, second = answer_for(question, 1, "41"), answer_for(question, 2, "42")
    start = timezone.now() - timedelta(seconds=1)
    grading.score_set(answer_id=first.pk, score=Decimal("1"), expected_version=0, user=teacher)
    grading.score_set(answer_id=second.pk, score=Decimal("2"), expected_version=0, user=teacher)
    Answer.objects.filter(pk=first.pk).update(score=Decimal("0.5"))

    with pytest.raises(grading.StaleAnswer):
        grading.exam_rollback(exam_id=exam.pk, to=start, user=teacher)

    second.refresh_from_db()
    assert second.score == Decimal("2") and AnswerChange.objects.count() == 2


def test_scores_cannot_change_on_a_finished_exam_until_it_is_reopened(answer, teacher, exam):
    grading.score_set(answer_id=answer.pk, score=Decimal("0"), expected_version=0, user=teacher)
    ExamStatus.objects.create(exam=exam, finished_at=timezone.now(), finished_by=teacher)

    with pytest.raises(grading.ExamFinishedRefused):
        grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=1, user=teacher)
    with pytest.raises(grading.ExamFinishedRefused):
        grading.change_revert(change_id=answer.changes.get().pk, user=teacher)

    grading.exam_reopen(exam_id=exam.pk, user=teacher)
    grading.score_set(answer_id=answer.pk, score=Decimal("1"), expected_version=1, user=teacher)
    answer.refresh_from_db()
    assert answer.score == Decimal("1")


def test_a_transcription_typed_into_a_box_read_as_blank_is_suggested_a_score(teacher):
    exam = baker.make(Exam, owner=teacher)
    question = baker.make(Question, exam=exam, label="Q4", answer="60", max_score=Decimal("1"), strategy="numeric")
    answer = baker.make(
        Answer, script=baker.make(Script, exam=exam, number=1), question=question, blank=True, text="",
        read_at=timezone.now(), suggested_score=Decimal("0"),
    )

    answer = grading.text_confirm(answer_id=answer.pk, text="60", expected_version=0, user=teacher)

    answer.refresh_from_db()
    assert answer.blank and answer.suggested_score == Decimal("1") and answer.similarity == 1.0
