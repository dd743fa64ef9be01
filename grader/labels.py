"""Question labels as teachers write them, read one way by the answer key (import and form) and the box editor.

A label is at most 32 letters, digits, spaces and ``._()-``, starting with a letter or digit. A bare
number is question number: ``1`` becomes ``Q1`` and ``q3`` becomes ``Q3``. Text only: the answer key
importer turns a cell into text first (``grader.sheet_import.cell_text``, so Excel's ``1.0`` is ``1``).
"""

from __future__ import annotations

import re

QUESTION_LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()\-]{0,31}$")


def question_label_normalise(text: str) -> str:
    """``1`` becomes ``Q1``, ``q3`` and ``q3b`` become ``Q3`` and ``Q3b``; other labels stay as written (trimmed)."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return f"Q{int(text)}"
    if re.fullmatch(r"[qQ]\d+[a-z]?", text):
        return text[0].upper() + text[1:]
    return text
