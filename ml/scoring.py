"""Suggested scores from similarities, and checks of the scores teachers type in.

The rule is the seed scoring package's: the teacher sets a maximum score, a minimum similarity
and a granularity per question. A blank answer scores 0; an answer at least as similar as the
minimum gets the maximum; any other gets its share of the maximum, rounded down to the
granularity. Scores are ``Decimal`` throughout so 0.5 and 0.25 steps stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class ScoreRule:
    """How one question is scored.

    ``max_score`` >= 0 and a whole multiple of ``granularity`` (so the maximum can be typed in);
    ``min_similarity`` in [0, 1]; ``granularity`` > 0, the step of valid scores (1, 0.5, 0.25).
    Raises ValueError naming the bad field when these do not hold.
    """

    max_score: Decimal
    min_similarity: float
    granularity: Decimal

    def __post_init__(self) -> None:
        if not self.max_score.is_finite() or self.max_score < 0:
            raise ValueError(f"max score must be a number >= 0, got {self.max_score}")
        if not 0 <= self.min_similarity <= 1:
            raise ValueError(f"minimum similarity must be between 0 and 1, got {self.min_similarity}")
        if not self.granularity.is_finite() or self.granularity <= 0:
            raise ValueError(f"granularity must be a number > 0, got {self.granularity}")
        if self.max_score % self.granularity:
            raise ValueError(f"max score {marks_text(self.max_score)} is not a multiple of "
                             f"the granularity {marks_text(self.granularity)}")


def score_suggest(*, similarity: float | None, blank: bool, rule: ScoreRule) -> Decimal:
    """The score to suggest for an answer, in [0, ``rule.max_score``] on the granularity.

    ``similarity`` is in [0, 1] (see ``ml.similarity``); ``None`` means none could be computed
    (e.g. unreadable writing) and suggests 0, like a similarity of 0 — the teacher reviews every
    suggestion anyway. Blank answers score 0. Raises ValueError for a similarity outside [0, 1].
    """
    if blank or similarity is None:
        return ZERO
    if not 0 <= similarity <= 1:
        raise ValueError(f"similarity must be between 0 and 1, got {similarity}")
    if similarity >= rule.min_similarity:
        return rule.max_score
    # Through str, not the float's binary expansion: Decimal(0.3) is 0.29999..., which would
    # floor 10 * 0.3 to 2 steps instead of 3.
    share = rule.max_score * Decimal(str(similarity)) / rule.granularity
    steps = share.to_integral_value(rounding=ROUND_FLOOR)
    # 0 <= similarity < min_similarity <= 1, so this lies in [0, max_score) without clamping.
    return steps * rule.granularity


def score_valid(*, score: Decimal, rule: ScoreRule) -> str | None:
    """Why a score a teacher entered is not allowed for ``rule``, as a sentence for the form,
    or ``None`` when it is a valid score (0 to the maximum, in steps of the granularity)."""
    if not score.is_finite():
        return "The score must be a number."
    if score < 0:
        return "The score cannot be negative."
    if score > rule.max_score:
        return f"The score {marks_text(score)} is above the maximum of {marks_text(rule.max_score)}."
    if score % rule.granularity:
        return f"The score {marks_text(score)} is not a multiple of {marks_text(rule.granularity)}."
    return None


def figure_text(value: float, places: int = 2) -> str:
    """A statistic or percentage rounded to ``places`` decimals, without trailing zeros: "3.33", "75", "41.7"."""
    return marks_text(round(value, places))


def marks_text(value: Decimal | float | int) -> str:
    """Marks as a teacher writes them: "1.5", "2", "0", never "2.00" or "1E+1"."""
    # normalize() drops trailing zeros ("0.50" -> "0.5") but writes 100 as "1E+2"; "f" undoes that.
    return format(Decimal(str(value)).normalize(), "f")
