"""The templates as text: mistakes Django renders silently instead of raising."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_every_short_comment_closes_on_its_own_line():
    # Django's {# #} comment is one line only: one that goes on is printed on the page as it stands.
    unclosed = [f"{path.relative_to(TEMPLATES)}:{number}"
                for path in sorted(TEMPLATES.rglob("*.html"))
                for number, line in enumerate(path.read_text().splitlines(), start=1)
                if line.count("{#") > line.count("#}")]
    assert not unclosed, f"use {{% comment %}} for these: {unclosed}"
