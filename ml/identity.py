"""Which roster student wrote each scanned script, from the NAME, ID and CLASS boxes OCR read.

The readings are noisy: OCR confuses letters and digits ("S1O14" for "S1014"), students misspell
their names ("Hannah Ivanv"), write them "Last First" or in capitals, add spaces ("9 A") and
now and then miswrite a digit of their ID. :func:`identity_score` turns one script's readings
and one roster entry into a score in [0, 1]; :func:`identity_match` scores every pair, assigns
scripts to students one-to-one and says which assignments a teacher must check.

Score of a script against a roster entry
    ``id_weight * id + (1 - id_weight) * name``, plus ``class_bonus`` when the classes agree or
    minus ``class_penalty`` when both are known and differ, clipped to [0, 1]. When one of ID
    and name is unread (``None`` or blank) the other carries the whole weight; when both are,
    the score is 0.0 whatever the class says (a class alone names half a roster).

``id`` (see :func:`id_similarity`)
    1 - 2 x Levenshtein distance / length of the longer ID, at least 0, after case folding and
    dropping spaces and punctuation. An edit counts double because a class's IDs all lie one or
    two edits apart (S1001 ... S1030): one wrong digit of five scores 0.6, not a near-match
    0.8, and two 0.2. OCR's letter/digit confusions (O/0, I/l/1, S/5, B/8, Z/2) cost 0.1 of an
    edit: "S1O14" scores 0.96 against "S1014".
``name`` (see :func:`name_similarity`)
    rapidfuzz's ``ratio`` (normalised indel similarity) of the two names without spaces, the
    best over rotations of the written words, so "Tanaka Wei" scores 1.0 against "Wei Tanaka".
    One typo scores 0.9 or more, names sharing a surname about 0.7-0.8, unrelated names about
    0.2-0.5.

Matching from the ink itself (when the engine kept its frames, see :mod:`ml.recognition.fit`)
    The roster is a closed list, so instead of asking what the ink says, each roster entry is asked
    how well it explains the ink: the CTC log-likelihood of its name (every rotation of its words, in
    the cases a student writes), of its ID and, at half weight, of its class, summed over the boxes.
    ``fit`` in the result is the difference in nats (natural log) between the best and the second
    best student: a misread letter costs a few nats, a different name tens. A script's ``score`` is
    then the posterior over the roster, ``softmax(log_likelihood / fit_temperature)``. Such a script
    is confident only when its student is also its best, leads by ``fit_margin`` nats, and their own
    writing is explained about as well as the free reading explains it: the name within ``fit_max_gap``
    nats per character, or the ID within ``fit_id_max_gap`` (without a name box, the ID within
    ``fit_max_gap``). A student missing from the roster is explained badly by everybody (another
    student's ID misses theirs by a whole character), and is left to the teacher however far ahead
    the least bad candidate is. The ID's ink is judged as written in the roster's own alphabet (its
    IDs' characters, in either case): "S1005" read freely is "Sloo5", and a box that holds an ID holds
    no "l" or "o". Scripts without frames (another engine,
    answers read before frames were kept) are scored from the readings as below.

With the default equal weights, an exact ID with a misspelt or half-read name (0.6+) scores
0.8 or more, an exact name with one wrong ID digit 0.8, a misspelt name with one 0.75-0.8,
all confident (>= 0.75) when nobody else comes within 0.1. Both only roughly right (one wrong
digit, a name at 0.7) scores 0.65 and a classmate sharing the surname with an ID one digit off
about 0.68, neither confident; other classmates mostly score 0.25-0.6 and are not even assigned
(< 0.65). A class bonus or penalty moves these by 0.05.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from scipy.optimize import linear_sum_assignment

from ml.recognition.fit import Frames, frames_fit
from ml.similarity import text_normalise

# A wrong character costs this many times its share of the ID's length (see the module doc).
ID_EDIT_COST = 2.0
# Characters OCR engines read for one another in handwritten IDs, folded onto the digit.
_CONFUSABLE = str.maketrans({"o": "0", "i": "1", "l": "1", "|": "1", "s": "5", "b": "8", "z": "2"})
# An edit between two confusable characters costs this fraction of a real edit: the strings
# are near-equal, yet an exact reading still ranks above a confused one.
CONFUSION_COST = 0.1
# Scores are sums of float ratios: one equal to a setting on paper may land a hair below it.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class RosterEntry:
    """One student on the class roster (the spreadsheet's ID, NAME and CLASS columns)."""

    student_id: str
    name: str
    class_name: str = ""


@dataclass(frozen=True)
class WrittenIdentity:
    """What OCR read in one script's identity boxes.

    ``script`` is the caller's identifier, echoed in the result. A field is ``None`` when it
    was not read; a blank string counts the same. ``confidence`` is the engine's confidence in
    [0, 1] (``None`` when it has none); it is carried for display and not used in scoring,
    because engines' confidences are not comparable with one another.
    """

    script: int
    name: str | None
    student_id: str | None
    class_name: str | None = None
    confidence: float | None = None
    # Other readings of the same ID box (e.g. read again with digits only); for each roster entry
    # the best-fitting reading counts, because each reading fails on different characters.
    id_alternatives: tuple[str, ...] = ()
    # A CTC engine's frames per box ("name", "id", "class"): when there are any, candidates are
    # scored against the ink rather than the readings (see the module docstring).
    frames: Mapping[str, Frames] = field(default_factory=dict, compare=False, repr=False)
    # The same evidence from an engine that scored the roster itself (the VLM's likelihood of each
    # student's text): box -> student ID -> (log-likelihood in nats, gap in nats per character).
    candidate_fits: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict, compare=False,
                                                                             repr=False)


