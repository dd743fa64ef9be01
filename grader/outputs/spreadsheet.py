"""The results spreadsheet of an exam (.xlsx): Scores, Answers and Questions sheets.

Scores are marks, written as numbers (format ``0.0#``); percentages are fractions in [0, 1] with a
``0.0%`` format, so Excel sorts, filters and sums them. Every sheet has a bold, frozen header row and
an autofilter. Text that came from students, engines or teachers is always stored as text, never as a
formula (a student answer "=1+1" must not compute, nor "=HYPERLINK(...)" phone home).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from grader.models import Exam, Question
from grader.sheet_import import HEADER_FILL
from grader.outputs.selectors import QuestionResult, ScriptResult, questions_graded, script_results, student_results
from grader.reading.services import reading_best
from grader.rubrics import selectors as rubric_selectors
from ml.score_stats import question_stats
from ml.scoring import marks_text

MARKS_FORMAT = "0.0#"
PERCENT_FORMAT = "0.0%"
SIMILARITY_FORMAT = "0.00"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
ABSENT = "Absent"
NO_STUDENT = "No student"

# Font() alone names no typeface, and LibreOffice then falls back to a serif one: name the default.
_HEADER_FONT = Font(name="Calibri", size=11, bold=True)
_ABSENT_FONT = Font(name="Calibri", size=11, italic=True, color="808080")
# A conditional format's solid fill: Excel reads its colour from bgColor, openpyxl's docs set both.
_LOW_FILL = PatternFill("solid", fgColor="F8CBAD", bgColor="F8CBAD")
# Leading characters Excel (and LibreOffice) take as the start of a formula.
_FORMULA_STARTS = ("=", "+", "-", "@")
_MAX_WIDTH = 50


def _number(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _local(value: datetime | None) -> datetime | None:
    """Excel has no time zones: the server's local time, without its zone."""
    return None if value is None else timezone.localtime(value).replace(tzinfo=None)


def _shown_width(value: Any) -> int:
    """About how many characters ``value`` takes on screen, for the column width."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return len("2025-01-31 23:59")
    if isinstance(value, (int, float)):
        return len(f"{value:.2f}")
    return max((len(line) for line in str(value).splitlines()), default=0)


class _Sheet:
    """A worksheet filled row by row, with each column's number format and width kept as it goes."""

    def __init__(self, workbook: Workbook, title: str, headers: Sequence[str], formats: dict[str, str]):
        self.sheet: Worksheet = workbook.create_sheet(title)
        self.headers = list(headers)
        self.formats = formats
        self.widths = [len(header) for header in headers]
        self.sheet.append(self.headers)
        for cell in self.sheet[1]:
            cell.font = _HEADER_FONT
            cell.fill = HEADER_FILL

    def append(self, values: Sequence[Any], *, font: Font | None = None) -> None:
        row = self.sheet.max_row + 1
        for column, (header, value) in enumerate(zip(self.headers, values, strict=True), start=1):
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell = self.sheet.cell(row=row, column=column, value=value)
            if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
                # openpyxl takes "=..." for a formula; quotePrefix also keeps Excel from making one of
                # "+", "-" or "@" text when a teacher edits the cell.
                cell.data_type = "s"
                cell.quotePrefix = True
            if header in self.formats:
                cell.number_format = self.formats[header]
            if font is not None:
                cell.font = font
            self.widths[column - 1] = max(self.widths[column - 1], _shown_width(value))

    def finish(self, *, freeze: str = "A2") -> None:
        for column, width in enumerate(self.widths, start=1):
            self.sheet.column_dimensions[get_column_letter(column)].width = min(_MAX_WIDTH, width + 3)
        self.sheet.freeze_panes = freeze
        self.sheet.auto_filter.ref = f"A1:{get_column_letter(len(self.headers))}{self.sheet.max_row}"

    def column(self, header: str) -> str:
        return get_column_letter(self.headers.index(header) + 1)


def _status(result: ScriptResult | None) -> str:
    if result is None:
        return ABSENT
    parts = [] if result.student else [NO_STUDENT]
    if result.unscored:
        parts.append(f"{result.unscored} not scored")
    return "; ".join(parts)


