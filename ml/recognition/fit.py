"""How well a given text explains the ink, from a CTC recogniser's per-frame character probabilities.

Free reading asks "what does the ink say?" and, on handwriting, often answers "Nz" for "Na". When the
possible answers are known (the roster's names and IDs, the key's answers, texts a teacher already
confirmed) the better question is "how well does each of them explain the ink?". A CTC recogniser
gives, for every frame (a few pixels' width of the line), a probability for every character and for
"no character"; the probability that the ink says a given text is the sum over every way of spreading
that text over the frames (``torch.nn.functional.ctc_loss``). No text can be written in a way the
model has not been asked about, so candidates are compared with each other and with the free reading.

Formats
    :class:`Frames` holds ``log_probs``, a float array ``[T, C]`` of natural-log probabilities (rows
    sum to 1 in probability), column 0 being the CTC blank and column ``i`` the character
    ``charset[i - 1]``. Several text lines of one answer are concatenated along T in reading order.

Scores (all in nats, natural log)
    ``log_likelihood`` of a candidate is ``-ctc_loss``, the best over its written variants (case as
    given, all capitals, all small, capitalised words; with and without spaces, because handwriting
    and CTC both drop and add them). ``best_path`` is the log-probability of the single most likely
    frame labelling (greedy decoding), a reference that does not depend on any candidate. ``gap`` is
    ``(best_path - log_likelihood) / max(1, characters)``, per character of the candidate: 0 or less
    when the candidate explains the ink as well as the free reading, about 0.5-1 for one misread
    character in a short word, several for a different word. It is comparable across answer lengths,
    which lets one threshold per kind of answer decide whether a candidate "fits".

Nothing here imports Django.
"""

from __future__ import annotations

import io
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Log-probabilities under this carry no information a candidate comparison needs; clamping them makes
# the stored frames compress to a few kilobytes.
LOG_FLOOR = -16.0
_MAGIC = b"MDF1"


def classes_allowed(charset: str, characters: str) -> np.ndarray:
    """Which of a recogniser's classes (the CTC blank, then ``charset``) a box that can hold only
    ``characters`` may emit: a bool array ``[len(charset) + 1]``, the blank always allowed."""
    allowed = np.zeros(len(charset) + 1, bool)
    allowed[0] = True
    allowed[[i + 1 for i, char in enumerate(charset) if char in characters]] = True
    return allowed


