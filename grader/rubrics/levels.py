"""Level descriptors as teachers write them, one a line: ``POINTS LABEL[: DESCRIPTION]``
("4 exceptional: every cause, each explained"), on the rubric page and in the RUBRIC sheet."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from . import services

# "4 exceptional: every cause, each explained" (the description is optional).
LEVEL_LINE = re.compile(r"^\s*(?P<points>\d+(?:[.,]\d+)?)\s+(?P<label>[^:]+?)\s*(?::\s*(?P<description>.*))?$")


def points_parse(raw: str, *, what: str) -> Decimal:
    try:
        value = Decimal(raw.strip().replace(",", "."))
    except InvalidOperation:
        raise services.RubricRefused(f"{what}: “{raw.strip()[:20]}” is not a number of points.") from None
    if not value.is_finite() or value < 0 or value >= 10_000:
        raise services.RubricRefused(f"{what}: “{raw.strip()[:20]}” is not a number of points.")
    return value


def levels_parse(text: str, *, dimension: str) -> tuple[services.LevelSpec, ...]:
    """Level descriptors written one a line, ``POINTS LABEL[: DESCRIPTION]``."""
    levels = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = LEVEL_LINE.match(line)
        if match is None:
            raise services.RubricRefused(f"{dimension}, level line {number}: write it as “4 exceptional: what it "
                                         "looks like” (points, a label, then optionally a colon and a description).")
        levels.append(services.LevelSpec(points=points_parse(match["points"], what=dimension), label=match["label"],
                                         description=match["description"] or ""))
    return tuple(levels)