def _scores_sheet(
    workbook: Workbook, *, questions: Sequence[Question], results: list[ScriptResult], exam: Exam
) -> None:
    max_total = sum((question.max_score for question in questions), Decimal(0))
    question_headers = [f"{question.label} ({marks_text(question.max_score)})" for question in questions]
    total_header = f"TOTAL ({marks_text(max_total)})"
    headers = ["ID", "NAME", "CLASS", *question_headers, total_header, "PERCENTAGE", "STATUS"]
    formats = {header: MARKS_FORMAT for header in [*question_headers, total_header]}
    formats["PERCENTAGE"] = PERCENT_FORMAT
    sheet = _Sheet(workbook, "Scores", headers, formats)

    def scored(result: ScriptResult) -> list[Any]:
        percent = float(result.total / result.max_total) if result.max_total else None
        return [*(_number(row.score) for row in result.rows), _number(result.total), percent, _status(result)]

    for student, result in student_results(exam=exam, results=results):
        if result is None:
            # Empty score cells, so sums, averages and the low-score colouring pass absent students by.
            sheet.append([student.student_id, student.name, student.class_name,
                          *[None] * (len(questions) + 2), ABSENT], font=_ABSENT_FONT)
        else:
            sheet.append([student.student_id, student.name, student.class_name, *scored(result)])
    for result in results:
        if result.student is None:
            sheet.append(["", result.title, "", *scored(result)])

    last = max(2, sheet.sheet.max_row)
    halves = [(header, question.max_score / 2) for header, question in zip(question_headers, questions)]
    halves += [(total_header, max_total / 2), ("PERCENTAGE", Decimal("0.5"))]
    for header, half in halves:
        letter = sheet.column(header)
        # ISNUMBER: Excel compares an empty cell as 0, which would colour every absent student.
        sheet.sheet.conditional_formatting.add(
            f"{letter}2:{letter}{last}",
            FormulaRule(formula=[f"AND(ISNUMBER({letter}2),{letter}2<{marks_text(half)})"], fill=_LOW_FILL),
        )
    sheet.finish(freeze="D2")


def _engine_text(row: QuestionResult) -> str:
    """What the engines read: the preferred engine's reading; ``text`` holds it too until a teacher
    confirms a text, so it stands in for answers whose readings were not kept."""
    answer = row.answer
    text, _ = reading_best(answer.readings or {})
    if text or answer.readings:
        return text
    return answer.text if answer.confirmed_text is None else ""


def _who(row: QuestionResult) -> str:
    user = row.answer.scored_by
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _answers_sheet(workbook: Workbook, *, results: list[ScriptResult]) -> None:
    headers = ["SCRIPT", "ID", "NAME", "QUESTION", "MAX", "EXTRACTED TEXT", "CONFIRMED TEXT", "BLANK", "SIMILARITY",
               "SUGGESTED SCORE", "FINAL SCORE", "SCORE SOURCE", "SCORED BY", "SCORED AT"]
    formats = {"MAX": MARKS_FORMAT, "SIMILARITY": SIMILARITY_FORMAT, "SUGGESTED SCORE": MARKS_FORMAT,
               "FINAL SCORE": MARKS_FORMAT, "SCORED AT": DATETIME_FORMAT}
    sheet = _Sheet(workbook, "Answers", headers, formats)
    for result in results:
        student = result.student
        for row in result.rows:
            answer = row.answer
            if answer is None:
                continue
            sheet.append([
                result.script.number,
                student.student_id if student else "",
                student.name if student else result.title,
                row.question.label,
                _number(row.max_score),
                _engine_text(row),
                answer.confirmed_text or "",
                "yes" if row.blank else "no",
                answer.similarity,
                _number(answer.suggested_score),
                _number(row.score),
                row.source,
                _who(row),
                _local(answer.scored_at),
            ])
    sheet.finish()


def _questions_sheet(workbook: Workbook, *, questions: Sequence[Question], results: list[ScriptResult]) -> None:
    headers = ["QUESTION", "MAX", "ANSWER KEY", "ALSO ACCEPTED", "SCORED", "MEAN", "STD DEV", "FULL MARKS", "BLANK",
               "DISCRIMINATION"]
    formats = {"MAX": MARKS_FORMAT, "MEAN": MARKS_FORMAT, "STD DEV": MARKS_FORMAT, "FULL MARKS": PERCENT_FORMAT,
               "BLANK": PERCENT_FORMAT, "DISCRIMINATION": SIMILARITY_FORMAT}
    sheet = _Sheet(workbook, "Questions", headers, formats)
    totals = [float(result.total) for result in results]
    for index, question in enumerate(questions):
        rows = [result.rows[index] for result in results]
        stats = question_stats(
            scores=[_number(row.score) for row in rows], blanks=[row.blank for row in rows], totals=totals,
            max_score=float(question.max_score),
        )
        sheet.append([
            question.label, _number(question.max_score), question.answer, "; ".join(map(str, question.accept or [])),
            stats.n, stats.mean, stats.std, stats.full_marks, stats.blank, stats.discrimination,
        ])
    sheet.finish()