@dataclass(frozen=True)
class IdentityConfig:
    """How scores are combined and which assignments count as confident.

    ``id_weight`` in [0, 1] is the ID's share of the score, the name having the rest.
    ``class_bonus`` and ``class_penalty`` in [0, 1] are added for an agreeing class and taken
    off for a differing one: small, because students write the wrong class and a class names
    many students. A script is assigned to a student only when their score is at least
    ``accept``; the assignment is ``confident`` (needs no teacher's look) when the score is at
    least ``threshold`` and beats the script's runner-up student, and any other script whose
    best student is the same one, by at least ``margin``. ``accept`` <= ``threshold``, all in
    [0, 1].

    Matching from the ink: ``fit_margin`` (nats) is the lead a script's student needs over its
    runner-up, ``fit_max_gap`` (nats per character) how much worse than the free reading the name
    may fit, ``fit_id_max_gap`` the same for the ID (strict: one clearly different character of five
    costs 2 or more), ``fit_temperature`` (nats) turns log-likelihoods into the posterior shown as the
    score. ``bench/fits.py`` measures them: on demo seeds 3, 7 and 11 (84 scripts) no script whose
    student is taken off the roster is matched confidently, and the best wrong student fits the ID
    within 1.0 only where it leads by under 20 nats.
    """

    id_weight: float = 0.5
    threshold: float = 0.75
    margin: float = 0.1
    accept: float = 0.65
    class_bonus: float = 0.05
    class_penalty: float = 0.05
    fit_margin: float = 20.0
    fit_max_gap: float = 4.5
    fit_id_max_gap: float = 1.0
    fit_temperature: float = 5.0

    def __post_init__(self) -> None:
        if self.fit_margin < 0 or self.fit_max_gap < 0 or self.fit_id_max_gap < 0 or self.fit_temperature <= 0:
            raise ValueError("fit_margin, fit_max_gap and fit_id_max_gap must be >= 0, fit_temperature > 0")
        values = {name: getattr(self, name) for name in
                  ("id_weight", "threshold", "margin", "accept", "class_bonus", "class_penalty")}
        outside = [f"{name}={value}" for name, value in values.items() if not 0 <= value <= 1]
        if outside:
            raise ValueError(f"identity settings must be in [0, 1], got {', '.join(outside)}")
        if self.accept > self.threshold:
            raise ValueError(f"accept ({self.accept}) must not exceed threshold ({self.threshold})")


