"""The ``RUBRIC`` sheet of the answer-key spreadsheet: rubric questions' rubrics, imported and exported.

One row per dimension, the header in the first row (case and spaces ignored)::

    QUESTION | RUBRIC  | TASK                          | DIMENSION    | MAX | LEVELS
    Q5       | Explain | Explain why we have seasons.  | Content      | 4   | 4 exceptional: every cause, each explained
                                                                              2 fair: one cause
    Q5       | Explain |                               | Organisation | 3   | 3 clear: one idea a paragraph

Rows with the same QUESTION make its rubric, dimensions in row order; RUBRIC (the rubric's name) and
TASK are read from the question's first row. LEVELS holds one level a line (or separated by ";"):
points, a label, then optionally a colon and a description. A question's rubric is saved among the
importing teacher's rubrics under its name (replacing that rubric's dimensions, which is refused once
answers are scored by it with other dimensions) and the question is marked by it. All or nothing:
any problem refuses the whole sheet with every problem named by row.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font

from grader.models import Exam, User

from . import services
from .levels import levels_parse
from .models import QuestionRubric, Rubric

SHEET = "RUBRIC"
HEADERS = ("QUESTION", "RUBRIC", "TASK", "DIMENSION", "MAX", "LEVELS")
MAX_ROWS = 2_000


class RubricSheetError(ValueError):
    """The RUBRIC sheet cannot be imported; ``problems`` say why, by row. Nothing was imported."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass
class _Question:
    label: str
    row: int
    name: str
    task: str
    dimensions: list[services.DimensionSpec] = field(default_factory=list)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def rubric_sheet_read(data: bytes) -> list[_Question] | None:
    """The rubric questions of a workbook's RUBRIC sheet (None when it has none); RubricSheetError on problems."""
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds on a file that is not an .xlsx workbook
        raise RubricSheetError(["The file is not an Excel .xlsx workbook."]) from error
    name = next((title for title in workbook.sheetnames if title.strip().upper() == SHEET), None)
    if name is None:
        return None
    sheet = workbook[name]
    sheet.reset_dimensions()
    rows = sheet.iter_rows(values_only=True)
    header = [_text(cell).upper().replace(" ", "") for cell in next(rows, ())]
    missing = [h for h in HEADERS if h not in header and h not in ("TASK", "LEVELS")]
    if missing:
        raise RubricSheetError([f"RUBRIC sheet, row 1: missing column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(missing)} (expected {', '.join(HEADERS)})."])
    at = {h: header.index(h) for h in HEADERS if h in header}
    questions: dict[str, _Question] = {}
    problems: list[str] = []
    for number, row in enumerate(rows, start=2):
        if number > MAX_ROWS + 1:
            raise RubricSheetError([f"RUBRIC sheet: more than {MAX_ROWS} rows."])
        cells = {h: _text(row[i]) if i < len(row) else "" for h, i in at.items()}
        if not any(cells.values()):
            continue
        label, dimension = cells["QUESTION"], cells["DIMENSION"]
        if not label or not dimension:
            problems.append(f"RUBRIC sheet, row {number}: QUESTION and DIMENSION are both needed.")
            continue
        question = questions.setdefault(label, _Question(label=label, row=number, name=cells["RUBRIC"] or label,
                                                         task=cells.get("TASK", "")))
        try:
            maximum = Decimal(cells["MAX"].replace(",", "."))
            if not maximum.is_finite():
                raise ArithmeticError
            levels = levels_parse(cells.get("LEVELS", "").replace(";", "\n"), dimension=dimension)
        except (ArithmeticError, ValueError) as error:
            text = str(error) if isinstance(error, services.RubricRefused) else f"MAX “{cells['MAX']}” is not a number."
            problems.append(f"RUBRIC sheet, row {number}: {text}")
            continue
        question.dimensions.append(services.DimensionSpec(name=dimension, max_points=maximum, levels=levels))
    if problems:
        raise RubricSheetError(problems)
    return list(questions.values())


@transaction.atomic
def rubric_sheet_import(*, exam: Exam, user: User, data: bytes) -> list[str] | None:
    """Import the RUBRIC sheet of ``data`` into ``exam`` (see the module doc); returns the question labels
    marked by a rubric now, or None when the workbook has no RUBRIC sheet."""
    questions = rubric_sheet_read(data)
    if questions is None:
        return None
    known = {question.label: question for question in exam.questions.all()}
    problems = [f"RUBRIC sheet, row {q.row}: the answer key has no question {q.label}." for q in questions
                if q.label not in known]
    done = []
    for question in questions:
        if question.label not in known:
            continue
        try:
            existing = Rubric.objects.filter(owner=user, name=question.name).first()
            rubric = services.rubric_save(owner=user, name=question.name, dimensions=question.dimensions,
                                          rubric_id=existing.pk if existing else None)
            services.question_rubric_set(question_id=known[question.label].pk, rubric_id=rubric.pk,
                                         task=question.task, user=user)
            done.append(question.label)
        except services.RubricRefused as refused:
            problems.append(f"RUBRIC sheet, row {question.row} ({question.label}): {refused}")
    if problems:
        transaction.set_rollback(True)
        raise RubricSheetError(problems)
    return done


def rubric_sheet_add(workbook: Workbook, *, exam: Exam) -> int:
    """Add the exam's rubric questions to ``workbook`` as a RUBRIC sheet; returns the rows written."""
    sheet = workbook.create_sheet(SHEET)
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    rows = 0
    links = (QuestionRubric.objects.filter(question__exam=exam).select_related("question", "rubric")
             .order_by("question__order", "question__label"))
    for link in links:
        for number, dimension in enumerate(link.rubric.dimensions.all()):
            levels = "\n".join(f"{level['points']} {level['label']}" + (f": {level['description']}" if level["description"] else "")
                               for level in dimension.levels)
            sheet.append([link.question.label, link.rubric.name, link.task if number == 0 else "", dimension.name,
                          float(dimension.max_points), levels])
            rows += 1
    for letter, width in zip("ABCDEF", (10, 20, 40, 18, 6, 60), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    return rows


def rubric_workbook(*, exam: Exam) -> bytes:
    """A workbook holding only the exam's RUBRIC sheet."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    rubric_sheet_add(workbook, exam=exam)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


TEMPLATE_NOTES = (
    "RUBRIC sheet (optional): questions marked by a rubric instead of a key answer, one row per dimension.",
    "QUESTION, RUBRIC (its name), TASK (what the students were asked), DIMENSION, MAX (points), LEVELS.",
    "LEVELS: one level a line, 'POINTS LABEL: description', e.g. '4 exceptional: every cause, each explained'.",
    "Example: Q5 | Explain | Explain why we have seasons. | Content | 4 | 4 exceptional: ... (then a row for "
    "Organisation, one for Language).",
)


def rubric_sheet_template_add(data: bytes) -> bytes:
    """The answer-key template ``data`` (.xlsx) with an empty RUBRIC sheet (its header) and how to fill
    it in added to its notes sheet: a template imported as it is marks no question by a rubric."""
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.create_sheet(SHEET)
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDEF", (10, 20, 40, 18, 6, 60), strict=True):
        sheet.column_dimensions[letter].width = width
    notes = workbook["How to fill in"] if "How to fill in" in workbook.sheetnames else workbook.create_sheet("How to fill in")
    for note in TEMPLATE_NOTES:
        notes.append([note])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
