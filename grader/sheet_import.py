"""Importing the roster and answer key from .xlsx, and the blank workbooks teachers fill in for it.

Exported workbooks (scores) are ``grader.outputs.spreadsheet``; they share ``HEADER_FILL`` with these.

Headers are matched without regard to case, order, spaces or underscores ("Max score" is MAX_SCORE);
columns that are not asked for are ignored. Row numbers are the spreadsheet's own (header row is 1
when it is the first row), so a teacher can find each problem in Excel.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any
from xml.etree.ElementTree import ParseError

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

# How many leading rows may be titles or blank before the header row.
_HEADER_SEARCH_ROWS = 10
# The header shading of every workbook markdesk writes: templates and exported results alike.
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")


class SpreadsheetError(ValueError):
    """The file cannot be read as a spreadsheet of the expected shape; nothing was imported."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass
class ImportSummary:
    """What an import of the roster or answer key changed, and what it kept that the file left out."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)  # existing entries the file did not mention

    def message(self, noun: str) -> str:
        text = f"Imported {noun}: {self.created} added, {self.updated} updated, {self.unchanged} unchanged."
        if self.kept:
            text += f" {len(self.kept)} already in markdesk but not in the file were kept: {', '.join(self.kept[:10])}"
            text += "…" if len(self.kept) > 10 else "."
        return text


@dataclass(frozen=True)
class SheetRow:
    number: int  # the row number as Excel shows it
    values: dict[str, Any]  # normalised header -> cell value (None for empty)


def _header_key(value: Any) -> str:
    return re.sub(r"[\s_\-]+", "_", str(value or "").strip()).upper()


def cell_text(value: Any) -> str:
    """A cell as text: numbers that Excel stored as floats lose their ``.0`` (an ID 1001.0 is "1001")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value).strip()


def _has_value(values: Sequence[Any]) -> bool:
    return any(value is not None and value != "" for value in values)


def _rows_within(rows: Iterator[tuple], *, max_columns: int) -> Iterator[tuple]:
    """``rows`` cut to ``max_columns`` columns, refusing a row with data beyond them."""
    for number, row in enumerate(rows, start=1):
        if len(row) > max_columns and _has_value(row[max_columns:]):
            raise SpreadsheetError([
                f"Row {number} has data beyond column {get_column_letter(max_columns)}: markdesk reads at most "
                f"{max_columns} columns. Delete the columns it does not need and import again."
            ])
        yield row[:max_columns]


def sheet_rows(
    *, file: IO[bytes], required: Sequence[str], optional: Sequence[str] = (), max_rows: int, max_columns: int
) -> list[SheetRow]:
    """Read the first worksheet of an .xlsx file into rows keyed by the ``required`` and ``optional`` headers.

    Raises ``SpreadsheetError`` when the file is not an .xlsx workbook, a required column is missing, or
    the sheet has data beyond ``max_rows`` rows below its header or ``max_columns`` columns: a file is
    read whole or refused, never in part. Completely empty rows are skipped.
    """
    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise SpreadsheetError(["The file is not an Excel .xlsx workbook (save it as .xlsx and try again)."]) from error
    try:
        sheet = workbook.worksheets[0]
        # Read-only mode stops at the size the sheet declares (its <dimension> tag), which a file may get
        # wrong: forgetting it reads every row the sheet really holds.
        sheet.reset_dimensions()
        rows = _rows_within(sheet.iter_rows(values_only=True), max_columns=max_columns)
        wanted = [*required, *optional]
        header_index: dict[str, int] | None = None
        header_row = 0
        for header_row, row in enumerate(rows, start=1):
            keys = [_header_key(value) for value in row]
            if any(name in keys for name in wanted):
                header_index = {name: keys.index(name) for name in wanted if name in keys}
                break
            if header_row >= _HEADER_SEARCH_ROWS:
                break
        if header_index is None:
            raise SpreadsheetError([f"No header row found: the first row should name the columns {', '.join(required)}."])
        missing = [name for name in required if name not in header_index]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise SpreadsheetError([f"Missing column{plural} {', '.join(missing)} in the header row (row {header_row})."])
        result = []
        for number, row in enumerate(rows, start=header_row + 1):
            if not _has_value(row):
                continue
            if number > header_row + max_rows:
                raise SpreadsheetError([
                    f"The sheet has data in row {number}: markdesk imports at most {max_rows} rows below the "
                    "header from one file."
                ])
            values = {name: (row[index] if index < len(row) else None) for name, index in header_index.items()}
            if all(cell_text(value) == "" for value in values.values()):
                continue
            result.append(SheetRow(number=number, values=values))
        return result
    except ParseError as error:
        # Read-only mode parses the sheet's XML only now, row by row: a sheet declaring entities
        # (never resolved) or with broken XML fails here, not in load_workbook.
        raise SpreadsheetError([
            "The sheet cannot be read: its XML is damaged or declares entities, which markdesk does not read. "
            "Save it from Excel or LibreOffice as .xlsx and try again."
        ]) from error
    finally:
        workbook.close()


def workbook_bytes(*, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()) -> bytes:
    """A one-sheet .xlsx with a bold, frozen header row, the given rows, and notes below them."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
    for row in rows:
        sheet.append(list(row))
    for column, header in enumerate(headers, start=1):
        longest = max([len(str(header))] + [len(str(row[column - 1])) for row in rows if column <= len(row)])
        sheet.column_dimensions[sheet.cell(row=1, column=column).column_letter].width = min(60, longest + 4)
    sheet.freeze_panes = "A2"
    if notes:
        notes_sheet = workbook.create_sheet("How to fill in")
        for note in notes:
            notes_sheet.append([note])
        notes_sheet.column_dimensions["A"].width = 100
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
