"""Reading untrusted values from requests: whole numbers and JSON, one way everywhere.

A malformed value is a refusal the caller words for its screen, never a server error: no Unicode
digits ("²" passes ``str.isdigit`` but not ``int``), no number too long for ``int`` or a database
column, no JSON nested deep enough to exhaust the stack, no NaN, infinity or number so large that
arithmetic on it overflows.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The largest value of a signed 64-bit database column: every id and number a request names fits.
WHOLE_NUMBER_MAX = 2**63 - 1
# Request JSON (box saves and files, API regions) is at most 4 levels deep; deeper is refused
# before it can exhaust the stack.
JSON_MAX_DEPTH = 32
# Far beyond any coordinate, index or count a request carries, and far enough below float's limit
# that no arithmetic on it overflows.
JSON_MAX_NUMBER = 10**15


class MalformedInput(ValueError):
    """A request value that cannot be read. The message is a fragment that follows "is", as in
    "The request is nested deeper than the 32 levels markdesk reads"."""


def whole_number_parse(raw: object) -> int | None:
    """``raw`` (text) as a whole number from 0 to ``WHOLE_NUMBER_MAX``, or None for anything else
    ("", "-1", "1.5", "²", 5000 digits). Spaces around the digits are allowed."""
    if not isinstance(raw, str):
        return None
    digits = raw.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(WHOLE_NUMBER_MAX)):
        return None
    value = int(digits)
    return value if value <= WHOLE_NUMBER_MAX else None


def _number_refused(text: str) -> MalformedInput:
    shown = text if len(text) <= 20 else f"{text[:20]}…"
    return MalformedInput(f"out of range: {shown} is beyond the ±{JSON_MAX_NUMBER:.0e} markdesk reads")


def _int_parse(text: str) -> int:
    # Checked on the digits first: int() of thousands of digits is slow, and refused beyond 4300.
    if len(text.lstrip("-")) > len(str(JSON_MAX_NUMBER)) or abs(int(text)) > JSON_MAX_NUMBER:
        raise _number_refused(text)
    return int(text)


def _float_parse(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > JSON_MAX_NUMBER:
        raise _number_refused(text)
    return value


def _constant_refuse(name: str) -> None:
    raise MalformedInput(f"not valid JSON: {name} is not a number")


def _too_deep() -> MalformedInput:
    return MalformedInput(f"nested deeper than the {JSON_MAX_DEPTH} levels markdesk reads")


def json_parse(data: str | bytes) -> Any:
    """The JSON document ``data``, or ``MalformedInput`` saying what is wrong with it: not UTF-8, not
    JSON, nested deeper than ``JSON_MAX_DEPTH``, or holding NaN, infinities or a number beyond
    ``JSON_MAX_NUMBER``."""
    try:
        document = json.loads(data, parse_int=_int_parse, parse_float=_float_parse, parse_constant=_constant_refuse)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as error:
        raise MalformedInput(f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except UnicodeDecodeError:
        raise MalformedInput("not valid JSON: it is not UTF-8 text") from None
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise _too_deep()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return document