DEFAULT_CONFIG = IdentityConfig()


@dataclass(frozen=True)
class ScriptMatch:
    """The student assigned to one script.

    ``student_id`` is ``None`` when no student scored at least ``accept`` or the acceptable
    ones went to other scripts; ``score`` in [0, 1] is the assigned student's (0.0 when
    none). ``runner_up_id`` and ``runner_up_score`` are the best-scoring other roster student
    (the best of all when nothing was assigned, so the teacher sees the nearest candidate);
    ``None`` and 0.0 when no other student scores above 0. ``fit`` is, for scripts matched from
    the ink, the assigned student's lead over the runner-up in nats (``None`` otherwise).
    """

    script: int
    student_id: str | None
    score: float
    runner_up_id: str | None
    runner_up_score: float
    confident: bool
    fit: float | None = None


@dataclass(frozen=True)
class IdentityResult:
    """Scripts matched to students by :func:`identity_match`.

    ``matches`` holds one :class:`ScriptMatch` per script, in the order given. ``absent`` are
    the IDs of roster students assigned no script, ``duplicates`` those that are the best
    acceptable student of two or more scripts (at most one of them is assigned), both in
    roster order. ``unmatched`` are the scripts assigned no student, in the order given.
    """

    matches: tuple[ScriptMatch, ...]
    absent: tuple[str, ...]
    unmatched: tuple[int, ...]
    duplicates: tuple[str, ...]


def id_similarity(*, written: str, expected: str) -> float:
    """How close a written ID is to a roster ID, in [0, 1]; see the module docstring.

    Case, spaces and punctuation are ignored ("s 1014" equals "S1014"); an edit costs
    :data:`ID_EDIT_COST` times its share of the length, a letter/digit confusion
    :data:`CONFUSION_COST` of that. Either ID blank gives 0.0.
    """
    return _id_similarity(_compact(written), _compact(expected))


def name_similarity(*, written: str, expected: str) -> float:
    """How close a written name is to a roster name, in [0, 1]; see the module docstring.

    Case, accents, apostrophes and spaces are ignored ("OBRIEN" equals "O'Brien"). The
    written words are tried in every rotation, which covers "Last First" and "Last First
    Middle". rapidfuzz's ``token_sort_ratio`` would also cover swaps, but it sorts words
    alphabetically, so one misread first letter can reorder them and halve the score ("Yanaka
    Wei" scores 0.5 against "Wei Tanaka"; here 0.89). ``token_set_ratio`` and ``WRatio`` were
    left out because they score a name that is a subset of another near 1.0: "Chen" would
    match every Chen in the class. Either name blank gives 0.0.
    """
    return _name_similarity(_name_words(written), "".join(_name_words(expected)))


def identity_score(*, written: WrittenIdentity, entry: RosterEntry,
                   config: IdentityConfig = DEFAULT_CONFIG) -> float:
    """How likely the script ``written`` is ``entry``'s, in [0, 1]; see the module docstring."""
    return _score(_Prepared.of_written(written), _Prepared.of_entry(entry), config=config)