@dataclass(frozen=True)
class Frames:
    """A recogniser's per-frame log-probabilities for one answer; see the module docstring."""

    log_probs: np.ndarray  # [T, C], natural log, column 0 the CTC blank
    charset: str           # column i (i >= 1) is charset[i - 1]

    def __post_init__(self) -> None:
        if self.log_probs.ndim != 2 or self.log_probs.shape[1] != len(self.charset) + 1:
            raise ValueError(f"log_probs must be [T, {len(self.charset) + 1}], got {list(self.log_probs.shape)}")

    @property
    def best_path(self) -> float:
        """The log-probability of the most likely frame labelling (greedy CTC decoding)."""
        return float(self.log_probs.max(axis=1).sum()) if len(self.log_probs) else 0.0

    def to_bytes(self) -> bytes:
        """A compact serialisation (float16, clamped at :data:`LOG_FLOOR`, zlib) for storage."""
        buffer = io.BytesIO()
        np.save(buffer, np.maximum(self.log_probs, LOG_FLOOR).astype(np.float16), allow_pickle=False)
        charset = self.charset.encode()
        return _MAGIC + len(charset).to_bytes(4, "little") + charset + zlib.compress(buffer.getvalue(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frames:
        """Read :meth:`to_bytes` output back; ValueError for anything else."""
        if not data or data[:4] != _MAGIC:
            raise ValueError("not a stored frames record")
        size = int.from_bytes(data[4:8], "little")
        try:
            charset = data[8:8 + size].decode()
            # Bounded: a frame record is tens of kilobytes; refuse anything that inflates absurdly.
            inflater = zlib.decompressobj()
            raw = inflater.decompress(data[8 + size:], 64 << 20)
            if inflater.unconsumed_tail:
                raise ValueError("frames record too large")
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except (UnicodeDecodeError, zlib.error, EOFError, OSError) as error:
            raise ValueError(f"damaged frames record: {error}") from error
        return cls(array.astype(np.float32), charset)

    def spaces_as_gaps(self) -> Frames:
        """These frames with a space counted as no character: for numbers and symbols, where a gap
        the recogniser reads as a space ("6 0") means nothing."""
        if " " not in self.charset:
            return self
        space = self.charset.index(" ") + 1
        log_probs = self.log_probs.copy()
        log_probs[:, 0] = np.logaddexp(log_probs[:, 0], log_probs[:, space])
        log_probs[:, space] = LOG_FLOOR
        return Frames(log_probs, self.charset)

    def restricted(self, characters: str) -> Frames:
        """These frames as the recogniser would give them if the box could hold only ``characters``
        (and no character): every other character's probability is moved, in proportion, onto those
        left. Restricting twice equals restricting once to the smaller set, so frames read under one
        character set can be narrowed later (a roster's IDs are letters and digits of a known few)."""
        kept = np.where(classes_allowed(self.charset, characters), self.log_probs, -np.inf)
        norm = np.logaddexp.reduce(kept, axis=1, keepdims=True)
        return Frames(np.maximum(kept - norm, LOG_FLOOR).astype(np.float32), self.charset)

    @classmethod
    def concatenate(cls, parts: Sequence[Frames]) -> Frames:
        """The frames of several lines of one answer, in reading order."""
        if not parts:
            raise ValueError("no frames to concatenate")
        charsets = {part.charset for part in parts}
        if len(charsets) > 1:
            raise ValueError("frames from different charsets cannot be joined")
        return cls(np.concatenate([part.log_probs for part in parts], axis=0), parts[0].charset)


@dataclass(frozen=True)
class Fit:
    """How well one candidate explains the ink: see the module docstring for the units."""

    text: str
    log_likelihood: float
    gap: float


def text_variants(text: str) -> list[str]:
    """The ways ``text`` may be written: as given, capitals, small letters, capitalised words, each
    with single spaces and without spaces; accents dropped (pens and recognisers drop them)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    spaced = " ".join(plain.split())
    variants = []
    for form in (spaced, spaced.upper(), spaced.lower(), spaced.title()):
        for spacing in (form, form.replace(" ", "")):
            if spacing and spacing not in variants:
                variants.append(spacing)
    return variants


def candidates_fit(*, frames: Frames, candidates: Sequence[str]) -> list[Fit]:
    """Each candidate's fit to ``frames`` (best over :func:`text_variants`), in the order given.

    A candidate with no character the recogniser knows (or empty) gets ``-inf`` and an infinite gap.
    """
    return frames_fit(frames=[frames], candidates=[list(candidates)])[0]


def frames_fit(*, frames: Sequence[Frames], candidates: Sequence[Sequence[str]]) -> list[list[Fit]]:
    """:func:`candidates_fit` for many answers at once (one batched CTC computation)."""
    import torch

    jobs: list[tuple[int, int, list[int]]] = []  # (answer, candidate, label indices)
    for answer, (answer_frames, texts) in enumerate(zip(frames, candidates, strict=True)):
        lookup = {char: index + 1 for index, char in enumerate(answer_frames.charset)}
        for number, text in enumerate(texts):
            seen = set()
            for variant in text_variants(text):
                labels = [lookup[c] for c in variant if c in lookup]
                key = tuple(labels)
                if labels and key not in seen and len(answer_frames.log_probs):
                    seen.add(key)
                    jobs.append((answer, number, labels))
    best = [[-np.inf] * len(texts) for texts in candidates]
    if jobs:
        longest = max(len(f.log_probs) for f in frames)
        classes = max(f.log_probs.shape[1] for f in frames)
        # Shorter answers are padded with blanks; ctc_loss reads only each one's own length.
        stacked = np.full((len(frames), longest, classes), LOG_FLOOR, np.float32)
        for number, answer_frames in enumerate(frames):
            t, c = answer_frames.log_probs.shape
            stacked[number, :t, :c] = answer_frames.log_probs
        log_probs = torch.from_numpy(stacked)
        for start in range(0, len(jobs), 4096):
            chunk = jobs[start:start + 4096]
            rows = torch.tensor([job[0] for job in chunk])
            inputs = log_probs[rows].transpose(0, 1)  # [T, N, C] as ctc_loss wants
            lengths = torch.tensor([len(frames[job[0]].log_probs) for job in chunk])
            target_lengths = torch.tensor([len(job[2]) for job in chunk])
            targets = torch.tensor([label for job in chunk for label in job[2]])
            losses = torch.nn.functional.ctc_loss(inputs, targets, lengths, target_lengths, blank=0,
                                                  reduction="none", zero_infinity=False)
            for (answer, number, _), loss in zip(chunk, losses.tolist(), strict=True):
                best[answer][number] = max(best[answer][number], -loss)
    results = []
    for answer_frames, texts, scores in zip(frames, candidates, best, strict=True):
        reference = answer_frames.best_path
        results.append([
            Fit(text, score, (reference - score) / max(1, len(text.replace(" ", ""))) if np.isfinite(score) else np.inf)
            for text, score in zip(texts, scores, strict=True)])
    return results


def word_spans(frames: Frames) -> list[tuple[int, int, str]]:
    """The words of the free reading with the frames each was read from: ``(start, end, word)``,
    frames ``[start, end)``, split where the best path reads a space (two lines of one answer count as
    one line here, as in reading)."""
    best = frames.log_probs.argmax(axis=1)
    space = frames.charset.index(" ") + 1 if " " in frames.charset else -1
    spans, start, letters, previous = [], 0, [], 0
    for position, label in enumerate(best.tolist()):
        if label == space:
            if letters:
                spans.append((start, position, "".join(letters)))
            start, letters, previous = position + 1, [], 0
            continue
        if label != 0 and label != previous:
            letters.append(frames.charset[label - 1])
        previous = label
    if letters:
        spans.append((start, len(best), "".join(letters)))
    return spans
