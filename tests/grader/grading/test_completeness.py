"""Completeness items, waivers, finishing an exam and per-question progress."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from model_bakery import baker

from grader.grading import services as grading
from grader.grading.models import CompletenessWaiver, ExamStatus
from grader.grading.selectors import exam_completeness, question_progress
from grader.models import Question, Script, Student
from grader.reading.models import ScriptIdentity

Kind = CompletenessWaiver.Kind


@pytest.fixture
def roster(exam):
    return [baker.make(Student, exam=exam, student_id=f"S{n}", name=f"Student {n}") for n in (1, 2, 3)]


@pytest.fixture
def graded_exam(exam, question, roster, answer_for, scripts):
    """Three scripts of students 1-2 and one without a student; every answer settled but one."""
    Script.objects.filter(pk__in=[s.pk for s in scripts[3:]]).delete()
    Script.objects.filter(pk=scripts[0].pk).update(student=roster[0])
    Script.objects.filter(pk=scripts[1].pk).update(student=roster[1])
    answer_for(question, 1, "42", suggested_score=Decimal("2"))
    answer_for(question, 2, "41", suggested_score=Decimal("0"), flagged=True, flag_reason="Low confidence.")
    answer_for(question, 3, "", read_error="The script has no page 2.")
    return exam


def _kinds(completeness):
    return [(item.kind, item.object_id) for item in completeness.items]


def test_completeness_lists_unscored_unreviewed_flagged_no_student_and_absent(graded_exam, roster, scripts):
    completeness = exam_completeness(exam_id=graded_exam.pk)

    unscored, flagged = (scripts[2].answers.get(), scripts[1].answers.get())
    assert _kinds(completeness) == [
        (Kind.UNSCORED, unscored.pk),
        (Kind.FLAGGED, flagged.pk),
        (Kind.NO_STUDENT, scripts[2].pk),
        (Kind.ABSENT, roster[2].pk),
    ]
    assert completeness.items[1].label == "Script 2 Q1 is flagged: Low confidence."
    assert completeness.items[0].answer_id == unscored.pk and completeness.items[0].question_id is not None
    assert not completeness.complete


def test_settling_items_removes_them_from_the_list(graded_exam, roster, scripts, teacher):
    flagged, unscored = scripts[1].answers.get(), scripts[2].answers.get()
    grading.text_confirm(answer_id=flagged.pk, text="41", expected_version=0, user=teacher)  # reviewed
    grading.score_set(answer_id=unscored.pk, score=Decimal("0"), expected_version=0, user=teacher)
    ScriptIdentity.objects.create(script=scripts[2], confirmed_at=timezone.now(), confirmed_by=teacher)  # not on roster

    assert _kinds(exam_completeness(exam_id=graded_exam.pk)) == [(Kind.ABSENT, roster[2].pk)]


def test_students_claimed_by_two_scripts_are_duplicates(exam, roster, scripts):
    for script in scripts[:2]:
        baker.make(ScriptIdentity, script=script, candidates=[{"student": "S1", "score": 0.7}])
    Script.objects.filter(pk__in=[scripts[2].pk, scripts[3].pk]).update(student=roster[1])

    duplicates = [item for item in exam_completeness(exam_id=exam.pk).items if item.kind == Kind.DUPLICATE]

    assert [(item.student_id, item.label) for item in duplicates] == [
        (roster[0].pk, "Student 1 (S1) is claimed by scripts 1, 2"),
        (roster[1].pk, "Student 2 (S2) is claimed by scripts 3, 4"),
    ]


def test_the_exam_cannot_be_finished_while_items_are_open(graded_exam, teacher):
    with pytest.raises(grading.CompletenessRefused) as refused:
        grading.exam_finish(exam_id=graded_exam.pk, user=teacher)

    assert len(refused.value.items) == 4
    assert not ExamStatus.objects.filter(exam=graded_exam, finished_at__isnull=False).exists()


def test_the_exam_is_finished_once_every_item_is_waived(graded_exam, teacher):
    for item in exam_completeness(exam_id=graded_exam.pk).items:
        grading.completeness_waive(exam_id=graded_exam.pk, kind=item.kind, object_id=item.object_id, user=teacher,
                                   reason="Checked on paper")

    completeness = exam_completeness(exam_id=graded_exam.pk)
    status = grading.exam_finish(exam_id=graded_exam.pk, user=teacher)

    assert completeness.complete and len(completeness.items) == 4
    assert all(item.waiver.by == teacher for item in completeness.items)
    assert status.finished and status.finished_by == teacher


def test_a_waiver_needs_a_reason_and_an_item_on_the_list(graded_exam, roster, teacher):
    with pytest.raises(grading.CompletenessRefused, match="Say why"):
        grading.completeness_waive(exam_id=graded_exam.pk, kind=Kind.ABSENT, object_id=roster[2].pk, user=teacher,
                                   reason="  ")
    with pytest.raises(grading.CompletenessRefused, match="not on this exam"):
        grading.completeness_waive(exam_id=graded_exam.pk, kind=Kind.ABSENT, object_id=roster[0].pk, user=teacher,
                                   reason="Was ill")
    assert not CompletenessWaiver.objects.exists()


def test_an_exam_with_nothing_open_is_finished_straight_away(exam, teacher):
    status = grading.exam_finish(exam_id=exam.pk, user=teacher)

    assert status.finished and grading.exam_finish(exam_id=exam.pk, user=teacher).finished_at == status.finished_at


def test_question_progress_counts_scored_suggested_flagged_and_averages_the_effective_score(graded_exam, question,
                                                                                          scripts, teacher):
    baker.make(Question, exam=graded_exam, label="Q2", order=2)
    grading.score_set(answer_id=scripts[0].answers.get().pk, score=Decimal("1.5"), expected_version=0, user=teacher)

    q1, q2 = question_progress(exam_id=graded_exam.pk)

    assert (q1.question, q1.total, q1.scored, q1.suggested, q1.unscored, q1.flagged) == (question, 3, 1, 1, 1, 1)
    assert q1.average == Decimal("0.75")  # (1.5 teacher + 0 suggested) / 2
    assert (q2.total, q2.average) == (0, None)
