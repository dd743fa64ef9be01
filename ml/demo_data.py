"""Generate a realistic demo exam folder: a printed test, a class roster, an answer key and
a PDF of scanned, handwritten scripts, plus the ground truth needed to check the grader.

Plain Python (no Django) so the ``demo`` and ``grade_folder`` management commands and the
tests for alignment, OCR and identity matching can all share it.

Conventions used in every file below:

* Pages are 0-based.
* "Template px" are pixels of a template page rendered at ``TEMPLATE_DPI`` (150 dpi), where an
  A4 page is 1240 x 1754 px and ``px = round(mm * dpi / 25.4)``.
* "Scan px" are pixels of a page of ``scans.pdf`` rendered at ``DemoConfig.dpi`` (also 150 by
  default, so both spaces have the same size).
* Boxes in ``truth.json`` are ``[x1, y1, x2, y2]`` with ``x2``/``y2`` exclusive; boxes in
  ``annotations.json`` are ``{"x", "y", "width", "height", "label"}`` (the seed format).

Files written by :func:`demo_build` into ``out_dir``:

``template.pdf``
    The blank printed test, 2 A4 pages. Every answer box is a thin dark rectangle whose outer
    edge is exactly the annotated rectangle.
``annotations.json``
    ``{"0": [{"x": int, "y": int, "width": int, "height": int, "label": "NAME"}, ...], "1": [...]}``:
    keys are template page indexes as strings, values in template px; labels are NAME, ID,
    CLASS (page 0) and Q1..Q12.
``roster.xlsx``
    Sheet "Roster", header ``ID, NAME, CLASS, EMAIL``, one row per student (IDs S1001, S1002...).
``answers.xlsx``
    Sheet "Answers", header ``QUESTION, ANSWER, MAX_SCORE, ACCEPT``; ``QUESTION`` is the box
    label (Q1..), ``ACCEPT`` holds other accepted answers separated by ``|`` (may be empty).
    Sheet "RUBRIC" (``grader.rubrics.sheets``' format): Q11 is also marked by a rubric
    (``RUBRIC_DIMENSIONS``: content, organisation, language, adding up to its max score), with the
    comments a teacher would give (``RUBRIC_COMMENTS``).
``scans.pdf``
    One 2-page script per present student, in a shuffled pile order (as a teacher would feed
    them into a scanner). With ``blank_backs`` every scanned page is followed by a nearly blank
    duplex back page. Each page is a JPEG image sized to A4 at ``DemoConfig.dpi``.
``truth.json``
    What the generator did, for tests::

        {"dpi": 150,                      # scan dpi
         "template_dpi": 150,
         "template_pages": 2,
         "seed": 7,
         "students": ["S1001", ...],      # roster order
         "absent": ["S1006", ...],        # roster students with no script
         "scan_page_count": 56,
         "blank_back_pages": [1, 3, ...], # 0-based scans.pdf pages that are duplex backs
         "scripts": [{                    # in scans.pdf order
             "student_id": "S1004", "student_name": "Wei Chen",
             "written_name": "Chen Wei", "name_variant": "exact|misspelt|swapped",
             "written_id": "S1004", "id_variant": "exact|wrong_digit",
             "written_class": "9 A", "font": "Humor-Sans.ttf", "ability": 0.72,
             "scan_pages": [0, 1],        # scans.pdf pages holding template pages 0, 1
             "pages": [{"template_page": 0, "scan_page": 0, "jpeg_quality": 71,
                        "transform": [[a, b, tx], [c, d, ty]]}],  # template px -> scan px
             "fields": [...],             # NAME, ID, CLASS; keys as answers minus kind/blank
             "answers": [{"label": "Q1", "text": "Na", "blank": false,
                          "kind": "correct|misspelt|wrong|blank", "template_page": 0,
                          "box": [x1, y1, x2, y2],         # template px, the printed box
                          "scan_box": [x1, y1, x2, y2],    # scan px, bbox of the box's
                                                           # transformed corners
                          "ink_box": [x1, y1, x2, y2],     # template px, written ink (null if blank)
                          "scan_ink_box": [x1, y1, x2, y2]}]}]}  # scan px (null if blank)

``transform`` is an OpenCV-style 2x3 affine: ``[x_scan, y_scan] = T @ [x, y, 1]`` for template
px ``(x, y)``; it combines the template -> scan dpi scale with the simulated scanner's shift,
rotation and scale. ``text`` is exactly what was written (in capitals for fonts in
``CAPITALS_ONLY_FONTS``; empty when blank). ``kind`` describes correctness: ``correct`` answers
may be an accepted alternative or, for sentence questions, a paraphrase of the key;
``misspelt`` is a correct answer with one typo. ``name_variant`` "misspelt" means one letter of
the first or last name dropped, swapped, doubled or changed; "swapped" means "Last First".
"""

from __future__ import annotations

import argparse
import html
import json
import math
import random
import time
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pypdfium2 as pdfium
import weasyprint
from PIL import Image, ImageDraw, ImageFont

TEMPLATE_DPI = 150
A4_MM = (210.0, 297.0)
TEMPLATE_PAGES = 2

SCHOOL = "Northfield Secondary School"
TITLE = "Year 9 Science \u2014 End of Term Test"
EXAM_DATE = date(2025, 6, 27)
TEST_DATE = f"{EXAM_DATE:%A} {EXAM_DATE.day} {EXAM_DATE:%B %Y}"
TIME_ALLOWED = "40 minutes"