def _rubric_sheets(workbook: Workbook, *, questions: Sequence[Question], results: list[ScriptResult]) -> None:
    """``Dimensions`` and ``Feedback``, when some question is marked by a rubric."""
    answer_ids = [row.answer.pk for result in results for row in result.rows if row.answer is not None]
    rubric = rubric_selectors.answers_rubric_results(answer_ids=answer_ids)
    if not rubric:
        return
    columns: dict[tuple[str, str], str] = {}  # (question, dimension) -> header, in question order
    for result in results:
        for row in result.rows:
            if row.answer is not None and row.answer.pk in rubric:
                for dimension in rubric[row.answer.pk].dimensions:
                    columns.setdefault((row.question.label, dimension.name),
                                       f"{row.question.label} {dimension.name} ({marks_text(dimension.max_points)})")
    order = {question.label: index for index, question in enumerate(questions)}
    keys = sorted(columns, key=lambda key: order.get(key[0], len(order)))
    headers = ["SCRIPT", "ID", "NAME", *(columns[key] for key in keys)]
    dimensions = _Sheet(workbook, "Dimensions", headers, {columns[key]: MARKS_FORMAT for key in keys})
    feedback = _Sheet(workbook, "Feedback", ["SCRIPT", "ID", "NAME", "QUESTION", "SCORE", "DIMENSIONS", "FEEDBACK"],
                      {"SCORE": MARKS_FORMAT})
    for result in results:
        student = result.student
        who = [result.script.number, student.student_id if student else "", student.name if student else result.title]
        points: dict[tuple[str, str], float | None] = {}
        for row in result.rows:
            found = rubric.get(row.answer.pk) if row.answer is not None else None
            if found is None:
                continue
            for dimension in found.dimensions:
                points[(row.question.label, dimension.name)] = _number(dimension.points)
            if found.feedback:
                feedback.append([*who, row.question.label, _number(row.score), found.breakdown, found.feedback])
        dimensions.append([*who, *(points.get(key) for key in keys)])
    dimensions.finish(freeze="D2")
    feedback.finish()


def scores_workbook(*, exam: Exam) -> bytes:
    """The exam's results as an .xlsx workbook.

    ``Scores``: one row per roster student in roster order (class, then name), then one per script
    matched to no student (ID empty, NAME "Script N (no student)"); a column per graded question
    headed "label (max)", TOTAL, PERCENTAGE and STATUS ("Absent", "No student", "N not scored").
    Absent students have empty score cells. Scores under half a column's maximum are shaded red.

    ``Answers``: one row per answer read, in script then question order. EXTRACTED TEXT is what the
    engines read (before any teacher correction), CONFIRMED TEXT the teacher's (empty if none);
    SIMILARITY in [0, 1]; FINAL SCORE is the teacher's score, else the suggested one, as SCORE SOURCE
    says; SCORED AT is the server's local time.

    ``Questions``: per graded question, the figures of ``ml.score_stats.question_stats`` over the
    scripts with a score for it (FULL MARKS and BLANK as fractions, DISCRIMINATION in [-1, 1]).

    When questions are marked by a rubric: ``Dimensions``, one row per script with a column per rubric
    dimension headed "label dimension (max)" (empty where not scored), and ``Feedback``, one row per
    rubric answer with written feedback (its score, the breakdown, the feedback the student reads).
    """
    questions = list(questions_graded(exam=exam))
    results = script_results(exam=exam)
    workbook = Workbook()
    workbook.remove(workbook.active)
    workbook.properties.title = f"{exam.title}: scores"
    _scores_sheet(workbook, questions=questions, results=results, exam=exam)
    _answers_sheet(workbook, results=results)
    _questions_sheet(workbook, questions=questions, results=results)
    _rubric_sheets(workbook, questions=questions, results=results)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