def identity_match(*, written: Sequence[WrittenIdentity], roster: Sequence[RosterEntry],
                   config: IdentityConfig = DEFAULT_CONFIG) -> IdentityResult:
    """Each script's student, one script per student at most, maximising the total score.

    Pairs scoring under ``config.accept`` are never assigned. The assignment is
    scipy's ``linear_sum_assignment`` on the score matrix, so a script may go to its second
    best student when its best one is another script's (its margin is then negative and it is
    not confident). Raises ValueError when two scripts share a ``script`` or two roster
    entries a ``student_id``.
    """
    _require_unique([w.script for w in written], what="script")
    _require_unique([e.student_id for e in roster], what="student ID")
    scripts = [_Prepared.of_written(w) for w in written]
    students = [_Prepared.of_entry(e) for e in roster]
    scores = np.array([[_score(script, student, config=config) for student in students]
                       for script in scripts], dtype=float).reshape(len(scripts), len(students))
    # Rows of scripts with frames are replaced by the posterior from the ink.
    fitted = _ink_fit(written=written, roster=roster, config=config)
    for row, (posterior, _, _) in fitted.items():
        scores[row] = posterior

    acceptable = np.where(scores >= config.accept - _TOLERANCE, scores, 0.0)
    assigned: dict[int, int] = {}
    if acceptable.size:
        rows, columns = linear_sum_assignment(acceptable, maximize=True)
        # The solver fills every row it can, with zero-weight pairs too; those are no match.
        assigned = {int(r): int(c) for r, c in zip(rows, columns, strict=True) if acceptable[r, c] > 0}

    # Each script's best acceptable student, before the one-to-one assignment.
    claimants: dict[int, list[int]] = {}
    for row in range(len(scripts)):
        if acceptable.shape[1] and acceptable[row].max() > 0:
            claimants.setdefault(int(acceptable[row].argmax()), []).append(row)

    matches = []
    for row, identity in enumerate(written):
        column = assigned.get(row)
        others = scores[row].copy()
        if column is not None:
            others[column] = -1.0
        runner = int(others.argmax()) if others.size and others.max() > 0 else None
        runner_score = 0.0 if runner is None else float(scores[row, runner])
        score = 0.0 if column is None else float(scores[row, column])
        rivals = [scores[other, column] for other in claimants.get(column, []) if other != row]
        confident = (column is not None and score >= config.threshold - _TOLERANCE
                     and score - runner_score >= config.margin - _TOLERANCE
                     and all(score - rival >= config.margin - _TOLERANCE for rival in rivals))
        lead = None
        if row in fitted and column is not None:
            _, likelihoods, gaps = fitted[row]
            others = np.delete(likelihoods, column)
            lead = float(likelihoods[column] - others.max()) if others.size else float("inf")
            confident = confident and lead >= config.fit_margin - _TOLERANCE and _own_writing_fits(
                gaps={box: gap[column] for box, gap in gaps.items()}, config=config)
        matches.append(ScriptMatch(
            script=identity.script,
            student_id=None if column is None else roster[column].student_id,
            score=score,
            runner_up_id=None if runner is None else roster[runner].student_id,
            runner_up_score=runner_score,
            confident=confident,
            fit=None if lead is None else round(lead, 2)))

    taken = set(assigned.values())
    return IdentityResult(
        matches=tuple(matches),
        absent=tuple(e.student_id for c, e in enumerate(roster) if c not in taken),
        unmatched=tuple(w.script for r, w in enumerate(written) if r not in assigned),
        duplicates=tuple(e.student_id for c, e in enumerate(roster) if len(claimants.get(c, [])) >= 2))


# Weight of each box in the ink score: a class is shared by half the roster, so it only breaks ties.
_FIT_WEIGHTS = {"name": 1.0, "id": 1.0, "class": 0.5}


def _own_writing_fits(*, gaps: Mapping[str, float], config: IdentityConfig) -> bool:
    """Whether a student explains their script's identity boxes nearly as well as the free reading
    does (``gaps``: box -> gap in nats per character); see the module docstring."""
    if "name" not in gaps:
        return gaps.get("id", np.inf) <= config.fit_max_gap + _TOLERANCE
    return (gaps["name"] <= config.fit_max_gap + _TOLERANCE
            or gaps.get("id", np.inf) <= config.fit_id_max_gap + _TOLERANCE)


