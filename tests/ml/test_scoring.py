"""Suggested scores follow the seed's rule in exact decimal steps; typed-in scores are checked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ml.scoring import ScoreRule, score_suggest, score_valid

# Q5 of the demo key: a 2-mark sentence question scored in half marks.
HALF_MARKS = ScoreRule(max_score=Decimal("2"), min_similarity=0.8, granularity=Decimal("0.5"))
QUARTER_MARKS = ScoreRule(max_score=Decimal("3"), min_similarity=0.9, granularity=Decimal("0.25"))
ONE_MARK = ScoreRule(max_score=Decimal("1"), min_similarity=0.8, granularity=Decimal("1"))


@pytest.mark.parametrize(("similarity", "expected"), [
    (0.0, "0"),
    (0.2, "0"),       # 0.4 / 0.5 = 0.8 steps -> 0
    (0.25, "0.5"),    # 0.5 / 0.5 = 1 step
    (0.7, "1"),       # 1.4 / 0.5 = 2.8 steps -> 2
    (0.74, "1"),      # 1.48 / 0.5 = 2.96 steps -> 2
    (0.75, "1.5"),    # exactly 3 steps
    (0.7999, "1.5"),  # just under the minimum similarity
    (0.8, "2"),       # at the minimum similarity: full marks
    (0.93, "2"),
    (1.0, "2"),
])
def test_half_marks_round_down_to_the_half_and_reach_full_marks_at_the_minimum(similarity, expected):
    assert score_suggest(similarity=similarity, blank=False, rule=HALF_MARKS) == Decimal(expected)


@pytest.mark.parametrize(("similarity", "expected"), [
    (0.3, "0.75"),   # 0.9 / 0.25 = 3.6 steps -> 3
    (0.5, "1.5"),    # exactly 6 steps
    (0.6, "1.75"),   # 1.8 / 0.25 = 7.2 steps -> 7
    (0.89, "2.5"),   # 2.67 / 0.25 = 10.68 steps -> 10
    (0.9, "3"),
])
def test_quarter_mark_suggestions_round_down_to_the_quarter(similarity, expected):
    assert score_suggest(similarity=similarity, blank=False, rule=QUARTER_MARKS) == Decimal(expected)


def test_one_mark_questions_give_all_or_nothing_around_the_minimum():
    assert score_suggest(similarity=0.79, blank=False, rule=ONE_MARK) == 0
    assert score_suggest(similarity=0.8, blank=False, rule=ONE_MARK) == 1


def test_similarities_that_are_not_exact_in_binary_still_reach_their_step():
    # 10 * 0.3 is 2.9999... in binary floating point; the rule must give 3 marks, not 2.
    rule = ScoreRule(max_score=Decimal("10"), min_similarity=0.95, granularity=Decimal("1"))
    assert score_suggest(similarity=0.3, blank=False, rule=rule) == 3


def test_blank_answers_score_zero_even_when_a_similarity_is_given():
    assert score_suggest(similarity=0.95, blank=True, rule=HALF_MARKS) == 0
    lenient = ScoreRule(max_score=Decimal("2"), min_similarity=0.0, granularity=Decimal("0.5"))
    assert score_suggest(similarity=0.0, blank=True, rule=lenient) == 0


def test_a_minimum_similarity_of_zero_gives_every_written_answer_full_marks():
    lenient = ScoreRule(max_score=Decimal("2"), min_similarity=0.0, granularity=Decimal("0.5"))
    assert score_suggest(similarity=0.0, blank=False, rule=lenient) == 2


def test_a_minimum_similarity_of_one_gives_full_marks_only_to_a_perfect_match():
    strict = ScoreRule(max_score=Decimal("2"), min_similarity=1.0, granularity=Decimal("0.5"))
    assert score_suggest(similarity=1.0, blank=False, rule=strict) == 2
    assert score_suggest(similarity=0.99, blank=False, rule=strict) == Decimal("1.5")


def test_an_answer_without_a_similarity_is_suggested_zero():
    assert score_suggest(similarity=None, blank=False, rule=HALF_MARKS) == 0


@pytest.mark.parametrize("similarity", [-0.1, 1.2, float("nan")])
def test_similarities_outside_zero_to_one_are_refused(similarity):
    with pytest.raises(ValueError, match="similarity must be between 0 and 1"):
        score_suggest(similarity=similarity, blank=False, rule=HALF_MARKS)


@pytest.mark.parametrize(("fields", "message"), [
    ({"granularity": Decimal("0")}, "granularity must be a number > 0, got 0"),
    ({"granularity": Decimal("-0.5")}, "granularity must be a number > 0, got -0.5"),
    ({"granularity": Decimal("NaN")}, "granularity must be a number > 0"),
    ({"max_score": Decimal("-1")}, "max score must be a number >= 0, got -1"),
    ({"max_score": Decimal("Infinity")}, "max score must be a number >= 0"),
    ({"min_similarity": 1.5}, "minimum similarity must be between 0 and 1, got 1.5"),
    ({"min_similarity": -0.1}, "minimum similarity must be between 0 and 1, got -0.1"),
    ({"min_similarity": float("nan")}, "minimum similarity must be between 0 and 1"),
    ({"max_score": Decimal("1"), "granularity": Decimal("0.3")},
     "max score 1 is not a multiple of the granularity 0.3"),
])
def test_invalid_rules_are_refused_with_the_field_named(fields, message):
    valid = {"max_score": Decimal("2"), "min_similarity": 0.8, "granularity": Decimal("0.5")}
    with pytest.raises(ValueError, match=message):
        ScoreRule(**{**valid, **fields})


def test_a_zero_mark_question_is_a_valid_rule_that_always_suggests_zero():
    rule = ScoreRule(max_score=Decimal("0"), min_similarity=0.8, granularity=Decimal("1"))
    assert score_suggest(similarity=0.9, blank=False, rule=rule) == 0


@pytest.mark.parametrize("score", ["0", "0.5", "1", "1.50", "2", "2.0"])
def test_scores_on_the_granularity_up_to_the_maximum_are_valid(score):
    assert score_valid(score=Decimal(score), rule=HALF_MARKS) is None


@pytest.mark.parametrize(("score", "rule", "message"), [
    ("2.5", HALF_MARKS, "The score 2.5 is above the maximum of 2."),
    ("3", HALF_MARKS, "The score 3 is above the maximum of 2."),
    ("-0.5", HALF_MARKS, "The score cannot be negative."),
    ("1.3", HALF_MARKS, "The score 1.3 is not a multiple of 0.5."),
    ("0.5", ONE_MARK, "The score 0.5 is not a multiple of 1."),
    ("1.10", QUARTER_MARKS, "The score 1.1 is not a multiple of 0.25."),
    ("NaN", HALF_MARKS, "The score must be a number."),
])
def test_invalid_scores_are_explained_for_the_grading_form(score, rule, message):
    assert score_valid(score=Decimal(score), rule=rule) == message


def test_large_maximums_are_written_plainly_in_messages():
    rule = ScoreRule(max_score=Decimal("100"), min_similarity=0.8, granularity=Decimal("10"))
    assert score_valid(score=Decimal("105"), rule=rule) == "The score 105 is above the maximum of 100."
    assert score_valid(score=Decimal("55"), rule=rule) == "The score 55 is not a multiple of 10."


def test_every_suggestion_is_itself_a_valid_score():
    for rule in (HALF_MARKS, QUARTER_MARKS, ONE_MARK):
        for percent in range(101):
            suggestion = score_suggest(similarity=percent / 100, blank=False, rule=rule)
            assert score_valid(score=suggestion, rule=rule) is None, (rule, percent, suggestion)