@dataclass(frozen=True)
class DemoConfig:
    """Size and randomness of a demo set.

    ``blank_backs`` inserts a nearly blank duplex back page after every scanned page;
    ``dpi`` is the resolution of the scanned pages (template boxes stay at ``TEMPLATE_DPI``).
    """

    students: int = 30
    absent: int = 2
    seed: int = 7
    blank_backs: bool = False
    dpi: int = 150


@dataclass(frozen=True)
class Question:
    """One printed question and its answer key.

    ``accept`` lists other answers a grader should accept; ``paraphrases`` are differently
    worded correct answers the simulated students write (they are not in the key, so a
    grader needs semantic matching for them); ``wrong`` are plausible wrong answers.
    ``box_size`` is the answer box size: "short" (numbers, symbols), "word" or "sentence".
    """

    label: str
    text: str
    answer: str
    max_score: int
    box_size: str
    wrong: tuple[str, ...]
    accept: tuple[str, ...] = ()
    paraphrases: tuple[str, ...] = ()


QUESTIONS: tuple[Question, ...] = (
    Question("Q1", "What is the chemical symbol for sodium?", "Na", 1, "short",
             wrong=("So", "S", "Sd", "N")),
    Question("Q2", "What gas do plants absorb for photosynthesis?", "carbon dioxide", 1, "word",
             wrong=("oxygen", "nitrogen", "hydrogen"), accept=("CO2", "CO\u2082")),
    Question("Q3", "How many bones are there in the adult human body?", "206", 1, "short",
             wrong=("205", "212", "306", "106")),
    Question("Q4", "A car covers 120 km in 2 hours. What is its speed in km/h?", "60", 1, "short",
             wrong=("240", "30", "62", "120"), accept=("60 km/h",)),
    Question("Q5", "Why do we see lightning before we hear thunder?",
             "light travels faster than sound", 2, "sentence",
             wrong=("because lightning happens first", "thunder is further away than lightning",
                    "sound travels faster than light"),
             accept=("light is faster than sound",),
             paraphrases=("because light is faster than sound",
                          "light moves much faster than sound does")),
    Question("Q6", "What is the boiling point of water at sea level, in \u00b0C?", "100", 1, "short",
             wrong=("0", "90", "212", "110"), accept=("100C",)),
    Question("Q7", "Simplify the fraction 6/8.", "3/4", 1, "short",
             wrong=("2/3", "3/8", "1/2", "4/6"), accept=("0.75",)),
    Question("Q8", "Find x if 2x + 3 = 11.", "4", 1, "short",
             wrong=("7", "5", "8", "x=7"), accept=("x=4", "x = 4")),
    Question("Q9", "Which part of a cell releases energy by respiration?", "mitochondria", 1, "word",
             wrong=("nucleus", "ribosome", "chloroplast", "cell membrane"),
             accept=("mitochondrion",)),
    Question("Q10", "What is the unit of electrical resistance?", "ohm", 1, "word",
             wrong=("volt", "amp", "watt", "coulomb"), accept=("ohms", "\u03a9")),
    Question("Q11", "Explain why metals are good conductors of electricity.",
             "they have free electrons that can move", 2, "sentence",
             wrong=("because they are hard and shiny", "metals are magnetic",
                    "the atoms are very close together"),
             accept=("free electrons", "delocalised electrons"),
             paraphrases=("metals have electrons that are free to move",
                          "the electrons in metals can move freely")),
    Question("Q12", "What force pulls objects towards the centre of the Earth?", "gravity", 1, "word",
             wrong=("friction", "magnetism", "air resistance", "upthrust"),
             accept=("gravitational force",)),
)

TOTAL_MARKS = sum(q.max_score for q in QUESTIONS)

# The demo's rubric question, its rubric (dimension, max points, level descriptors) and the comments a
# teacher gives on it: the first for answers worth full marks, the second for the others.
RUBRIC_QUESTION = "Q11"
RUBRIC_NAME = "Explain (content, organisation, language)"
RUBRIC_DIMENSIONS: tuple[tuple[str, float, str], ...] = (
    ("Content", 1, "1 exceptional: names the free (delocalised) electrons and says they carry the charge\n"
                   "0.5 fair: mentions electrons without saying why they conduct"),
    ("Organisation", 0.5, "0.5 clear: one idea, stated as a reason"),
    ("Language", 0.5, "0.5 precise: scientific words used correctly"),
)
RUBRIC_COMMENTS = ("Clear and complete: free electrons carry the charge.",
                   "Say what moves: metals have free (delocalised) electrons that carry the charge.")


@dataclass(frozen=True)
class BoxMM:
    """An answer box on the template: 0-based page and outer rectangle in millimetres."""

    label: str
    page: int
    left: float
    top: float
    width: float
    height: float

    def px(self, *, dpi: int = TEMPLATE_DPI) -> tuple[int, int, int, int]:
        """The box as ``(x1, y1, x2, y2)`` pixels at ``dpi`` (x2/y2 exclusive).

        Edges are rounded individually so the rectangle lands on the drawn border.
        """
        return (_mm_to_px(self.left, dpi), _mm_to_px(self.top, dpi),
                _mm_to_px(self.left + self.width, dpi), _mm_to_px(self.top + self.height, dpi))


# Answer box sizes (width, height) in mm: sentences get room for two lines of handwriting.
_BOX_SIZE_MM = {"short": (45.0, 15.0), "word": (75.0, 15.0), "sentence": (171.0, 26.0)}
_QUESTION_LEFT_MM = 24.0
_TEXT_TO_BOX_MM = 6.5   # question text line (11pt, ~4.7 mm tall) sits above its box
_BOX_TO_NEXT_MM = 6.0
# (template page, slice of QUESTIONS printed on it, top of its first question's text in mm).
_QUESTION_PAGES = ((0, 0, 6, 100.0), (1, 6, 12, 27.0))

