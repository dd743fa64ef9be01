"""Statistics of an exam's scores, for the spreadsheet and the sample report. Plain Python.

Scores and totals are marks (floats). A question's scores list holds ``None`` for a script with no
score for it (not read, not scored); those are left out of every figure.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

BANDS = ("Good", "Average", "Weak")


@dataclass(frozen=True)
class Summary:
    """``n`` scripts; ``mean``, ``median``, ``std`` (population), ``low`` and ``high`` in marks."""

    n: int
    mean: float
    median: float
    std: float
    low: float
    high: float


def summary(values: Sequence[float]) -> Summary | None:
    """Summary figures of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)
    mean = sum(ordered) / n
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in ordered) / n)
    return Summary(n=n, mean=mean, median=median, std=std, low=ordered[0], high=ordered[-1])


@dataclass(frozen=True)
class QuestionStats:
    """One question across scripts. ``mean``/``std`` in marks; ``full_marks``, ``blank`` as fractions
    in [0, 1] of the scripts scored; ``discrimination`` in [-1, 1]: the top third's mean score minus the
    bottom third's (thirds by exam total), over the question's maximum. None where undefined."""

    n: int
    mean: float | None
    std: float | None
    full_marks: float | None
    blank: float | None
    discrimination: float | None


def question_stats(
    *, scores: Sequence[float | None], blanks: Sequence[bool], totals: Sequence[float], max_score: float
) -> QuestionStats:
    """Figures for one question. ``scores``, ``blanks`` and ``totals`` are parallel, one per script."""
    if not (len(scores) == len(blanks) == len(totals)):
        raise ValueError("scores, blanks and totals must have one entry per script")
    scored = [(score, blank, total) for score, blank, total in zip(scores, blanks, totals) if score is not None]
    if not scored:
        return QuestionStats(n=0, mean=None, std=None, full_marks=None, blank=None, discrimination=None)
    figures = summary([score for score, _, _ in scored])
    n = len(scored)
    full = sum(1 for score, _, _ in scored if max_score > 0 and score >= max_score) / n
    blank = sum(1 for _, is_blank, _ in scored if is_blank) / n
    return QuestionStats(
        n=n, mean=figures.mean, std=figures.std, full_marks=full, blank=blank,
        discrimination=discrimination_index(scores=[s for s, _, _ in scored], totals=[t for _, _, t in scored],
                                            max_score=max_score),
    )


def discrimination_index(*, scores: Sequence[float], totals: Sequence[float], max_score: float) -> float | None:
    """Upper-minus-lower discrimination: scripts sorted by total, the mean score of the top third minus
    that of the bottom third, over ``max_score``. None with fewer than 3 scripts or a zero maximum."""
    third = len(scores) // 3
    if third == 0 or max_score <= 0:
        return None
    ranked = [score for _, score in sorted(zip(totals, scores), key=lambda pair: pair[0], reverse=True)]
    top, bottom = ranked[:third], ranked[-third:]
    return (sum(top) / third - sum(bottom) / third) / max_score


def histogram(values: Sequence[float], *, low: float, high: float, bins: int = 10) -> list[int]:
    """Counts of ``values`` in ``bins`` equal bins over [low, high]: bin ``i`` holds
    ``low + i * width <= value < low + (i + 1) * width``, and the top bin includes ``high``. Values
    outside [low, high] count in the end bins."""
    if bins < 1 or high <= low:
        raise ValueError("histogram needs bins >= 1 and high > low")
    counts = [0] * bins
    for value in values:
        # Scaling before dividing keeps edges exact: 0.3 // 0.1 is 2.0 in floats, 0.3 * 10 / 1 is 3.0.
        index = min(bins - 1, max(0, math.floor((value - low) * bins / (high - low))))
        counts[index] += 1
    return counts


class BandsRefused(ValueError):
    """Too few scripts to draw the requested samples; the message says how many there are."""


def sample_bands(
    ranked: Sequence[tuple[Hashable, float]], *, n: int, pass_mark: float | None = None
) -> dict[str, list[Hashable]]:
    """Good, Average and Weak samples of exactly ``n`` scripts each, as seed 001 keeps them.

    ``ranked`` holds ``(key, total)`` pairs; ties keep their given order, so pass them in a stable order
    (e.g. script number). Good is the top ``n`` by total, Weak the bottom ``n``, Average the ``n``
    around the median. With ``pass_mark``, only scripts whose total reaches it are drawn from. The bands
    never overlap: fewer than ``3 * n`` eligible scripts raise ``BandsRefused``.
    """
    if n < 1:
        raise BandsRefused("Each band needs at least one script.")
    eligible = [(key, total) for key, total in ranked if pass_mark is None or total >= pass_mark]
    if len(eligible) < 3 * n:
        which = f" at or above the pass mark {pass_mark:g}" if pass_mark is not None else ""
        raise BandsRefused(
            f"Three bands of {n} need {3 * n} scripts{which}; there are {len(eligible)}."
        )
    ordered = [key for key, _ in sorted(eligible, key=lambda pair: pair[1], reverse=True)]
    start = (len(ordered) - n) // 2
    return {"Good": ordered[:n], "Average": ordered[start:start + n], "Weak": ordered[-n:]}
