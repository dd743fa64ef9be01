"""A backup holds the exam's rubrics, dimension scores, comment bank and feedback; a restore gives the
restoring teacher their own copy of each rubric."""

from __future__ import annotations

import io
from decimal import Decimal

from grader.outputs.backup import exam_backup_write, exam_restore
from grader.rubrics.models import AnswerFeedback, DimensionScore, Rubric
from grader.rubrics.services import comment_add, rubric_answer_save


def _restored(exam, owner):
    archive = io.BytesIO()
    exam_backup_write(exam=exam, out=archive)
    archive.seek(0)
    return exam_restore(archive=archive, owner=owner)


def test_rubric_scores_and_feedback_survive_a_backup_and_restore(exam, essay, essay_answers, teacher, other_teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    first = essay_answers[0]
    rubric_answer_save(answer_id=first.pk, points=[Decimal("3"), Decimal("2.5"), Decimal("2")], comment_numbers=[1],
                       text="Clear paragraphs.", expected_version=first.version, user=teacher)
    restored = _restored(exam, other_teacher)
    question = restored.questions.get(label="Q5")
    rubric = question.rubric_link.rubric
    assert rubric.owner == other_teacher and rubric.name == "Explain" and question.rubric_link.task == essay.rubric_link.task
    assert [(d.name, d.max_points) for d in rubric.dimensions.all()] == [
        ("Content", Decimal("4")), ("Organisation", Decimal("3")), ("Language", Decimal("3"))]
    answer = question.answers.get(script__number=1)
    assert answer.score == Decimal("7.5")
    assert [s.points for s in DimensionScore.objects.filter(answer=answer)] == [Decimal("3"), Decimal("2.5"), Decimal("2")]
    assert all(s.dimension.rubric == rubric for s in DimensionScore.objects.filter(answer=answer))
    assert AnswerFeedback.objects.get(answer=answer).full_text == "Name both causes.\nClear paragraphs."


def test_its_own_teacher_restoring_links_to_the_same_rubric(exam, essay, teacher):
    restored = _restored(exam, teacher)
    assert restored.questions.get(label="Q5").rubric_link.rubric_id == essay.rubric_link.rubric_id
    assert Rubric.objects.filter(owner=teacher).count() == 1


def test_a_teacher_with_another_rubric_of_that_name_gets_a_copy_named_apart(exam, essay, other_teacher):
    from grader.rubrics.services import DimensionSpec, rubric_save

    rubric_save(owner=other_teacher, name="Explain", dimensions=[DimensionSpec(name="Ideas", max_points=Decimal("5"))])
    copy = _restored(exam, other_teacher).questions.get(label="Q5").rubric_link.rubric
    assert copy.name == "Explain (restored)" and copy.owner == other_teacher
    assert [d.name for d in copy.dimensions.all()] == ["Content", "Organisation", "Language"]
