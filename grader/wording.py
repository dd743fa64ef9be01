"""Counts in sentences a teacher reads: "1 page", "3 pages", never "3 page(s)"."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` and the noun that agrees with it: ``counted(1, "script")`` is "1 script",
    ``counted(2, "answer")`` "2 answers"; irregular plurals are given (``counted(2, "box", "boxes")``)."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
