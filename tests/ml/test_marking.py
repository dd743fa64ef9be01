"""Suggested scores and their reasons (ml.marking), with synthetic CTC frames for the ink.

The evidence order under test: blank, the teacher's score for the same text, a known answer the ink
fits, the rule at or above its minimum, a fuzzy neighbour for words, and otherwise 0, never part marks.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from ml.marking import (
    FIT_MAX_GAP,
    Marked,
    Written,
    answer_kind,
    answers_touched,
    decimal_point_lost,
    number_forms,
    question_suggest,
    share_score,
    words_transcribe,
)
from ml.recognition.fit import Frames, candidates_fit, word_spans
from ml.scoring import ScoreRule
from tests.ml.test_fit import CHARSET, ink

RULE = ScoreRule(max_score=Decimal(2), min_similarity=0.8, granularity=Decimal("0.5"))
SMUDGED_NA = ink("Nz", smudge=(1, {"z": 0.5, "a": 0.4}))  # reads "Nz", written "Na"


def suggest(answers, key=(), marked=(), rule=RULE):
    return question_suggest(answers=list(answers), key=list(key), marked=list(marked), rule=rule)


def read(text, *, ref=None, frames=None):
    return Written(text=text, blank=False, frames=frames, ref=ref)


def test_a_blank_answer_is_suggested_zero_with_reason_blank():
    (result,) = suggest([Written(text=None, blank=True)], key=["water"])
    assert (result.score, result.reason, result.similarity) == (Decimal(0), "blank", 0.0)


def test_an_answer_with_the_text_of_a_teacher_scored_one_gets_that_score():
    marked = [Marked("salty water", Decimal("1.5"), "script 12", ref=12)]
    (result,) = suggest([read("Salty  water!", ref=3)], key=["water"], marked=marked)
    assert (result.score, result.reason) == (Decimal("1.5"), "as script 12")


def test_the_most_frequent_teacher_score_for_a_text_wins():
    marked = [Marked("wet", Decimal(1), "script 1", ref=1), Marked("wet", Decimal(0), "script 2", ref=2),
              Marked("wet", Decimal(1), "script 3", ref=3)]
    (result,) = suggest([read("wet", ref=9)], key=["water"], marked=marked)
    assert (result.score, result.reason) == (Decimal(1), "as script 3")


def test_a_teacher_score_is_never_evidence_for_the_same_answer():
    marked = [Marked("sodium", Decimal(2), "script 1", ref=1)]
    own, other = suggest([read("sodium", ref=1), read("sodium", ref=2)], key=["salt"], marked=marked)
    assert own.reason.startswith("rule: similarity") and own.score == Decimal(0)
    assert (other.score, other.reason) == (Decimal(2), "as script 1")


def test_smudged_ink_read_as_nz_fits_the_key_na_and_gets_full_marks():
    assert candidates_fit(frames=SMUDGED_NA, candidates=["Na"])[0].gap <= FIT_MAX_GAP["word"]
    (result,) = suggest([read("Nz", frames=SMUDGED_NA)], key=["Na"])
    assert (result.score, result.reason, result.fit_text, result.text) == (Decimal(2), "fits key: Na", "Na", "Na")


def test_ink_that_fits_a_teacher_scored_text_gets_its_score():
    frames = ink("osmasis", smudge=(3, {"a": 0.5, "o": 0.4}))
    marked = [Marked("osmosis", Decimal("1.5"), "script 3", ref=3)]
    (result,) = suggest([read("osmasis", ref=4, frames=frames)], marked=marked)
    assert (result.score, result.reason, result.fit_text) == (Decimal("1.5"), "fits script 3: osmosis", "osmosis")


def test_an_answers_own_teacher_score_is_not_a_fit_for_its_ink():
    marked = [Marked("Nz", Decimal(0), "script 5", ref=5)]
    (result,) = suggest([read("Nx", ref=5, frames=SMUDGED_NA)], key=["Na"], marked=marked)
    assert result.reason == "fits key: Na"


def test_a_clearly_different_word_does_not_fit_and_falls_to_the_rule():
    (result,) = suggest([read("salt", frames=ink("salt"))], key=["Na"])
    assert (result.score, result.reason, result.fit_text) == (Decimal(0), "rule: similarity 0.00", "")


@pytest.mark.parametrize("text", ["Water and salt", "wet", "ice water mix"])
def test_a_similarity_below_the_minimum_gives_zero_never_part_marks(text):
    (result,) = suggest([read(text)], key=["water"])
    assert result.similarity < RULE.min_similarity
    assert result.score == Decimal(0)
    assert result.reason.startswith("rule: similarity")


@pytest.mark.parametrize("text", ["water", "watter", "wader"])
def test_a_similarity_at_or_above_the_minimum_gives_full_marks(text):
    (result,) = suggest([read(text)], key=["water"])
    assert result.similarity >= RULE.min_similarity
    assert result.score == RULE.max_score
    assert result.reason == f"rule: similarity {result.similarity:.2f}"


def test_a_word_like_a_teacher_scored_one_gets_its_score_when_the_rule_fails():
    marked = [Marked("photosynthesis", Decimal(1), "script 7", ref=7)]
    (result,) = suggest([read("photosynthesys", ref=8)], key=["respiration"], marked=marked)
    assert (result.score, result.reason) == (Decimal(1), "like script 7")


def test_numeric_questions_never_use_the_fuzzy_neighbour():
    marked = [Marked("1234567", Decimal(1), "script 1", ref=1)]
    (result,) = suggest([read("1234568", ref=2)], key=["205"], marked=marked)
    assert (result.score, result.reason) == (Decimal(0), "rule: similarity 0.00")


def test_numbers_scored_by_the_teacher_without_a_key_never_use_the_fuzzy_neighbour():
    marked = [Marked("1234567", Decimal(2), "script 1", ref=1)]
    (result,) = suggest([read("1234568", ref=2)], marked=marked)
    assert result.score is None


def test_a_number_read_with_a_space_fits_the_key_without_it():
    (result,) = suggest([read("6 0", frames=ink("6 0"))], key=["60"])
    assert (result.score, result.reason) == (Decimal(2), "fits key: 60")


def test_ink_reading_point_75_fits_the_key_0_75():
    (result,) = suggest([read(".75", frames=ink(".75"))], key=["0.75"])
    assert (result.score, result.reason) == (Decimal(2), "fits key: .75")


class Opinions:
    """A learned scorer that answers from a table (text -> (share, probability)) and records what it is asked."""

    def __init__(self, table):
        self.table, self.asked = table, []

    def __call__(self, texts):
        self.asked.append(list(texts))
        return [self.table[text] for text in texts]


def test_a_learned_scorer_decides_the_answers_no_teacher_score_or_fit_decides():
    learned = Opinions({"sea water": (1.0, 0.93), "wet": (0.5, 0.71), "water": (0.0, 0.6)})
    marked = [Marked("salty", Decimal(1), "script 2", ref=2)]
    answers = [read("sea water", ref=1), read("salty", ref=3), read("wet", ref=4), Written(text=None, blank=True),
               read("water", ref=5)]
    results = question_suggest(answers=answers, key=["water"], marked=marked, rule=RULE, learned=learned)
    assert [(r.score, r.reason) for r in results] == [
        (Decimal(2), "learned from your marks (0.93)"),
        (Decimal(1), "as script 2"),
        (Decimal(1), "learned from your marks (0.71)"),
        (Decimal(0), "blank"),
        (Decimal(0), "learned from your marks (0.60)"),
    ]
    assert learned.asked == [["sea water", "wet", "water"]]  # asked once, never for blank or teacher-decided answers


def test_without_a_learned_scorer_the_rule_decides_as_before():
    (result,) = suggest([read("water")], key=["water"])
    assert result.reason.startswith("rule: similarity")


def test_ink_that_fits_the_key_is_decided_before_a_learned_scorer_is_asked():
    learned = Opinions({})
    (result,) = question_suggest(answers=[read("Nz", frames=SMUDGED_NA)], key=["Na"], marked=[], rule=RULE,
                                 learned=learned)
    assert (result.score, result.reason) == (RULE.max_score, "fits key: Na")
    assert learned.asked == []


@pytest.mark.parametrize(("share", "granularity", "max_score", "score"), [
    (1.0, "0.5", 2, "2"), (0.5, "0.5", 2, "1"), (0.5, "1", 1, "0"), (0.5, "0.5", 1, "0.5"), (0.0, "1", 3, "0"),
    (0.7, "1", 3, "2"), (1.4, "1", 3, "3"), (-0.2, "1", 3, "0"),
])
def test_a_learned_share_is_rounded_down_to_the_granularity_within_the_marks(share, granularity, max_score, score):
    rule = ScoreRule(max_score=Decimal(max_score), min_similarity=0.8, granularity=Decimal(granularity))
    assert share_score(share=share, rule=rule) == Decimal(score)


def test_a_question_with_no_key_and_no_teacher_scores_suggests_nothing_but_keeps_the_text():
    results = suggest([read("water"), Written(text=None, blank=True)])
    assert [(r.score, r.reason, r.text) for r in results] == [(None, "", "water"), (None, "", None)]


def test_no_rule_means_no_suggestion():
    (result,) = suggest([read("water")], key=["water"], rule=None)
    assert (result.score, result.text) == (None, "water")


def test_with_no_key_suggestions_come_from_the_teacher():
    marked = [Marked("osmosis", Decimal(2), "script 1", ref=1)]
    same, near, other = suggest([read("osmosis", ref=2), read("osmosiss", ref=3), read("diffusion", ref=4)],
                                marked=marked)
    assert (same.score, same.reason) == (Decimal(2), "as script 1")
    assert (near.score, near.reason) == (Decimal(2), "like script 1")
    assert (other.score, other.similarity) == (None, None)


@pytest.mark.parametrize(("key", "kind"), [(["3/4", "0.75"], "number"), (["the cell membrane"], "sentence"),
                                           (["Na"], "word"), (["carbon dioxide"], "word"), ([], "word")])
def test_answer_kind_tells_numbers_sentences_and_words_apart(key, kind):
    assert answer_kind(answers=key) == kind


@pytest.mark.parametrize(("text", "forms"), [("0.75", [".75"]), ("x = 4", ["4"]), ("100C", ["100"]),
                                             ("-0.5", ["-.5"]), ("water", []), ("60 or 70", [])])
def test_number_forms_are_the_other_ways_a_number_is_written(text, forms):
    assert number_forms(text) == forms


def test_a_power_of_ten_is_not_cut_to_its_mantissa():
    assert "3" not in number_forms("3 x 10^8")
    (result,) = suggest([read("3", frames=ink("3"))], key=["3 x 10^8"])
    assert result.score == Decimal(0)


@pytest.mark.parametrize(("text", "lost"), [("075", True), ("75", True), ("0.75", False), ("76", False),
                                            ("", False), (None, False), ("water", False)])
def test_decimal_point_lost_flags_the_key_digits_without_its_value(text, lost):
    assert decimal_point_lost(text=text, key=["0.75"]) is lost


def test_decimal_point_lost_ignores_keys_without_a_decimal_point():
    assert decimal_point_lost(text="750", key=["75"]) is False


def touched(text, kind="word"):
    answers = [read("osmosis"), read("Osmosiss"), read("Nz", frames=SMUDGED_NA), read("salt", frames=ink("salt")),
               Written(text=None, blank=True), read("b 0", frames=ink("6 0"))]
    return answers_touched(answers=answers, text=text, kind=kind)


def test_answers_touched_finds_the_same_text_and_its_fuzzy_neighbours():
    assert touched("osmosis") == [0, 1]


def test_answers_touched_finds_ink_that_the_text_fits():
    assert touched("Na") == [2]


def test_answers_touched_fits_numbers_with_spaces_as_gaps_and_no_fuzzy_neighbour():
    assert touched("60", kind="number") == [5]
    assert touched("60", kind="word") == []
    answers = [read("1234567")]
    assert answers_touched(answers=answers, text="1234568", kind="number") == []
    assert answers_touched(answers=answers, text="1234568", kind="word") == [0]


def test_answers_touched_finds_nothing_for_an_empty_text():
    assert touched("") == []
    assert touched(" ! ") == []


# --- single words of longer answers ---------------------------------------------------------------


def test_the_words_of_a_reading_come_with_the_frames_they_were_read_from():
    frames = ink("free to move")

    spans = word_spans(frames)

    assert [word for _, _, word in spans] == ["free", "to", "move"]
    assert all(0 <= start < end <= len(frames.log_probs) for start, end, _ in spans)


def test_a_misread_word_is_exchanged_for_the_class_word_its_ink_prefers():
    # "metals" written with a faint "t": each of its frames says "nothing" a little more than "t", so
    # the reading drops it ("meals"), though the two frames together favour a "t" being there.
    frames = ink("metals are free")
    faint = np.full(frames.log_probs.shape[1], np.log(0.0001), np.float32)
    faint[0], faint[CHARSET.index("t") + 1] = np.log(0.55), np.log(0.44)
    log_probs = frames.log_probs.copy()
    log_probs[7:9] = faint  # the two frames of the "t"
    frames = Frames(log_probs, CHARSET)
    assert " ".join(word for _, _, word in word_spans(frames)) == "meals are free"

    assert words_transcribe(frames=frames, vocabulary=["metals", "free", "electrons"]) == "metals are free"


def test_a_word_the_recogniser_misread_is_exchanged_for_the_key_word_its_ink_nearly_fits():
    # The "a" of "faster" was read "s" (0.6 against 0.35): the reading is "fsster", the recogniser's
    # own favourite, yet "faster" explains the ink within a fraction of a nat per character.
    frames = ink("light is faster", smudge=(10, {"s": 0.6, "a": 0.35}))
    assert " ".join(word for _, _, word in word_spans(frames)) == "light is fsster"

    assert words_transcribe(frames=frames, vocabulary=["light", "faster", "sound"]) == "light is faster"


def test_a_clearly_written_word_is_never_exchanged_for_a_near_spelling():
    frames = ink("sound is slow")

    assert words_transcribe(frames=frames, vocabulary=["round", "slows", "light"]) is None
