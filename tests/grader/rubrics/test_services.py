from __future__ import annotations

from decimal import Decimal

import pytest

from grader.grading.models import AnswerChange
from grader.grading.services import StaleAnswer
from grader.rubrics.models import AnswerFeedback, DimensionScore, FeedbackComment
from grader.rubrics.services import (
    DimensionSpec,
    RubricRefused,
    comment_add,
    comment_edit,
    question_rubric_set,
    rubric_answer_save,
    rubric_save,
)

from .conftest import DIMENSIONS

D = Decimal


def save(answer, teacher, points, *, comments=(), text="", save_as_comment=False):
    answer.refresh_from_db()
    return rubric_answer_save(answer_id=answer.pk, points=points, comment_numbers=comments, text=text,
                              save_as_comment=save_as_comment, expected_version=answer.version, user=teacher)


def test_attaching_a_rubric_makes_its_total_the_questions_maximum(essay, rubric):
    assert essay.max_score == D("10") and essay.rubric_link.rubric == rubric
    assert essay.rubric_link.task == "Explain why we have seasons."
    assert rubric.dimensions.get(name="Content").levels[0] == {"points": "4", "label": "exceptional",
                                                               "description": "every cause, each explained"}


def test_dimension_scores_add_up_to_the_answers_score_with_one_recorded_change(essay_answers, teacher):
    answer = save(essay_answers[0], teacher, [D("3"), D("2.5"), D("2")])
    assert answer.score == D("7.5")
    assert [s.points for s in DimensionScore.objects.filter(answer=answer)] == [D("3"), D("2.5"), D("2")]
    change = AnswerChange.objects.get(answer=answer)
    assert (change.new_value, change.note) == ("7.5", "Content 3 + Organisation 2.5 + Language 2")


def test_a_dimension_above_its_maximum_or_off_the_steps_is_refused_and_nothing_is_saved(essay_answers, teacher):
    with pytest.raises(RubricRefused, match="Content: The score 5 is above the maximum of 4"):
        save(essay_answers[0], teacher, [D("5"), D("0"), D("0")])
    with pytest.raises(RubricRefused, match="Language: The score 0.3 is not a multiple of 0.5"):
        save(essay_answers[0], teacher, [D("1"), D("1"), D("0.3")])
    with pytest.raises(RubricRefused, match="missing: Organisation"):
        save(essay_answers[0], teacher, [D("1"), None, D("1")])
    essay_answers[0].refresh_from_db()
    assert essay_answers[0].score is None and not DimensionScore.objects.exists()


def test_clearing_every_dimension_clears_the_score(essay_answers, teacher):
    save(essay_answers[0], teacher, [D("1"), D("1"), D("1")])
    answer = save(essay_answers[0], teacher, [None, None, None])
    assert answer.score is None and not DimensionScore.objects.filter(answer=answer).exists()


def test_a_new_breakdown_with_the_same_total_still_bumps_the_version(essay_answers, teacher):
    first = save(essay_answers[0], teacher, [D("3"), D("2"), D("1")])
    second = save(essay_answers[0], teacher, [D("1"), D("2"), D("3")])
    assert second.version == first.version + 1 and second.score == D("6")
    with pytest.raises(StaleAnswer):
        rubric_answer_save(answer_id=first.pk, points=[D("1")] * 3, comment_numbers=[], text="",
                           expected_version=first.version, user=teacher)


def test_feedback_joins_bank_comments_and_the_teachers_words(essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    comment_add(question_id=essay.pk, text="Good paragraphing.")
    save(essay_answers[0], teacher, [D("2"), D("3"), D("2")], comments=[2, 1], text="Well done, Ada.")
    feedback = AnswerFeedback.objects.get(answer=essay_answers[0])
    assert feedback.full_text == "Name both causes.\nGood paragraphing.\nWell done, Ada."


def test_a_comment_saved_from_the_feedback_box_joins_the_bank_and_is_edited_for_everyone(essay, essay_answers, teacher):
    save(essay_answers[0], teacher, [D("1")] * 3, text="Explain the tilt.", save_as_comment=True)
    comment = FeedbackComment.objects.get(question=essay)
    assert (comment.number, comment.text) == (1, "Explain the tilt.")
    save(essay_answers[1], teacher, [D("2")] * 3, comments=[1])
    comment_edit(comment_id=comment.pk, text="Explain how the tilt changes the sunlight.")
    texts = [AnswerFeedback.objects.get(answer=a).full_text for a in essay_answers[:2]]
    assert texts == ["Explain how the tilt changes the sunlight."] * 2


def test_an_unknown_comment_number_is_refused(essay_answers, teacher):
    with pytest.raises(RubricRefused, match="no comment 7"):
        save(essay_answers[0], teacher, [D("1")] * 3, comments=[7])
    essay_answers[0].refresh_from_db()
    assert essay_answers[0].score is None


def test_a_finished_exam_refuses_rubric_scores(exam, essay_answers, teacher):
    from django.utils import timezone

    from grader.grading.models import ExamStatus
    from grader.grading.services import ExamFinishedRefused

    ExamStatus.objects.create(exam=exam, finished_at=timezone.now(), finished_by=teacher)
    with pytest.raises(ExamFinishedRefused):
        save(essay_answers[0], teacher, [D("2")] * 3)


def test_a_used_rubrics_dimensions_keep_their_shape_but_levels_may_change(rubric, essay_answers, teacher):
    save(essay_answers[0], teacher, [D("1")] * 3)
    with pytest.raises(RubricRefused, match="cannot change"):
        rubric_save(owner=teacher, name="Explain", rubric_id=rubric.pk,
                    dimensions=[*DIMENSIONS[:2], DimensionSpec(name="Language", max_points=D("5"))])
    rubric_save(owner=teacher, name="Explain", rubric_id=rubric.pk,
                dimensions=[DimensionSpec(name="Content", max_points=D("4")), *DIMENSIONS[1:]])
    assert rubric.dimensions.get(name="Content").levels == []


def test_a_rubric_is_reused_on_another_exams_question(rubric, teacher, department):
    from model_bakery import baker

    from grader.models import Exam, Question

    other = baker.make(Question, exam=baker.make(Exam, owner=teacher, department=department), label="E1")
    question = question_rubric_set(question_id=other.pk, rubric_id=rubric.pk, user=teacher)
    assert question.max_score == D("10") and rubric.question_links.count() == 1


def test_a_rubric_needs_named_distinct_dimensions(teacher):
    with pytest.raises(RubricRefused, match="distinct"):
        rubric_save(owner=teacher, name="Bad", dimensions=[DIMENSIONS[0], DIMENSIONS[0]])
    with pytest.raises(RubricRefused, match="needs a name"):
        rubric_save(owner=teacher, name=" ", dimensions=DIMENSIONS)


def test_the_marking_scheme_cannot_change_under_teacher_scores(essay, essay_answers, teacher):
    save(essay_answers[0], teacher, [D("1")] * 3)
    with pytest.raises(RubricRefused, match="already has teacher scores"):
        question_rubric_set(question_id=essay.pk, rubric_id=None, user=teacher)
