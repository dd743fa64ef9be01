"""A rubric answer's history: every change to its dimensions or feedback is recorded with its total, so a
whole-exam rollback puts the dimensions and the feedback back with the total, and the total is always the
sum of the dimensions."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from grader.grading.models import AnswerChange
from grader.grading.services import StaleAnswer
from grader.rubrics.models import AnswerFeedback, DimensionScore, RubricChange
from grader.rubrics.services import (
    RubricRefused,
    comment_add,
    comment_delete,
    comment_edit,
    exam_rollback,
    rubric_answer_save,
)

D = Decimal


def save(answer, teacher, points, *, comments=(), text=""):
    answer.refresh_from_db()
    return rubric_answer_save(answer_id=answer.pk, points=points, comment_numbers=comments, text=text,
                              expected_version=answer.version, user=teacher)


def history_back(minutes: int) -> None:
    """Move every recorded change ``minutes`` into the past (totals and rubric changes alike)."""
    for model in (AnswerChange, RubricChange):
        for change in model.objects.all():
            model.objects.filter(pk=change.pk).update(at=change.at - timedelta(minutes=minutes))


def dimensions(answer) -> list[Decimal]:
    return [score.points for score in DimensionScore.objects.filter(answer=answer)]


def feedback(answer) -> str:
    found = AnswerFeedback.objects.filter(answer=answer).first()
    return found.full_text if found else ""


def assert_totals_add_up(answers) -> None:
    for answer in answers:
        answer.refresh_from_db()
        points = dimensions(answer)
        assert answer.score == (sum(points, D(0)) if points else None)


def test_every_rubric_save_records_the_dimensions_and_feedback_before_and_after_at_the_totals_time(
        essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    save(essay_answers[0], teacher, [D("3"), D("2.5"), D("2")], comments=[1], text="Well argued.")

    change = RubricChange.objects.get()
    assert change.old == {"points": {}, "comments": [], "text": ""}
    assert change.new == {"points": {"Content": "3", "Organisation": "2.5", "Language": "2"},
                          "comments": [[1, "Name both causes."]], "text": "Well argued."}
    assert change.at == AnswerChange.objects.get().at and change.by == teacher


def test_saving_what_the_answer_already_has_records_nothing(essay_answers, teacher):
    save(essay_answers[0], teacher, [D("3"), D("2.5"), D("2")], text="Fine.")
    save(essay_answers[0], teacher, [D("3"), D("2.5"), D("2")], text="Fine.")
    assert RubricChange.objects.count() == 1


def test_a_rollback_puts_dimensions_and_feedback_back_with_the_total(exam, essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    first, second = essay_answers[:2]
    save(first, teacher, [D("3"), D("2.5"), D("2")], comments=[1], text="Well argued.")
    history_back(60)
    to = timezone.now() - timedelta(minutes=30)
    save(first, teacher, [D("4"), D("3"), D("3")], text="Perfect.")
    save(second, teacher, [D("1"), D("1"), D("1")], comments=[1])

    undone = exam_rollback(exam_id=exam.pk, to=to, user=teacher)

    assert undone == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.score == D("7.5") and dimensions(first) == [D("3"), D("2.5"), D("2")]
    assert feedback(first) == "Name both causes.\nWell argued."
    assert AnswerFeedback.objects.get(answer=first).comments.get().number == 1  # still linked to the bank
    assert second.score is None and dimensions(second) == [] and feedback(second) == ""
    assert_totals_add_up(essay_answers)


def test_a_new_breakdown_with_the_same_total_and_a_feedback_change_are_rolled_back_too(exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="First words.")
    history_back(60)
    to = timezone.now() - timedelta(minutes=30)
    save(answer, teacher, [D("2.5"), D("3"), D("2")], text="First words.")
    save(answer, teacher, [D("2.5"), D("3"), D("2")], text="Second words.")
    answer.refresh_from_db()
    version = answer.version

    assert exam_rollback(exam_id=exam.pk, to=to, user=teacher) == 2

    answer.refresh_from_db()
    assert dimensions(answer) == [D("3"), D("2.5"), D("2")] and feedback(answer) == "First words."
    assert answer.version > version  # another marker's page is stale now
    assert not AnswerChange.objects.filter(note__startswith="Rollback").exists()  # the total never moved


def test_a_rollback_can_itself_be_rolled_back_dimensions_included(exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="Kept.")
    history_back(10)
    exam_rollback(exam_id=exam.pk, to=timezone.now() - timedelta(minutes=20), user=teacher)
    answer.refresh_from_db()
    assert answer.score is None and dimensions(answer) == []
    history_back(5)  # the rollback is now 5 minutes old, the save 15

    exam_rollback(exam_id=exam.pk, to=timezone.now() - timedelta(minutes=10), user=teacher)

    answer.refresh_from_db()
    assert answer.score == D("7.5") and dimensions(answer) == [D("3"), D("2.5"), D("2")] and feedback(answer) == "Kept."


def test_a_bank_comment_reworded_since_comes_back_in_the_words_the_student_had(exam, essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    comment_add(question_id=essay.pk, text="Check spelling.")
    answer, other = essay_answers[:2]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], comments=[1, 2], text="Good.")
    history_back(60)
    to = timezone.now() - timedelta(minutes=30)
    save(answer, teacher, [D("4"), D("3"), D("3")])
    save(other, teacher, [D("1"), D("1"), D("1")], comments=[1, 2])  # still has the comment when it is reworded
    comment_edit(comment_id=essay.feedback_comments.get(number=1).pk, text="Name both causes, please.")

    exam_rollback(exam_id=exam.pk, to=to, user=teacher)

    restored = AnswerFeedback.objects.get(answer=answer)
    assert restored.full_text == "Name both causes.\nCheck spelling.\nGood."
    assert list(restored.comments.all()) == []  # the words are the answer's own from the reworded comment on
    other.refresh_from_db()
    assert other.score is None and feedback(other) == ""


def test_a_change_made_before_dimensions_were_recorded_refuses_the_rollback_and_changes_nothing(
        exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    history_back(60)
    to = timezone.now() - timedelta(minutes=30)
    save(answer, teacher, [D("4"), D("3"), D("3")])
    RubricChange.objects.filter(at__gt=to).delete()  # as a change from before the history held dimensions

    with pytest.raises(RubricRefused, match="sum of its dimension scores"):
        exam_rollback(exam_id=exam.pk, to=to, user=teacher)

    answer.refresh_from_db()
    assert answer.score == D("10") and dimensions(answer) == [D("4"), D("3"), D("3")]
    assert not AnswerChange.objects.filter(note__startswith="Rollback").exists()


def test_dimensions_changed_outside_their_history_refuse_the_rollback(exam, essay_answers, teacher):
    answer = essay_answers[0]
    to = timezone.now() - timedelta(minutes=1)
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    DimensionScore.objects.filter(answer=answer, dimension__name="Content").update(points=D("2"))

    with pytest.raises(StaleAnswer):
        exam_rollback(exam_id=exam.pk, to=to, user=teacher)
    answer.refresh_from_db()
    assert answer.score == D("7.5")


def test_any_sequence_of_saves_and_rollbacks_keeps_every_total_the_sum_of_its_dimensions(exam, essay_answers, teacher):
    chance = random.Random(15)
    for step in range(12):
        if step % 4 == 3:
            exam_rollback(exam_id=exam.pk, to=timezone.now() - timedelta(minutes=chance.choice((5, 15, 25))),
                          user=teacher)
        else:
            answer = chance.choice(essay_answers)
            points = ([None] * 3 if chance.random() < 0.2 else
                      [D(chance.randrange(0, 2 * top + 1)) / 2 for top in (4, 3, 3)])
            save(answer, teacher, points, text=chance.choice(("", "Good.", "Try again.")))
        assert_totals_add_up(essay_answers)
        history_back(10)


def test_the_rollback_button_puts_a_rubric_answer_back_whole(client_for, exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="Kept.")
    history_back(60)
    save(answer, teacher, [D("4"), D("3"), D("3")], text="Undone.")
    to = timezone.localtime(timezone.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")

    response = client_for(teacher).post(reverse("grading_rollback", args=[exam.pk]), {"to": to}, follow=True)

    assert "1 change undone" in response.content.decode()
    answer.refresh_from_db()
    assert answer.score == D("7.5") and dimensions(answer) == [D("3"), D("2.5"), D("2")] and feedback(answer) == "Kept."


def test_a_comment_taken_out_of_the_bank_leaves_every_feedback_reading_the_same(client_for, exam, essay, essay_answers,
                                                                               teacher):
    for text in ("Name both causes.", "Check spelling.", "Use paragraphs."):
        comment_add(question_id=essay.pk, text=text)
    first, second, third = essay_answers
    save(first, teacher, [D("3"), D("2.5"), D("2")], comments=[1, 2, 3], text="Good.")
    save(second, teacher, [D("1"), D("1"), D("1")], comments=[1, 3])
    save(third, teacher, [D("2"), D("2"), D("2")], comments=[3])
    before = {answer.pk: feedback(answer) for answer in essay_answers}
    first.refresh_from_db()
    version = first.version
    comment = essay.feedback_comments.get(number=2)

    response = client_for(teacher).post(reverse("feedback_comment_delete", args=[exam.pk, comment.pk]), follow=True)

    assert "Comment 2 taken out of the bank; 1 answer that had it keep its words." in response.content.decode()
    assert {answer.pk: feedback(answer) for answer in essay_answers} == before
    assert list(essay.feedback_comments.values_list("number", flat=True)) == [1, 3]  # the keys stay as learnt
    kept = AnswerFeedback.objects.get(answer=first)
    assert [c.number for c in kept.comments.all()] == [1] and kept.text == "Check spelling.\nUse paragraphs.\nGood."
    assert [c.number for c in AnswerFeedback.objects.get(answer=second).comments.all()] == [1, 3]
    first.refresh_from_db()
    assert first.version == version + 1  # another marker's page is stale
    # Editing a comment the answer no longer links changes nothing of it.
    comment_edit(comment_id=essay.feedback_comments.get(number=3).pk, text="Paragraphs, please.")
    assert feedback(first) == before[first.pk] and feedback(third) == "Paragraphs, please."


def test_a_rollback_across_a_comment_taken_out_of_the_bank_restores_its_words(exam, essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], comments=[1], text="Good.")
    history_back(60)
    to = timezone.now() - timedelta(minutes=30)
    save(answer, teacher, [D("4"), D("3"), D("3")], comments=[1], text="Better.")
    comment_delete(comment_id=essay.feedback_comments.get().pk, user=teacher)
    comment_add(question_id=essay.pk, text="A new comment 1.")  # the number is free again

    exam_rollback(exam_id=exam.pk, to=to, user=teacher)

    answer.refresh_from_db()
    assert answer.score == D("7.5") and feedback(answer) == "Name both causes.\nGood."
    assert not AnswerFeedback.objects.get(answer=answer).comments.exists()


def test_another_teacher_cannot_take_a_comment_out_of_the_bank(client_for, exam, essay, other_teacher):
    comment = comment_add(question_id=essay.pk, text="Name both causes.")
    response = client_for(other_teacher).post(reverse("feedback_comment_delete", args=[exam.pk, comment.pk]))
    assert response.status_code == 404 and essay.feedback_comments.count() == 1
