"""How well candidate texts explain CTC frames (ml.recognition.fit), on synthetic frames.

The frames are built here, no recogniser needed: each character is two frames of probability 0.9,
blank frames around them, the rest of the mass spread over the other classes; a smudged character
splits its frames between two letters, as a misreading does. What is tested holds for any CTC model.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from ml.recognition.fit import LOG_FLOOR, Frames, candidates_fit, frames_fit, text_variants

CHARSET = "abcdefghijklmnopqrstuvwxyzN0123456789 ./"


def _row(peaks: dict[int, float]) -> np.ndarray:
    """One frame's log-probabilities: ``peaks`` (column -> probability), the rest spread evenly."""
    classes = len(CHARSET) + 1
    probs = np.zeros(classes)
    others = [column for column in range(classes) if column not in peaks]
    probs[others] = (1 - sum(peaks.values())) / len(others)
    for column, p in peaks.items():
        probs[column] = p
    return np.log(probs)


def ink(text: str, *, smudge: tuple[int, dict[str, float]] | None = None) -> Frames:
    """Frames that read ``text``; ``smudge`` = (position, {character: probability}) blurs one character."""
    rows = [_row({0: 0.9})]
    for position, char in enumerate(text):
        peaks = {CHARSET.index(char) + 1: 0.9}
        if smudge is not None and smudge[0] == position:
            peaks = {CHARSET.index(c) + 1: p for c, p in smudge[1].items()}
        rows += [_row(peaks), _row(peaks), _row({0: 0.9})]
    return Frames(np.array(rows, dtype=np.float32), CHARSET)


def fit(frames: Frames, text: str):
    return candidates_fit(frames=frames, candidates=[text])[0]


def test_the_written_text_is_the_likeliest_candidate_with_a_gap_near_zero():
    fits = candidates_fit(frames=ink("water"), candidates=["salt", "water", "waiter", "wafer"])
    assert max(fits, key=lambda f: f.log_likelihood).text == "water"
    assert abs(fits[1].gap) < 0.1


def test_an_unrelated_word_has_a_large_gap():
    assert fit(ink("Na"), "salt").gap > 3


def test_a_candidate_with_no_known_character_gets_minus_infinity_and_an_infinite_gap():
    for text in ["@#", "", "   "]:
        result = fit(ink("Na"), text)
        assert result.log_likelihood == -np.inf
        assert result.gap == np.inf


def test_fits_come_back_in_the_order_of_the_candidates():
    texts = ["salt", "Na", "water"]
    assert [f.text for f in candidates_fit(frames=ink("Na"), candidates=texts)] == texts


def test_case_and_space_variants_fit_as_well_as_the_text_as_written():
    frames = ink("Na")
    written = fit(frames, "Na")
    for variant in ["NA", "na", "N a"]:
        assert fit(frames, variant).log_likelihood == pytest.approx(written.log_likelihood, abs=1e-5)


def test_a_misread_character_costs_a_small_gap():
    smudged = ink("Nz", smudge=(1, {"z": 0.5, "a": 0.4}))
    reading, meant = candidates_fit(frames=smudged, candidates=["Nz", "Na"])
    assert reading.log_likelihood > meant.log_likelihood
    assert 0 < meant.gap < 1


def test_the_gap_is_per_character_of_the_candidate():
    frames = ink("Na")
    result = fit(frames, "salt")
    assert result.gap == pytest.approx((frames.best_path - result.log_likelihood) / 4)


def test_best_path_is_the_sum_of_each_frames_likeliest_class():
    frames = ink("ab")
    assert frames.best_path == pytest.approx(float(frames.log_probs.max(axis=1).sum()))
    assert Frames(np.zeros((0, len(CHARSET) + 1), np.float32), CHARSET).best_path == 0.0


def test_frames_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError):
        Frames(np.zeros((4, 3), np.float32), CHARSET)


def test_text_variants_cover_capitals_small_letters_capitalised_words_and_no_spaces():
    variants = text_variants("sodium  chloride")
    for form in ["sodium chloride", "SODIUM CHLORIDE", "Sodium Chloride", "sodiumchloride", "SodiumChloride"]:
        assert form in variants
    assert len(variants) == len(set(variants))


def test_text_variants_drop_accents():
    assert "cafe" in text_variants("café")


def test_frames_survive_a_round_trip_through_bytes():
    frames = ink("Na 0.5")
    back = Frames.from_bytes(frames.to_bytes())
    assert back.charset == frames.charset
    assert back.log_probs.shape == frames.log_probs.shape
    np.testing.assert_allclose(back.log_probs, frames.log_probs, rtol=1e-3, atol=1e-3)