IDENTITY_BOXES: tuple[BoxMM, ...] = (
    BoxMM("NAME", 0, 45.0, 60.0, 110.0, 13.0),
    BoxMM("ID", 0, 45.0, 77.0, 50.0, 13.0),
    BoxMM("CLASS", 0, 125.0, 77.0, 30.0, 13.0),
)


def _question_layout() -> tuple[tuple[BoxMM, ...], dict[str, float]]:
    """Answer boxes and the top (mm) of each question's printed text line."""
    boxes: list[BoxMM] = []
    text_tops: dict[str, float] = {}
    for page, start, stop, top in _QUESTION_PAGES:
        for question in QUESTIONS[start:stop]:
            width, height = _BOX_SIZE_MM[question.box_size]
            text_tops[question.label] = top
            box_top = top + _TEXT_TO_BOX_MM
            boxes.append(BoxMM(question.label, page, _QUESTION_LEFT_MM, box_top, width, height))
            top = box_top + height + _BOX_TO_NEXT_MM
    return tuple(boxes), text_tops


ANSWER_BOXES, _QUESTION_TEXT_TOP_MM = _question_layout()
BOXES: tuple[BoxMM, ...] = IDENTITY_BOXES + ANSWER_BOXES
END_OF_TEST_TOP_MM = ANSWER_BOXES[-1].top + ANSWER_BOXES[-1].height + 10.0

FIRST_NAMES = (
    "Aisha", "Mateo", "Wei", "Olumide", "Priya", "Liam", "Sofia", "Hiroshi", "Amara", "Noah",
    "Fatima", "Lucas", "Mei", "Kwame", "Isabella", "Arjun", "Chloe", "Tariq", "Elena", "Dmitri",
    "Zara", "Samuel", "Yuki", "Nadia", "Oliver", "Leila", "Diego", "Hannah", "Emeka", "Ingrid",
    "Ravi", "Grace", "Omar", "Freya", "Jamal", "Ana", "Tomasz", "Ruby", "Kofi", "Saoirse",
    "Ethan", "Mariam", "Luca", "Niamh", "Hamza", "Aroha", "Felix", "Ayesha", "Jonah", "Imani",
)
LAST_NAMES = (
    "Khan", "Garcia", "Chen", "Adeyemi", "Sharma", "O'Brien", "Rossi", "Tanaka", "Okafor",
    "Williams", "Haddad", "Silva", "Nguyen", "Mensah", "Martinez", "Patel", "Dubois", "Hussain",
    "Popescu", "Ivanov", "Ahmed", "Taylor", "Sato", "Kowalski", "Brown", "Rahman", "Fernandez",
    "Schmidt", "Eze", "Larsen", "Kumar", "Thompson", "Farouk", "Murphy", "Jackson", "Costa",
    "Nowak", "Clarke", "Boateng", "Kelly", "Walker", "Yilmaz", "Bianchi", "Byrne", "Ali",
    "Ngata", "Weber", "Siddiqui", "Cohen", "Mwangi",
)
CLASSES = ("9A", "9B")
EMAIL_DOMAIN = "students.example.org"
FIRST_STUDENT_NUMBER = 1001

# Handwriting fonts the scripts are written in; any that are not installed are skipped.
# femkeklaver is left out: its capitals and digits are hollow outlines, which no pen draws.
HAND_FONTS = (
    Path("/usr/share/fonts/truetype/fifthhorseman/dkg.ttf"),
    Path("/usr/share/fonts/truetype/fifthhorseman/dkgIt.ttf"),
    Path("/usr/share/fonts/truetype/fifthhorseman/dkgBd.ttf"),
    Path("/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"),
    Path("/usr/share/fonts/truetype/breip/Breip.ttf"),
)
# Fonts without lower case: students "using" them write in capitals, and truth says so.
CAPITALS_ONLY_FONTS = frozenset({"Humor-Sans.ttf"})
# Pen colours (RGB) and how opaque a stroke of each is: pencil-grey never reaches full black.
INKS = (((22, 34, 120), 0.97), ((30, 50, 150), 0.92), ((20, 20, 26), 0.97), ((70, 70, 76), 0.85))


def _mm_to_px(mm: float, dpi: int) -> int:
    return round(mm * dpi / 25.4)


def page_size_px(*, dpi: int = TEMPLATE_DPI) -> tuple[int, int]:
    """A4 ``(width, height)`` in pixels at ``dpi``; (1240, 1754) at 150 dpi."""
    return _mm_to_px(A4_MM[0], dpi), _mm_to_px(A4_MM[1], dpi)


def annotations(*, dpi: int = TEMPLATE_DPI) -> dict[str, list[dict[str, int | str]]]:
    """The box layout in the seed annotation format (see the module docstring), at ``dpi``."""
    pages: dict[str, list[dict[str, int | str]]] = {str(p): [] for p in range(TEMPLATE_PAGES)}
    for box in BOXES:
        x1, y1, x2, y2 = box.px(dpi=dpi)
        pages[str(box.page)].append(
            {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "label": box.label})
    return pages