def id_alphabet(*, roster: Sequence[RosterEntry]) -> str:
    """The characters the roster's IDs are written with: every digit once any ID has one (a student
    missing from the roster writes an ID of the same form, and must be able to spell it, else
    the nearest roster ID would explain their ink as well as anything could), and the IDs' other
    characters in both cases (students write "s1005")."""
    used = {char for entry in roster for char in entry.student_id + entry.student_id.swapcase()}
    if any(char in string.digits for char in used):
        used |= set(string.digits)
    return "".join(sorted(used))


def _ink_fit(*, written: Sequence[WrittenIdentity], roster: Sequence[RosterEntry],
             config: IdentityConfig) -> dict[int, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """For each script row with frames or candidate fits: (posterior over the roster, log-likelihoods,
    box -> each student's gap per character)."""
    if not roster:
        return {}
    # A class only counts when every student has one; otherwise those without would be favoured.
    boxes = [box for box in _FIT_WEIGHTS if box != "class" or all(entry.class_name.strip() for entry in roster)]
    texts = {box: roster_texts(roster=roster, box=box) for box in boxes}
    alphabet = id_alphabet(roster=roster)
    jobs = [(row, box, identity.frames[box].restricted(alphabet) if box == "id" else identity.frames[box])
            for row, identity in enumerate(written) for box in boxes if box in identity.frames]
    fits = frames_fit(frames=[frames for _, _, frames in jobs],
                      candidates=[[text for _, text in texts[box]] for _, box, _ in jobs])
    # The ink's evidence and an engine's own scoring of the roster take one form: student -> (ll, gap).
    scored = {
        (row, box): candidate_fits(texts=texts[box], scores=[fit.log_likelihood for fit in box_fits],
                                   reference=frames.best_path)
        for (row, box, frames), box_fits in zip(jobs, fits, strict=True)
    }
    for row, identity in enumerate(written):
        for box in boxes:
            if box not in identity.frames and identity.candidate_fits.get(box):
                scored[(row, box)] = identity.candidate_fits[box]
    evidence: list[tuple[int, str, np.ndarray, np.ndarray]] = []
    for (row, box), by_student in scored.items():
        pairs = [by_student.get(entry.student_id, (-np.inf, np.inf)) for entry in roster]
        evidence.append((row, box, np.array([ll for ll, _ in pairs], float), np.array([g for _, g in pairs], float)))
    likelihoods: dict[int, np.ndarray] = {}
    gaps: dict[int, dict[str, np.ndarray]] = {}
    for row, box, best_ll, best_gap in evidence:
        finite = np.isfinite(best_ll)
        if not finite.any():  # nobody's text can be spelt by the recogniser: no evidence either way
            continue
        # A text the recogniser cannot spell is given the least likely score, never an advantage.
        best_ll[~finite] = best_ll[finite].min()
        likelihoods[row] = likelihoods.get(row, np.zeros(len(roster))) + _FIT_WEIGHTS[box] * best_ll
        gaps.setdefault(row, {})[box] = best_gap
    fitted = {}
    for row, total in likelihoods.items():
        shifted = (total - total.max()) / config.fit_temperature
        posterior = np.exp(shifted) / np.exp(shifted).sum()
        fitted[row] = (posterior, total, gaps[row])
    return fitted


def roster_texts(*, roster: Sequence[RosterEntry], box: str) -> list[tuple[str, str]]:
    """``(student_id, text)`` for every way each student's entry may be written in a ``box`` ("name":
    every rotation of the words, "id", "class"): the candidates an engine scores against the ink."""
    if box == "name":
        return [(entry.student_id, text) for entry in roster for text in _name_rotations(entry.name)]
    if box == "id":
        return [(entry.student_id, entry.student_id) for entry in roster]
    if box == "class":
        return [(entry.student_id, entry.class_name) for entry in roster if entry.class_name.strip()]
    raise ValueError(f"unknown identity box {box!r}")


def candidate_fits(*, texts: Sequence[tuple[str, str]], scores: Sequence[float],
                   reference: float) -> dict[str, tuple[float, float]]:
    """Per student, the best ``(log-likelihood, gap)`` of their texts (``roster_texts``) from an engine's
    ``scores`` of them (nats), the gap measured per character against ``reference``, the engine's
    score of its own free reading (for :attr:`WrittenIdentity.candidate_fits`)."""
    best: dict[str, tuple[float, float]] = {}
    for (student_id, text), score in zip(texts, scores, strict=True):
        gap = (reference - score) / max(1, len(text.replace(" ", "")))
        if student_id not in best or score > best[student_id][0]:
            best[student_id] = (float(score), float(gap))
    return best


def _name_rotations(name: str) -> list[str]:
    """"Wei Tanaka" and "Tanaka Wei": students write their names in either order."""
    words = name.split()
    return [" ".join(words[i:] + words[:i]) for i in range(len(words))] or [name]


@dataclass(frozen=True)
class _Prepared:
    """One side of a comparison, normalised once: compact ID, name words, compact class."""

    student_ids: tuple[str, ...]
    words: tuple[str, ...]
    class_name: str

    @classmethod
    def of_written(cls, written: WrittenIdentity) -> _Prepared:
        readings = (_compact(text or "") for text in (written.student_id, *written.id_alternatives))
        # Classes are folded like IDs: OCR reads a handwritten "9B" as "98" just as easily.
        return cls(tuple(text for text in readings if text), _name_words(written.name or ""),
                   _compact(written.class_name or "").translate(_CONFUSABLE))

    @classmethod
    def of_entry(cls, entry: RosterEntry) -> _Prepared:
        return cls((_compact(entry.student_id),), _name_words(entry.name),
                   _compact(entry.class_name).translate(_CONFUSABLE))


def _score(written: _Prepared, entry: _Prepared, *, config: IdentityConfig) -> float:
    parts = []
    if written.student_ids and entry.student_ids:
        expected = entry.student_ids[0]
        parts.append((config.id_weight, max(_id_similarity(text, expected) for text in written.student_ids)))
    if written.words and entry.words:
        parts.append((1 - config.id_weight, _name_similarity(written.words, "".join(entry.words))))
    weight = sum(w for w, _ in parts)
    if weight == 0:
        return 0.0
    score = sum(w * s for w, s in parts) / weight
    if written.class_name and entry.class_name:
        score += config.class_bonus if written.class_name == entry.class_name else -config.class_penalty
    return min(max(score, 0.0), 1.0)


def _id_similarity(written: str, expected: str) -> float:
    if not written or not expected:
        return 0.0
    # Folding can only merge characters, so the folded distance never exceeds the raw one and
    # their difference counts the edits that were mere confusions.
    folded = Levenshtein.distance(written.translate(_CONFUSABLE), expected.translate(_CONFUSABLE))
    raw = Levenshtein.distance(written, expected)
    distance = folded + CONFUSION_COST * (raw - folded)
    return max(0.0, 1.0 - ID_EDIT_COST * distance / max(len(written), len(expected)))


def _name_similarity(words: tuple[str, ...], expected: str) -> float:
    if not words or not expected:
        return 0.0
    # Spaces are left out: OCR engines join or split handwritten words.
    return max(fuzz.ratio("".join(words[i:] + words[:i]), expected) for i in range(len(words))) / 100


def _compact(text: str) -> str:
    return text_normalise(text).replace(" ", "")


def _name_words(name: str) -> tuple[str, ...]:
    # Accents dropped: rosters keep them ("José") but pens and OCR engines often do not.
    decomposed = unicodedata.normalize("NFKD", text_normalise(name))
    return tuple("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def _require_unique(values: list[int] | list[str], *, what: str) -> None:
    # Results name scripts and students by these; a repeat would make them ambiguous.
    repeated = sorted(str(value) for value, count in Counter(values).items() if count > 1)
    if repeated:
        raise ValueError(f"each {what} must be unique; repeated: {', '.join(repeated)}")