def test_stored_frames_are_clamped_at_the_log_floor():
    log_probs = ink("ab").log_probs.copy()
    log_probs[1, 5] = -40.0
    back = Frames.from_bytes(Frames(log_probs, CHARSET).to_bytes())
    assert back.log_probs[1, 5] == LOG_FLOOR
    assert back.log_probs.min() >= LOG_FLOOR


@pytest.mark.parametrize("data", [b"", b"garbage", b"MDF", b"NPY1" + ink("a").to_bytes()[4:]],
                         ids=["empty", "garbage", "short", "wrong-magic"])
def test_from_bytes_refuses_what_to_bytes_did_not_write(data):
    with pytest.raises(ValueError):
        Frames.from_bytes(data)


@pytest.mark.parametrize("payload", [b"not zlib data", zlib.compress(b"")], ids=["not-zlib", "empty-array"])
def test_from_bytes_refuses_a_corrupt_record_with_the_right_header(payload):
    charset = CHARSET.encode()
    with pytest.raises(ValueError):
        Frames.from_bytes(b"MDF1" + len(charset).to_bytes(4, "little") + charset + payload)


def test_two_lines_concatenated_fit_the_answer_with_and_without_the_space():
    frames = Frames.concatenate([ink("ab"), ink("cd")])
    assert len(frames.log_probs) == len(ink("ab").log_probs) + len(ink("cd").log_probs)
    for text in ["ab cd", "abcd"]:
        assert abs(fit(frames, text).gap) < 0.1
    assert fit(frames, "ab").gap > 3


def test_concatenate_refuses_nothing_and_mixed_charsets():
    with pytest.raises(ValueError):
        Frames.concatenate([])
    other = Frames(np.zeros((2, 4), np.float32), "abc")
    with pytest.raises(ValueError):
        Frames.concatenate([ink("ab"), other])


def test_frames_fit_on_several_answers_matches_candidates_fit_one_by_one():
    answers = [ink("Na"), ink("water"), ink("Nz", smudge=(1, {"z": 0.5, "a": 0.4}))]
    candidates = [["Na", "salt"], ["water", "wafer", "Na", "@"], ["Na"]]
    batched = frames_fit(frames=answers, candidates=candidates)
    for frames, texts, together in zip(answers, candidates, batched, strict=True):
        alone = candidates_fit(frames=frames, candidates=texts)
        assert [f.text for f in together] == texts
        assert [f.log_likelihood for f in together] == pytest.approx([f.log_likelihood for f in alone], abs=1e-4)
        assert [f.gap for f in together] == pytest.approx([f.gap for f in alone], abs=1e-4)


def test_spaces_as_gaps_lets_60_fit_ink_read_as_6_0():
    frames = ink("6 0")
    before, after = fit(frames, "60").gap, fit(frames.spaces_as_gaps(), "60").gap
    assert after < 0.5 < before


def test_spaces_as_gaps_keeps_rows_probabilities_and_ignores_charsets_without_a_space():
    gapped = ink("6 0").spaces_as_gaps()
    space = CHARSET.index(" ") + 1
    assert np.all(gapped.log_probs[:, space] == LOG_FLOOR)
    np.testing.assert_allclose(np.exp(gapped.log_probs).sum(axis=1), 1, atol=1e-5)
    no_space = Frames(np.log(np.full((2, 3), 1 / 3, np.float32)), "ab")
    assert no_space.spaces_as_gaps() is no_space


def _smudged(pairs: list[dict[str, float]]) -> Frames:
    """Frames of one character per entry of ``pairs`` (character -> probability), blanks around them."""
    rows = [_row({0: 0.9})]
    for peaks in pairs:
        peak = _row({CHARSET.index(c) + 1: p for c, p in peaks.items()})
        rows += [peak, peak, _row({0: 0.9})]
    return Frames(np.array(rows, dtype=np.float32), CHARSET)


def test_frames_restricted_to_a_smaller_character_set_read_within_it():
    # Free, the ink says "lo"; in a box of digits, the same ink says "10".
    frames = _smudged([{"l": 0.85, "1": 0.1}, {"o": 0.85, "0": 0.1}])

    digits = frames.restricted("0123456789")

    probabilities = np.exp(digits.log_probs)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(len(probabilities)), abs=1e-4)
    assert candidates_fit(frames=digits, candidates=["10"])[0].gap < 0.1 < 1.0 < \
        candidates_fit(frames=frames, candidates=["10"])[0].gap
    assert candidates_fit(frames=digits, candidates=["lo"])[0].gap > 10


def test_restricting_twice_is_restricting_once_to_the_smaller_set():
    frames = _smudged([{"a": 0.9}, {"l": 0.5, "1": 0.4}])

    twice = frames.restricted("a1l0").restricted("a1")

    assert twice.log_probs == pytest.approx(frames.restricted("a1").log_probs, abs=1e-4)
