"""Answer groups: exact and semantic grouping, scoring a group once, pulling members out."""

from __future__ import annotations

from decimal import Decimal

import pytest
from model_bakery import baker

from grader.grading import services as grading
from grader.grading.models import AnswerChange
from grader.grading.selectors import answer_groups_for_question
from grader.models import Question


def _texts(groups):
    return [sorted(member.text for member in group.members) for group in groups]


def test_answers_that_read_the_same_after_normalising_are_grouped_largest_first(question, answer_for):
    for number, text in enumerate(["x = 4", "X=4", "42", "x=4.", "4 2", "17"], start=1):
        answer_for(question, number, text)

    groups = answer_groups_for_question(question_id=question.pk)

    assert _texts(groups) == [["X=4", "x = 4", "x=4."], ["4 2", "42"]]  # "17" alone is no group
    assert groups[0].key == "x=4" and groups[0].size == 3
    assert groups[1].key == "42"


def test_blank_answers_are_never_grouped(question, answer_for):
    answer_for(question, 1, "")
    answer_for(question, 2, "")
    answer_for(question, 3, "42")
    answer_for(question, 4, "42")

    groups = answer_groups_for_question(question_id=question.pk)

    assert _texts(groups) == [["42", "42"]]


def test_on_a_semantic_question_paraphrases_and_slips_merge_into_one_group(exam, answer_for):
    question = baker.make(Question, exam=exam, label="Q2", order=2, answer="Light travels faster than sound",
                          max_score=Decimal("2"), granularity=Decimal("1"), strategy="semantic")
    for number, text in enumerate(["Light travels faster than sound.", "light travels faster than sound",
                                   "light travels faster than sond", "Light moves faster than sound",
                                   "plants need sunlight", "Plants need sunlight!"], start=1):
        answer_for(question, number, text)

    groups = answer_groups_for_question(question_id=question.pk)

    assert [group.size for group in groups] == [4, 2]
    assert groups[0].key == "lighttravelsfasterthansound"
    assert groups[0].text == "Light travels faster than sound."  # most common written text, first on ties
    assert _texts(groups)[1] == ["Plants need sunlight!", "plants need sunlight"]


def test_an_exact_question_never_merges_different_texts(question, answer_for):
    for number, text in enumerate(["light travels faster than sound", "light travels faster than sond"], start=1):
        answer_for(question, number, text)

    assert answer_groups_for_question(question_id=question.pk) == []


def test_scoring_a_group_scores_and_records_every_member(question, answer_for, teacher):
    members = [answer_for(question, number, "42") for number in (1, 2, 3)]
    other = answer_for(question, 4, "17")

    result = grading.group_score_set(question_id=question.pk, group_key="42", score=Decimal("2"), user=teacher)

    assert sorted(a.pk for a in result.scored) == [a.pk for a in members]
    for answer in members:
        answer.refresh_from_db()
        assert answer.score == Decimal("2") and answer.version == 1 and answer.scored_by == teacher
    other.refresh_from_db()
    assert other.score is None
    assert AnswerChange.objects.filter(field="score", new_value="2").count() == 3


def test_group_scoring_skips_members_changed_since_the_teacher_saw_the_group(question, answer_for, teacher, other_teacher):
    first, second, third = (answer_for(question, number, "42") for number in (1, 2, 3))
    seen = {answer.pk: answer.version for answer in (first, second)}  # the third joined later
    grading.score_set(answer_id=second.pk, score=Decimal("0.5"), expected_version=0, user=other_teacher)

    result = grading.group_score_set(question_id=question.pk, group_key="42", score=Decimal("2"), user=teacher,
                                     expected_versions=seen)

    assert [a.pk for a in result.scored] == [first.pk]
    assert sorted(a.pk for a in result.skipped) == [second.pk, third.pk]
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.score == Decimal("0.5") and third.score is None


def test_an_invalid_group_score_is_refused_for_every_member(question, answer_for, teacher):
    answers = [answer_for(question, number, "42") for number in (1, 2)]

    with pytest.raises(grading.ScoreRefused, match="above the maximum"):
        grading.group_score_set(question_id=question.pk, group_key="42", score=Decimal("3"), user=teacher)

    assert all(answer.score is None for answer in answers) and not AnswerChange.objects.exists()


def test_a_group_that_no_longer_exists_is_refused(question, answer_for, teacher):
    answer_for(question, 1, "42")

    with pytest.raises(grading.ScoreRefused, match="no longer exists"):
        grading.group_score_set(question_id=question.pk, group_key="42", score=Decimal("1"), user=teacher)


def test_a_detached_member_leaves_the_group_and_is_not_scored_with_it(question, answer_for, teacher):
    first, second, third = (answer_for(question, number, "42") for number in (1, 2, 3))

    grading.group_member_detach(answer_id=second.pk, user=teacher)
    groups = answer_groups_for_question(question_id=question.pk)
    grading.group_score_set(question_id=question.pk, group_key="42", score=Decimal("2"), user=teacher)

    assert [[a.pk for a in group.members] for group in groups] == [[first.pk, third.pk]]
    second.refresh_from_db()
    assert second.score is None

    grading.group_member_attach(answer_id=second.pk, user=teacher)
    assert answer_groups_for_question(question_id=question.pk)[0].size == 3


def test_a_group_whose_members_share_a_score_shows_it(question, answer_for, teacher):
    for number in (1, 2):
        answer_for(question, number, "42")
    grading.group_score_set(question_id=question.pk, group_key="42", score=Decimal("1.5"), user=teacher)

    assert answer_groups_for_question(question_id=question.pk)[0].score == Decimal("1.5")