_CSS = """
@page { size: A4; margin: 0 }
html, body { margin: 0; padding: 0 }
body { font-family: "Liberation Serif", "DejaVu Serif", serif; color: #111; font-size: 11pt }
.page { position: relative; width: 210mm; height: 297mm; overflow: hidden; break-after: page }
.page:last-child { break-after: auto }
.abs { position: absolute; white-space: nowrap; line-height: 1.2 }
.sans { font-family: "Liberation Sans", "DejaVu Sans", sans-serif }
.box { position: absolute; box-sizing: border-box; border: 0.3mm solid #222 }
.rule { position: absolute; left: 15mm; width: 180mm; height: 0; border-top: 0.4mm solid #333 }
.crest { position: absolute; left: 15mm; top: 9mm; width: 17mm; height: 17mm;
         box-sizing: border-box; border: 0.6mm solid #1d2f5e; border-radius: 50%;
         color: #1d2f5e; font: bold 10pt "Liberation Sans", sans-serif;
         text-align: center; line-height: 15.8mm }
.school { left: 0; width: 210mm; top: 11mm; text-align: center; font-size: 17pt;
          font-weight: bold; letter-spacing: 0.2mm; color: #1d2f5e }
.title { left: 0; width: 210mm; top: 20mm; text-align: center; font-size: 14pt; font-weight: bold }
.meta { left: 0; width: 210mm; top: 29mm; text-align: center; font-size: 10.5pt }
.instructions { left: 15mm; top: 40mm; width: 180mm; font-size: 9.5pt; line-height: 4.6mm;
                white-space: normal }
.label { font-size: 11pt; font-weight: bold }
.qnum { font-weight: bold }
.marks { width: 20mm; text-align: right }
.running { left: 15mm; top: 10mm; font-size: 9pt; color: #444 }
.footer { left: 0; width: 210mm; top: 285mm; text-align: center; font-size: 9pt; color: #444 }
.turn { left: 150mm; width: 45mm; top: 285mm; text-align: right; font-size: 9pt;
        font-weight: bold }
.end { left: 0; width: 210mm; text-align: center; font-size: 12pt; font-weight: bold;
       letter-spacing: 0.3mm }
"""


def _div(css_class: str, text: str, *, left: float | None = None, top: float | None = None) -> str:
    style = "".join(f"{name}:{value}mm;" for name, value in (("left", left), ("top", top))
                    if value is not None)
    return f'<div class="abs {css_class}" style="{style}">{html.escape(text)}</div>'


def _box_div(box: BoxMM) -> str:
    return (f'<div class="box" style="left:{box.left}mm;top:{box.top}mm;'
            f'width:{box.width}mm;height:{box.height}mm"></div>')


def template_html() -> str:
    """HTML/CSS of the printed test; every element is positioned absolutely in mm."""
    first = [
        '<div class="crest">NSS</div>',
        _div("sans school", SCHOOL),
        _div("title", TITLE),
        _div("meta", f"Date: {TEST_DATE}  \u00b7  Time allowed: {TIME_ALLOWED}  \u00b7  "
                     f"Total: {TOTAL_MARKS} marks"),
        '<div class="rule" style="top:36mm"></div>',
        '<div class="abs instructions"><b>Instructions.</b> Write your full name, student ID and '
        'class in the boxes below. Answer every question inside its box, in blue or black pen. '
        'The number of marks for each question is shown in brackets. Calculators are not '
        'allowed.</div>',
        _div("label", "Name", left=15, top=63.5),
        _div("label", "Student ID", left=15, top=80.5),
        _div("label", "Class", left=111, top=80.5),
        '<div class="rule" style="top:95mm"></div>',
        _div("footer", "Page 1 of 2"),
        _div("turn", "Turn over"),
    ]
    second = [
        _div("running", f"{SCHOOL} \u00b7 {TITLE}"),
        '<div class="rule" style="top:17mm"></div>',
        _div("end", "End of test", top=END_OF_TEST_TOP_MM),
        _div("footer", "Page 2 of 2"),
    ]
    pages = (first, second)
    for box in IDENTITY_BOXES:
        pages[box.page].append(_box_div(box))
    for question, box in zip(QUESTIONS, ANSWER_BOXES, strict=True):
        top = _QUESTION_TEXT_TOP_MM[question.label]
        pages[box.page].extend([
            _div("qnum", f"{question.label[1:]}.", left=15, top=top),
            _div("question", question.text, left=_QUESTION_LEFT_MM, top=top),
            _div("marks", f"[{question.max_score}]", left=175, top=top),
            _box_div(box),
        ])
    body = "".join(f'<div class="page">{"".join(items)}</div>' for items in pages)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(TITLE)}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>")


# --------------------------------------------------------------------------------------------
# Students and what they write


@dataclass(frozen=True)
class _Student:
    id: str
    first: str
    last: str
    klass: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def email(self) -> str:
        local = f"{self.first}.{self.last}"
        ascii_only = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
        return "".join(c for c in ascii_only.lower() if c.isalnum() or c == ".") + "@" + EMAIL_DOMAIN


@dataclass(frozen=True)
class _Hand:
    """One student's handwriting."""

    font: Path
    em_mm: float          # nominal font size before fitting to a box
    slant: float          # horizontal shear: positive leans the letters to the right
    wobble: float         # per-word baseline jitter as a fraction of the font size
    ink: tuple[int, int, int]
    opacity: float


