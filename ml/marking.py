"""The score suggested for each answer of a question, and the reason shown beside it.

Evidence is weighed in this order, the first that applies deciding:

1. **Blank** answers score 0 ("blank").
2. **As the teacher scored it**: another answer of this question with the same text (after
   ``ml.similarity.text_normalise``, spaces ignored) already has a teacher's score: that score
   ("as script 12"). When the teacher gave the same text different scores, the most frequent wins,
   the latest on ties.
3. **Fits**: the ink is explained nearly as well by a known answer as by the free reading (see
   ``ml.recognition.fit``; the gap per character is at most :data:`FIT_MAX_GAP` for the kind of
   answer). Known answers are the key's (full marks) and the texts the teacher has scored (their
   score); the best-fitting one decides ("fits key: Na", "fits script 12: Nz"), and its text is the
   transcription used from then on.
4. **Learned** (only where a learned scorer is offered for the question, see ``ml.scorer``): the
   scorer trained on the teacher's marks decides every answer the steps above left open: its band
   as a share of the marks, rounded down to the granularity ("learned from your marks (0.93)", the
   model's probability). It is offered only on questions where, on answers it was not trained on,
   it agreed with the teacher more often than steps 5-7 below did, so it replaces them there.
5. **Rule, passing**: the similarity to the key (``ml.similarity``) reaches the question's minimum:
   full marks ("rule: similarity 0.92").
6. **Like a scored answer**: for word and sentence questions, a teacher-scored text at least
   :data:`NEIGHBOUR_MIN_RATIO` alike character by character (rapidfuzz ratio) gives its score
   ("like script 12"). Numbers and symbols are never compared this way: 205 is not nearly 206.
7. **Rule, failing**: 0 ("rule: similarity 0.38"). Part marks come only from the teacher's own
   scores (2, 3, 5), never from a low similarity alone: a similarity of 0.4 says the answer is
   wrong, not that it is 40 % right.

Characters the recogniser does not know are left out of a candidate when it is fitted.

A question without a key answer and without teacher scores gets no suggestion (``score`` ``None``).
Scores are ``Decimal`` marks. Nothing here imports Django.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from rapidfuzz import fuzz

from ml.recognition.fit import Frames, frames_fit, word_spans
from ml.scoring import ZERO, ScoreRule
from ml.similarity import (
    SENTENCE_WORDS,
    NumericTolerance,
    Strategy,
    answers_similarity,
    number_parse,
    strategy_choose,
    text_normalise,
)

AnswerKind = Literal["word", "number", "sentence"]

# The most a known answer may fit worse than the free reading, in nats per character, to be taken
# as what was written. Calibrated on the demo's 336 answers (``bench/fits.py`` reprints the table):
# correct words fit their key within 0-4 nats with wrong ones from 3.9, numbers within 0.5 (a
# misread digit is the only slack, and one digit changes the answer: "3/8" fits "3/4" at 2.0) with
# wrong ones from 2.0, sentences within 0-3 with wrong ones from 4.1. Each limit keeps well clear of
# the wrong answers at some cost in correct ones, which the rule then judges.
FIT_MAX_GAP: dict[AnswerKind, float] = {"word": 2.5, "number": 1.0, "sentence": 2.5}
NEIGHBOUR_MIN_RATIO = 0.85
# How much worse than its own reading (nats per character) a key or class word may explain a read
# word's ink and still replace it. On the demo's sentence and two-word answers (seeds 3, 7, 11) 1.0
# lets 14 more right answers reach the key and 1 more wrong one (a word-order swap, "sound travels
# faster than light", which the similarity now judges by its order); 1.5 and 2.0 let in 2.
WORD_MAX_GAP = 1.0

# A learned scorer as marking asks it: for each answer text, (the share of the marks it earns in
# [0, 1], the model's probability for that share).
Learned = Callable[[Sequence[str]], Sequence[tuple[float, float]]]


@dataclass(frozen=True)
class Marked:
    """An answer whose score is known: its ``text``, ``score`` and where it comes from, as shown to
    the teacher ("script 12"), or ``"key"`` for the key's own answers. ``ref`` is the caller's id
    of the scored answer, so an answer is never suggested its own score."""

    text: str
    score: Decimal
    source: str
    ref: int | None = None


@dataclass(frozen=True)
class Written:
    """One student's answer as read. ``text`` is the teacher's transcription when ``confirmed``,
    else the engine's reading (``None`` when unread); ``frames`` the CTC frames of its ink, if any
    (a confirmed text needs none: the teacher has said what is written). ``ref`` is the caller's id
    of the answer (see :class:`Marked`)."""

    text: str | None
    blank: bool
    frames: Frames | None = None
    confirmed: bool = False
    ref: int | None = None


@dataclass(frozen=True)
class Suggestion:
    """What is suggested for one answer: ``score`` (``None``: nothing to suggest), the similarity in
    [0, 1] of ``text`` to the key and its strategy (``None``/"" without a key), the ``reason`` shown
    to the teacher, and ``fit_text``, the known answer the ink fits ("" when none)."""

    score: Decimal | None
    similarity: float | None
    strategy: str
    reason: str
    fit_text: str = ""
    text: str | None = None


def answer_kind(*, answers: Sequence[str]) -> AnswerKind:
    """What kind of answer a key asks for: numbers, sentences (3 words or more) or words."""
    keys = [answer for answer in answers if answer.strip()]
    if keys and all(number_parse(key) is not None for key in keys):
        return "number"
    if any(len(text_normalise(key).split()) >= SENTENCE_WORDS for key in keys):
        return "sentence"
    return "word"


def number_forms(text: str) -> list[str]:
    """Other ways a student writes the number ``text``: "0.75" as ".75", "x = 4" as "4", "100C" as
    "100" (number boxes are read as digits, so a unit is judged by the number alone); ``[]`` for a
    text that is not a number."""
    if number_parse(text) is None:
        return []
    forms = []
    bare = re.sub(r"^\s*[a-z]\s*=\s*", "", text.strip(), flags=re.IGNORECASE)
    unitless = re.sub(r"[^\d.,/\s-]+.*$", "", bare).strip()
    # Only a unit may go: "3 x 10^8" cut to "3" would be another number.
    if not unitless or number_parse(unitless) != number_parse(bare):
        unitless = bare
    for form in (bare, unitless, re.sub(r"^(-?)0([.,]\d)", r"\1\2", unitless)):
        if form and form != text and form not in forms:
            forms.append(form)
    return forms


def question_suggest(*, answers: Sequence[Written], key: Sequence[str], marked: Sequence[Marked],
                     rule: ScoreRule | None, strategy: Strategy = "auto",
                     tolerance: NumericTolerance = NumericTolerance(), lexicon: Sequence[str] = (),
                     vocabulary: Sequence[str] = (), learned: Learned | None = None) -> list[Suggestion]:
    """A :class:`Suggestion` for every answer of one question, in order; see the module docstring.

    ``key`` holds the accepted answers (empty: no key), ``marked`` the teacher-scored answers of the
    question, ``rule`` the question's scoring rule (``None``: settings unusable, no suggestion).
    ``lexicon`` holds what the class wrote (the question's other readings): with the known answers,
    these are the transcriptions tried against each answer's ink, and the likeliest replaces the
    free reading when it explains the ink better (a class writes few distinct answers, and the
    recogniser often reads a word better on one script than on another). ``vocabulary`` holds words
    the class wrote; with the key's and the teacher's words they correct single words of longer
    answers, each one that explains a read word's ink nearly as well as the reading does
    (:func:`words_transcribe`). ``learned`` is the question's learned scorer
    when one is offered for it (step 4 of the module docstring); it is asked once, for every answer
    the earlier steps leave open.
    """
    key = [text.strip() for text in key if text and text.strip()]
    if rule is None or (not key and not marked):
        return [Suggestion(None, None, "", "", "", None if a.blank else a.text) for a in answers]
    kind = answer_kind(answers=key or [m.text for m in marked])
    method = strategy_choose(answers=key) if key and strategy == "auto" else strategy
    known = [Marked(text, rule.max_score, "key") for text in key]
    known += [Marked(form, rule.max_score, "key") for text in key for form in number_forms(text)]
    known += list(marked)
    answers = _as_kind(answers, kind)
    words = list(dict.fromkeys(w for text in [*key, *(m.text for m in marked), *vocabulary] for w in text.split()))
    fitted, transcribed = _fits(answers=answers, known=known, lexicon=lexicon, limit=FIT_MAX_GAP[kind],
                                vocabulary=words if kind != "number" else ())
    texts = [None if a.blank else (fit.text if fit else better or a.text)
             for a, fit, better in zip(answers, fitted, transcribed, strict=True)]
    similarities = (answers_similarity(texts=texts, answers=key, strategy=strategy, tolerance=tolerance)
                    if key else [None] * len(answers))
    teachers = [None if a.blank or not a.text else
                _by_text([m for m in marked if m.ref is None or m.ref != a.ref]).get(_compact(a.text))
                for a in answers]
    open_ = [n for n, (a, fit, text, teacher) in enumerate(zip(answers, fitted, texts, teachers, strict=True))
             if not a.blank and teacher is None and fit is None and text]
    opinions = dict(zip(open_, learned([texts[n] for n in open_]), strict=True)) if learned and open_ else {}
    results = []
    for n, (answer, fit, text, similarity) in enumerate(zip(answers, fitted, texts, similarities, strict=True)):
        value = None if similarity is None or answer.blank else similarity.value
        shown = similarity.strategy if similarity is not None else ""
        fit_text = fit.text if fit else ""
        if answer.blank:
            results.append(Suggestion(ZERO, 0.0 if key else None, shown, "blank", "", text))
            continue
        others = [m for m in marked if m.ref is None or m.ref != answer.ref]
        teacher = teachers[n]
        if teacher is not None:
            results.append(Suggestion(teacher.score, value, shown, f"as {teacher.source}", "", answer.text))
        elif fit is not None:
            where = "key" if fit.source == "key" else fit.source
            results.append(Suggestion(fit.score, value, shown, f"fits {where}: {fit.text}", fit_text, text))
        elif n in opinions:
            share, probability = opinions[n]
            results.append(Suggestion(share_score(share=share, rule=rule), value, shown,
                                      f"learned from your marks ({probability:.2f})", "", text))
        elif key and value is not None and value >= rule.min_similarity:
            results.append(Suggestion(rule.max_score, value, shown, f"rule: similarity {value:.2f}", "", text))
        elif (neighbour := _neighbour(text=text, marked=others, kind=kind, method=method)) is not None:
            results.append(Suggestion(neighbour.score, value, shown, f"like {neighbour.source}", "", text))
        elif key:
            results.append(Suggestion(ZERO, value, shown,
                                      "not read" if value is None or text is None else f"rule: similarity {value:.2f}",
                                      "", text))
        else:
            results.append(Suggestion(None, None, "", "", "", text))
    return results


def share_score(*, share: float, rule: ScoreRule) -> Decimal:
    """``share`` (in [0, 1]) of the question's marks, rounded down to its granularity: a learned part
    mark never rounds up into marks the teacher did not give for such an answer."""
    share = min(1.0, max(0.0, share))
    steps = math.floor(Decimal(str(share)) * rule.max_score / rule.granularity)
    return steps * rule.granularity


def decimal_point_lost(*, text: str | None, key: Sequence[str]) -> bool:
    """Whether ``text`` has the digits of a numeric key answer but not its value ("075" or "75" for
    "0.75"): a decimal point the reader lost, or the student left out, for a person to look at."""
    if not text or number_parse(text) is None:
        return False
    digits = re.sub(r"\D", "", text).lstrip("0")
    for answer in key:
        if number_parse(answer) is None or "." not in answer and "," not in answer:
            continue
        if digits and digits == re.sub(r"\D", "", answer).lstrip("0") and number_parse(text) != number_parse(answer):
            return True
    return False


@dataclass(frozen=True)
class _Fit:
    text: str
    score: Decimal
    source: str


def _fits(*, answers: Sequence[Written], known: Sequence[Marked], lexicon: Sequence[str],
          limit: float, vocabulary: Sequence[str] = ()) -> tuple[list[_Fit | None], list[str | None]]:
    """For each answer: the known answer its ink fits best within ``limit``, if any; and the most
    likely transcription among its own reading, the known answers and ``lexicon``, when one of them
    explains the ink better than the reading does, or else the reading with words of ``vocabulary``
    the ink nearly fits (``None`` when nothing changes)."""
    texts = list(dict.fromkeys(t for t in [*(m.text for m in known), *lexicon] if t.strip()))
    asked = [n for n, a in enumerate(answers) if a.frames is not None and not a.blank and not a.confirmed]
    fitted: list[_Fit | None] = [None] * len(answers)
    transcribed: list[str | None] = [None] * len(answers)
    if not texts or not asked:
        return fitted, transcribed
    candidates = [texts + ([answers[n].text] if answers[n].text else []) for n in asked]
    fits = frames_fit(frames=[answers[n].frames for n in asked], candidates=candidates)
    for n, answer_fits in zip(asked, fits, strict=True):
        # An answer's own teacher score is no evidence about itself.
        by_text = _by_text([m for m in known if m.ref is None or m.ref != answers[n].ref], exact=True)
        good = [fit for fit in answer_fits[:len(texts)] if fit.gap <= limit and fit.text in by_text]
        if good:
            best = max(good, key=lambda fit: fit.log_likelihood)
            source = by_text[best.text]
            fitted[n] = _Fit(best.text, source.score, source.source)
        own = answer_fits[len(texts)].log_likelihood if answers[n].text else -math.inf
        likeliest = max(answer_fits[:len(texts)], key=lambda fit: fit.log_likelihood)
        if likeliest.log_likelihood > own:
            transcribed[n] = likeliest.text
        elif vocabulary and answers[n].text and " " in answers[n].text.strip():
            transcribed[n] = words_transcribe(frames=answers[n].frames, vocabulary=vocabulary)
    return fitted, transcribed


def words_transcribe(*, frames: Frames, vocabulary: Sequence[str]) -> str | None:
    """The free reading with each word replaced by a vocabulary word (in the case it was written)
    where that word explains the word's own frames nearly as well as the reading did, within
    :data:`WORD_MAX_GAP` nats per character (a misread word is the recogniser's favourite by
    definition, so "better than the reading" never lets "lglt" become "light"); None when no word
    changes. Candidates are words of similar length and spelling (rapidfuzz ratio >= 50), so a word
    is only ever exchanged for a near spelling the ink allows."""
    spans = word_spans(frames)
    if not spans:
        return None
    words, changed = [], False
    for start, end, word in spans:
        near = [v for v in vocabulary
                if abs(len(v) - len(word)) <= max(2, len(word) // 3) and fuzz.ratio(v.casefold(), word.casefold()) >= 50]
        forms = list(dict.fromkeys(form for v in near for form in (v, v.upper(), v.lower(), v.capitalize())))
        if not forms or end - start < 2:
            words.append(word)
            continue
        piece = Frames(frames.log_probs[start:end], frames.charset)
        scored = frames_fit(frames=[piece], candidates=[[word, *forms]])[0]
        best = max(scored[1:], key=lambda fit: fit.log_likelihood)
        gap = (scored[0].log_likelihood - best.log_likelihood) / max(1, len(best.text))
        # The case of the form that fits best is how it was written; a reading that only differs in
        # case stays as read.
        if gap <= WORD_MAX_GAP and best.text.casefold() != word.casefold():
            words.append(best.text)
            changed = True
        else:
            words.append(word)
    return " ".join(words) if changed else None


def _by_text(marked: Sequence[Marked], *, exact: bool = False) -> dict[str, Marked]:
    """One score per text: the most frequent among ``marked``, the latest on ties; keys compacted
    unless ``exact``. The key's own answers, when present, outrank teacher scores of the same text."""
    groups: dict[str, list[Marked]] = {}
    for item in marked:
        groups.setdefault(item.text if exact else _compact(item.text), []).append(item)
    chosen = {}
    for text, items in groups.items():
        from_key = [item for item in items if item.source == "key"]
        if from_key:
            chosen[text] = from_key[0]
            continue
        counts = Counter(item.score for item in items)
        top = max(counts.values())
        chosen[text] = next(item for item in reversed(items) if counts[item.score] == top)
    return {text: item for text, item in chosen.items() if text}


def _neighbour(*, text: str | None, marked: Sequence[Marked], kind: AnswerKind, method: str) -> Marked | None:
    if not text or not marked or kind == "number" or method in ("numeric", "exact"):
        return None
    compact = _compact(text)
    best, best_ratio = None, 0.0
    for item in marked:
        ratio = fuzz.ratio(compact, _compact(item.text)) / 100
        if ratio > best_ratio:
            best, best_ratio = item, ratio
    return best if best_ratio >= NEIGHBOUR_MIN_RATIO else None


def _as_kind(answers: Sequence[Written], kind: AnswerKind) -> Sequence[Written]:
    """Numbers are matched with spaces counted as gaps: "6 0" is a way of writing 60."""
    if kind != "number":
        return answers
    return [replace(a, frames=a.frames.spaces_as_gaps()) if a.frames is not None else a for a in answers]


def _compact(text: str) -> str:
    return text_normalise(text).replace(" ", "")



def answers_touched(*, answers: Sequence[Written], text: str, kind: AnswerKind) -> list[int]:
    """Positions of the answers whose suggestion a teacher's score for ``text`` can change: the same
    text, a text alike enough to be its neighbour, or ink that ``text`` fits (see the module
    docstring). Re-suggesting only these keeps a save cheap on a large class."""
    compact = _compact(text)
    if not compact:
        return []
    touched = set()
    for n, answer in enumerate(answers):
        if answer.blank or not answer.text:
            continue
        own = _compact(answer.text)
        if own == compact or (kind != "number" and fuzz.ratio(own, compact) / 100 >= NEIGHBOUR_MIN_RATIO):
            touched.add(n)
    answers = _as_kind(answers, kind)
    asked = [n for n, a in enumerate(answers) if a.frames is not None and not a.blank and not a.confirmed]
    if asked:
        fits = frames_fit(frames=[answers[n].frames for n in asked], candidates=[[text]] * len(asked))
        touched.update(n for n, (fit,) in zip(asked, fits, strict=True) if fit.gap <= FIT_MAX_GAP[kind])
    return sorted(touched)