def _roster(*, count: int, rng: random.Random) -> list[_Student]:
    if count > len(FIRST_NAMES) * len(LAST_NAMES):
        raise ValueError(f"at most {len(FIRST_NAMES) * len(LAST_NAMES)} students")
    names: list[tuple[str, str]] = []
    # Unique first names while they last keep a small class free of confusable names.
    firsts = rng.sample(FIRST_NAMES, min(count, len(FIRST_NAMES)))
    while len(names) < count:
        first = firsts[len(names)] if len(names) < len(firsts) else rng.choice(FIRST_NAMES)
        pair = (first, rng.choice(LAST_NAMES))
        if pair not in names:
            names.append(pair)
    classes = [CLASSES[i * len(CLASSES) // count] for i in range(count)]
    rng.shuffle(classes)
    return [_Student(f"S{FIRST_STUDENT_NUMBER + i}", first, last, klass)
            for i, ((first, last), klass) in enumerate(zip(names, classes, strict=True))]


def _misspell(text: str, *, rng: random.Random) -> str | None:
    """The text with one typo in a word of 4+ letters, or None when there is no such word."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return None
    index = rng.choice(candidates)
    word = words[index]
    # Keep the first letter: people rarely get that wrong, and it keeps the typo plausible.
    pos = rng.randrange(1, len(word) - 1)
    operation = rng.choice(("drop", "swap", "double", "vowel"))
    if operation == "drop":
        typo = word[:pos] + word[pos + 1:]
    elif operation == "swap":
        typo = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2:]
    elif operation == "double":
        typo = word[:pos] + word[pos] + word[pos:]
    else:
        vowels = [i for i in range(1, len(word)) if word[i] in "aeiou"]
        at = rng.choice(vowels) if vowels else pos
        typo = word[:at] + rng.choice([v for v in "aeiou" if v != word[at]]) + word[at + 1:]
    if typo == word:
        typo = word[:pos] + word[pos + 1:]
    words[index] = typo
    return " ".join(words)


def _answer(question: Question, *, ability: float, rng: random.Random) -> tuple[str, str]:
    """``(kind, text)`` one simulated student writes for a question."""
    # Weaker students leave more boxes empty; this averages roughly 6% blanks per class.
    p_blank = 0.03 + 0.08 * (1.0 - ability)
    roll = rng.random()
    if roll < p_blank:
        return "blank", ""
    if roll < p_blank + (1.0 - p_blank) * ability:
        writable = [a for a in question.accept if a.isascii()] + list(question.paraphrases)
        text = rng.choice(writable) if writable and rng.random() < 0.3 else question.answer
        if rng.random() < 0.2:
            typo = _misspell(text, rng=rng)
            if typo is not None:
                return "misspelt", typo
        return "correct", text
    return "wrong", rng.choice(question.wrong)


def _wrong_digit_id(student_id: str, *, taken: set[str], rng: random.Random) -> str:
    """The ID with one digit miswritten, never producing another student's real ID."""
    while True:
        pos = rng.randrange(1, len(student_id))
        digit = rng.choice([d for d in "0123456789" if d != student_id[pos]])
        written = student_id[:pos] + digit + student_id[pos + 1:]
        if written not in taken:
            return written


# --------------------------------------------------------------------------------------------
# Handwriting


@lru_cache(maxsize=512)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _split_lines(words: list[str], lines: int, font: ImageFont.FreeTypeFont) -> list[list[str]]:
    if lines == 1:
        return [words]
    # Break where the two lines are closest in length, as people do when they run out of room.
    best = min(range(1, len(words)),
               key=lambda i: max(font.getlength(" ".join(words[:i])),
                                 font.getlength(" ".join(words[i:]))))
    return [words[:best], words[best:]]


def _ink_patch(lines: list[list[str]], *, font: ImageFont.FreeTypeFont, hand: _Hand,
               rng: random.Random) -> Image.Image:
    """An "L" image of the written lines (255 = full ink), cropped to the ink."""
    size = font.size
    space = font.getlength(" ")
    line_height = size * 1.2
    pad = size
    width = max(sum(font.getlength(w) for w in line) + 1.6 * space * len(line) for line in lines)
    canvas = Image.new("L", (math.ceil(width + 2 * pad), math.ceil(line_height * len(lines) + 2 * pad)))
    draw = ImageDraw.Draw(canvas)
    for row, words in enumerate(lines):
        x = pad + rng.uniform(0, 0.5) * space
        baseline = pad + size + row * line_height
        for word in words:
            draw.text((x, baseline + rng.uniform(-1, 1) * hand.wobble * size), word,
                      font=font, fill=255, anchor="ls")
            x += font.getlength(word) + space * rng.uniform(0.8, 1.5)
    if hand.slant:
        # Affine maps output to input: x_in = x + slant * (y - h/2) leans the top rightwards.
        h = canvas.height
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                                  (1, hand.slant, -hand.slant * h / 2, 0, 1, 0),
                                  resample=Image.Resampling.BILINEAR)
    bbox = canvas.getbbox()
    if bbox is None:
        raise ValueError(f"font {hand.font.name} drew nothing for {lines!r}")
    return canvas.crop(bbox)


def _fit_patch(words: list[str], *, room: tuple[int, int], hand: _Hand, size: float,
               rng: random.Random) -> Image.Image:
    """Ink for ``words`` no larger than ``room`` (w, h) px, starting at font size ``size`` px."""
    while size >= 6:
        font = _font(hand.font, round(size))
        # Write at the natural size first; only wrap, then shrink, when the box is too small.
        for line_count in (1, 2) if len(words) > 1 else (1,):
            patch = _ink_patch(_split_lines(words, line_count, font), font=font, hand=hand, rng=rng)
            if patch.width <= room[0] and patch.height <= room[1]:
                return patch
        size *= 0.92
    raise ValueError(f"{' '.join(words)!r} does not fit a box of {room[0]}x{room[1]} px")


def _write_in_box(page: np.ndarray, *, box: tuple[int, int, int, int], text: str, hand: _Hand,
                  dpi: int, rng: random.Random) -> tuple[int, int, int, int]:
    """Write ``text`` into ``box`` (page px) of an RGB page array; returns the ink bbox."""
    x1, y1, x2, y2 = box
    margin = _mm_to_px(1.3, dpi)
    room_w, room_h = x2 - x1 - 2 * margin, y2 - y1 - 2 * margin
    patch = _fit_patch(text.split(), room=(room_w, room_h), hand=hand,
                       size=hand.em_mm * dpi / 25.4 * rng.uniform(0.92, 1.08), rng=rng)
    slack_x, slack_y = room_w - patch.width, room_h - patch.height
    # Most people start writing near the left edge; some centre short answers.
    across = rng.uniform(0.0, 0.2) if rng.random() < 0.75 else rng.uniform(0.3, 0.6)
    left = x1 + margin + round(slack_x * across)
    top = y1 + margin + round(slack_y * rng.uniform(0.25, 0.8))
    alpha = np.asarray(patch, dtype=np.float32)[..., None] * (hand.opacity / 255.0)
    region = page[top:top + patch.height, left:left + patch.width]
    ink = np.asarray(hand.ink, dtype=np.float32)
    region[:] = (region * (1.0 - alpha) + ink * alpha).astype(np.uint8)
    return left, top, left + patch.width, top + patch.height


# --------------------------------------------------------------------------------------------
# Scanner


def _paper(shape: tuple[int, int], *, rng: np.random.Generator) -> np.ndarray:
    """Per-page paper colour (slightly cream/grey) with a faint lighting gradient, float32 RGB."""
    h, w = shape
    tint = np.array([rng.uniform(0.965, 0.99), rng.uniform(0.96, 0.985), rng.uniform(0.93, 0.97)],
                    dtype=np.float32)
    gradient = np.linspace(1.0, 1.0 - rng.uniform(0.0, 0.03), w, dtype=np.float32)
    if rng.random() < 0.5:
        gradient = gradient[::-1]
    return tint[None, None, :] * gradient[None, :, None] * np.ones((h, 1, 1), np.float32)


def _finish_scan(image: np.ndarray, *, rng: np.random.Generator) -> Image.Image:
    """Paper tint, optics blur and sensor noise on a float32 RGB page in 0..255."""
    image = image * _paper(image.shape[:2], rng=rng)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 0.9))
    noise = rng.standard_normal(image.shape[:2], dtype=np.float32) * rng.uniform(2.5, 5.0)
    image += noise[..., None]
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def _scan(page: np.ndarray, *, dpi: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Simulate a feeder scanner; returns the scan and the 2x3 affine page px -> scan px."""
    h, w = page.shape[:2]
    max_shift = 20.0 * dpi / TEMPLATE_DPI
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-1.5, 1.5), rng.uniform(0.98, 1.02))
    matrix[:, 2] += rng.uniform(-max_shift, max_shift, 2)
    warped = cv2.warpAffine(page, matrix, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
    return _finish_scan(warped.astype(np.float32), rng=rng), matrix


def _blank_back(front: Image.Image, *, rng: np.random.Generator) -> Image.Image:
    """The duplex back of a sheet: paper and noise, sometimes faint show-through of the front."""
    w, h = front.size
    back = np.full((h, w, 3), 255.0, dtype=np.float32)
    if rng.random() < 0.6:
        mirrored = np.asarray(front.convert("L").transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                              dtype=np.float32)
        # Paper lets through a few percent of the darkness, diffused by its fibres.
        darkness = cv2.GaussianBlur(255.0 - mirrored, (0, 0), 1.8) * rng.uniform(0.05, 0.11)
        back -= darkness[..., None]
    return _finish_scan(back, rng=rng)


def _apply(matrix: np.ndarray, box: tuple[float, float, float, float]) -> list[int]:
    """Bounding box ``[x1, y1, x2, y2]`` of the four box corners mapped by a 2x3 affine."""
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], dtype=np.float64)
    mapped = corners @ matrix.T
    return [math.floor(mapped[:, 0].min()), math.floor(mapped[:, 1].min()),
            math.ceil(mapped[:, 0].max()), math.ceil(mapped[:, 1].max())]


# --------------------------------------------------------------------------------------------
# Files


def _write_template(path: Path) -> None:
    weasyprint.HTML(string=template_html()).write_pdf(path)


def _render_template(path: Path, *, dpi: int) -> list[np.ndarray]:
    width, height = page_size_px(dpi=dpi)
    document = pdfium.PdfDocument(path)
    try:
        # PDFium rounds the page size up (1241 px wide at 150 dpi); cropping the extra column
        # keeps the mm -> px formula exact without resampling.
        return [np.array(document[i].render(scale=dpi / 72).to_pil().convert("RGB")
                         .crop((0, 0, width, height)))
                for i in range(len(document))]
    finally:
        document.close()


def _write_roster(path: Path, students: list[_Student]) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Roster"
    sheet.append(["ID", "NAME", "CLASS", "EMAIL"])
    for student in students:
        sheet.append([student.id, student.name, student.klass, student.email])
    for column, width in zip("ABCD", (10, 24, 8, 40), strict=True):
        sheet.column_dimensions[column].width = width
    workbook.save(path)


def _write_answer_key(path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Answers"
    sheet.append(["QUESTION", "ANSWER", "MAX_SCORE", "ACCEPT"])
    for question in QUESTIONS:
        sheet.append([question.label, question.answer, question.max_score, "|".join(question.accept)])
    for column, width in zip("ABCD", (10, 40, 11, 40), strict=True):
        sheet.column_dimensions[column].width = width
    rubric = workbook.create_sheet("RUBRIC")
    rubric.append(["QUESTION", "RUBRIC", "TASK", "DIMENSION", "MAX", "LEVELS"])
    task = next(question.text for question in QUESTIONS if question.label == RUBRIC_QUESTION)
    for number, (dimension, points, levels) in enumerate(RUBRIC_DIMENSIONS):
        rubric.append([RUBRIC_QUESTION, RUBRIC_NAME, task if number == 0 else "", dimension, points, levels])
    workbook.save(path)


def _hand(rng: random.Random, fonts: list[Path]) -> _Hand:
    ink, opacity = rng.choice(INKS)
    return _Hand(font=rng.choice(fonts), em_mm=rng.uniform(6.0, 7.8),
                 slant=rng.choice((rng.uniform(0.05, 0.25), rng.uniform(-0.08, 0.05))),
                 wobble=rng.uniform(0.02, 0.06), ink=ink, opacity=opacity)


def _written_name(student: _Student, *, variant: str, rng: random.Random) -> tuple[str, str]:
    """``(variant, name)`` as the student writes it; falls back to "swapped" when neither
    name is long enough to misspell (e.g. "Wei Eze")."""
    if variant == "misspelt":
        parts = [student.first, student.last]
        order = rng.sample((0, 1), 2)
        for i in order:
            typo = _misspell(parts[i], rng=rng)
            if typo is not None:
                parts[i] = typo
                return variant, " ".join(parts)
        variant = "swapped"
    if variant == "swapped":
        return variant, f"{student.last} {student.first}"
    return variant, student.name


@dataclass(frozen=True)
class _Written:
    """What went into one box: ``ink`` is its bbox in page px at the scan dpi, None if blank."""

    box: BoxMM
    kind: str
    text: str
    ink: tuple[int, int, int, int] | None


def _fill_in(template_pages: list[np.ndarray], *, texts: dict[str, tuple[str, str]], hand: _Hand,
             dpi: int, rng: random.Random) -> tuple[list[np.ndarray], list[_Written]]:
    """Copies of the template pages with ``texts`` (label -> (kind, text)) handwritten in."""
    pages = [page.copy() for page in template_pages]
    written = []
    for box in BOXES:
        kind, text = texts[box.label]
        if hand.font.name in CAPITALS_ONLY_FONTS:
            text = text.upper()
        ink = None if not text else _write_in_box(
            pages[box.page], box=box.px(dpi=dpi), text=text, hand=hand, dpi=dpi, rng=rng)
        written.append(_Written(box, kind, text, ink))
    return pages, written


def _box_record(written: _Written, *, transform: np.ndarray, dpi: int) -> dict:
    """Truth for one box (see the module docstring); ``transform`` maps template -> scan px."""
    box = written.box.px()
    ink_box = None
    if written.ink is not None:
        to_template = TEMPLATE_DPI / dpi
        x1, y1, x2, y2 = written.ink
        ink_box = [math.floor(x1 * to_template), math.floor(y1 * to_template),
                   math.ceil(x2 * to_template), math.ceil(y2 * to_template)]
    return {"label": written.box.label, "text": written.text, "template_page": written.box.page,
            "box": list(box), "scan_box": _apply(transform, box), "ink_box": ink_box,
            "scan_ink_box": None if ink_box is None else _apply(transform, ink_box)}


def _without_kind(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "kind"}


def _identity_mistakes(count: int, *, rng: random.Random) -> tuple[list[str], set[int]]:
    """Name variant per script and the scripts whose ID has a wrong digit.

    Fixed numbers rather than independent coin flips, so even a 3-script set exercises the
    fuzzy name matching and a full class has "a couple" of wrong IDs.
    """
    order = rng.sample(range(count), count)
    misspelt, swapped = max(1, round(0.15 * count)), max(1, round(0.1 * count))
    variants = ["exact"] * count
    for i in order[:misspelt]:
        variants[i] = "misspelt"
    for i in order[misspelt:misspelt + swapped]:
        variants[i] = "swapped"
    return variants, set(rng.sample(range(count), min(2, count // 3)))


# Answer kinds a teacher gives full marks (a misspelt answer is a right one with a slip); others score 0.
FULL_MARK_KINDS = frozenset({"correct", "misspelt"})


def teacher_file(*, truth: dict) -> dict:
    """What the teacher of a demo build would score and confirm, in ``grade_folder --replay``'s
    ``TEACHER.json`` form: full marks for correct and misspelt answers, 0 otherwise, and the text
    exactly as written ("" for a blank box)."""
    maxima = {question.label: question.max_score for question in QUESTIONS}
    return {"scripts": [
        {"pages": script["scan_pages"], "student_id": script["student_id"],
         "answers": {answer["label"]: {"score": maxima[answer["label"]] if answer["kind"] in FULL_MARK_KINDS else 0,
                                       "text": answer["text"]}
                     for answer in script["answers"]}}
        for script in truth["scripts"]]}


def demo_build(*, out_dir: Path, config: DemoConfig = DemoConfig()) -> dict:
    """Write the demo exam folder into ``out_dir`` and return the truth dict.

    See the module docstring for every file format. The same ``config`` always produces the
    same truth (and the same page images).
    """
    if config.students < 1 or not 0 <= config.absent < config.students:
        raise ValueError("need at least one student and 0 <= absent < students")
    fonts = [path for path in HAND_FONTS if path.exists()]
    if not fonts:
        raise FileNotFoundError(f"none of the handwriting fonts is installed: {HAND_FONTS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)

    students = _roster(count=config.students, rng=rng)
    # Absent students come from the middle of the roster so "first/last is missing"
    # shortcuts in matching code cannot pass by accident.
    middle = config.absent <= config.students - 2
    pool = range(1, config.students - 1) if middle else range(config.students)
    absent_index = set(rng.sample(pool, config.absent))
    present = [s for i, s in enumerate(students) if i not in absent_index]
    rng.shuffle(present)

    name_variant, wrong_ids = _identity_mistakes(len(present), rng=rng)

    _write_template(out_dir / "template.pdf")
    (out_dir / "annotations.json").write_text(json.dumps(annotations(), indent=2))
    _write_roster(out_dir / "roster.xlsx", students)
    _write_answer_key(out_dir / "answers.xlsx")
    template_pages = _render_template(out_dir / "template.pdf", dpi=config.dpi)

    taken = {s.id for s in students}
    scans_path = out_dir / "scans.pdf"
    scans_path.unlink(missing_ok=True)
    scan_count = 0
    scripts: list[dict] = []
    blank_back_pages: list[int] = []
    for index, student in enumerate(present):
        srng = random.Random(f"{config.seed}:{student.id}")
        hand = _hand(srng, fonts)
        ability = round(srng.uniform(0.3, 0.95), 3)
        variant, name = _written_name(student, variant=name_variant[index], rng=srng)
        written_id = (_wrong_digit_id(student.id, taken=taken, rng=srng) if index in wrong_ids
                      else student.id)
        klass = student.klass if srng.random() < 0.6 else f"{student.klass[:-1]} {student.klass[-1]}"
        texts = {"NAME": ("identity", name), "ID": ("identity", written_id),
                 "CLASS": ("identity", klass)}
        for question in QUESTIONS:
            texts[question.label] = _answer(question, ability=ability, rng=srng)
        pages, written = _fill_in(template_pages, texts=texts, hand=hand, dpi=config.dpi, rng=srng)

        nrng = np.random.default_rng([config.seed, index])
        page_records, transforms = [], []
        for template_page, page in enumerate(pages):
            scan, matrix = _scan(page, dpi=config.dpi, rng=nrng)
            # Compose with the template px -> page px scale so truth is in template px.
            transform = matrix @ np.diag([config.dpi / TEMPLATE_DPI] * 2 + [1.0])
            transforms.append(transform)
            quality = int(nrng.integers(55, 86))
            page_records.append({"template_page": template_page, "scan_page": scan_count,
                                 "jpeg_quality": quality,
                                 "transform": [[round(float(v), 6) for v in row] for row in transform]})
            _append_scan(scans_path, scan, quality=quality, dpi=config.dpi)
            scan_count += 1
            if config.blank_backs:
                blank_back_pages.append(scan_count)
                _append_scan(scans_path, _blank_back(scan, rng=nrng),
                             quality=int(nrng.integers(55, 86)), dpi=config.dpi)
                scan_count += 1

        records = {w.box.label: {**_box_record(w, transform=transforms[w.box.page], dpi=config.dpi),
                                 "kind": w.kind} for w in written}
        scripts.append({
            "student_id": student.id, "student_name": student.name,
            "written_name": records["NAME"]["text"], "name_variant": variant,
            "written_id": records["ID"]["text"],
            "id_variant": "wrong_digit" if index in wrong_ids else "exact",
            "written_class": records["CLASS"]["text"], "font": hand.font.name, "ability": ability,
            "scan_pages": [record["scan_page"] for record in page_records],
            "pages": page_records,
            "fields": [_without_kind(records[box.label]) for box in IDENTITY_BOXES],
            "answers": [{**records[q.label], "blank": records[q.label]["kind"] == "blank"}
                        for q in QUESTIONS],
        })

    truth = {
        "dpi": config.dpi, "template_dpi": TEMPLATE_DPI, "template_pages": TEMPLATE_PAGES,
        "seed": config.seed, "students": [s.id for s in students],
        "absent": [s.id for i, s in enumerate(students) if i in absent_index],
        "scan_page_count": scan_count, "blank_back_pages": blank_back_pages,
        "scripts": scripts,
    }
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False))
    return truth


def _append_scan(path: Path, image: Image.Image, *, quality: int, dpi: int) -> None:
    # Pages go out one at a time, each with its own JPEG quality as a scanner's
    # auto-compression would give, and memory stays at one page however large the class.
    # Empty dates keep the file byte-identical across runs with the same seed.
    image.save(path, "PDF", append=path.exists(), resolution=dpi, quality=quality,
               title="Scanned scripts", creationDate=None, modDate=None)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m ml.demo_data --out DIR [--students N] [--absent N] [--seed N]
    [--blank-backs]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.demo_data",
        description="Write a demo exam folder: template, roster, answer key, scans and truth.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the demo set into")
    parser.add_argument("--students", type=int, default=DemoConfig.students)
    parser.add_argument("--absent", type=int, default=DemoConfig.absent)
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    parser.add_argument("--blank-backs", action="store_true",
                        help="insert a nearly blank duplex back page after every scanned page")
    args = parser.parse_args(argv)
    config = DemoConfig(students=args.students, absent=args.absent, seed=args.seed,
                        blank_backs=args.blank_backs)
    started = time.perf_counter()
    truth = demo_build(out_dir=args.out, config=config)
    for name in ("template.pdf", "annotations.json", "roster.xlsx", "answers.xlsx", "scans.pdf",
                 "truth.json"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size / 1024:.0f} KiB)")
    print(f"{len(truth['scripts'])} scripts, {truth['scan_page_count']} scan pages, "
          f"absent: {', '.join(truth['absent']) or 'none'} "
          f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
