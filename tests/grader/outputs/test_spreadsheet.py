"""The results spreadsheet, read back with openpyxl (and LibreOffice, where installed)."""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from model_bakery import baker
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from grader.models import Script
from grader.outputs.spreadsheet import scores_workbook
from grader.reading.models import Answer

pytestmark = pytest.mark.django_db

SCORES_HEADERS = ["ID", "NAME", "CLASS", "Q1 (2)", "Q2 (1)", "Q3 (3)", "TOTAL (6)", "PERCENTAGE", "STATUS"]


def _workbook(exam):
    return load_workbook(io.BytesIO(scores_workbook(exam=exam)))


def _records(sheet: Worksheet) -> list[dict]:
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def _by(records: list[dict], key: str) -> dict:
    return {record[key]: record for record in records}


def test_the_workbook_has_scores_answers_and_questions_sheets(scored_exam):
    assert _workbook(scored_exam).sheetnames == ["Scores", "Answers", "Questions"]


def test_scores_list_the_roster_in_order_with_each_question_total_and_percentage(scored_exam):
    sheet = _workbook(scored_exam)["Scores"]
    assert [cell.value for cell in sheet[1]] == SCORES_HEADERS
    records = _records(sheet)
    # Roster order is class, then name.
    assert [record["ID"] for record in records] == ["S1", "S2", "S5", "S3", "S4", "S6", "S7"]
    ada = _by(records, "ID")["S1"]
    assert (ada["NAME"], ada["CLASS"]) == ("Ada Lovelace", "9A")
    assert [ada["Q1 (2)"], ada["Q2 (1)"], ada["Q3 (3)"], ada["TOTAL (6)"]] == [2, 1, 3, 6]
    totals = {record["ID"]: record["TOTAL (6)"] for record in records}
    assert totals == {"S1": 6, "S2": 4.5, "S3": 3, "S4": 2.5, "S5": 0, "S6": 4, "S7": None}
    percentages = {record["ID"]: record["PERCENTAGE"] for record in records if record["ID"] != "S7"}
    assert percentages == pytest.approx({"S1": 1.0, "S2": 0.75, "S3": 0.5, "S4": 2.5 / 6, "S5": 0.0, "S6": 4 / 6})
    assert _by(records, "ID")["S4"]["Q2 (1)"] == 1  # the suggestion counts when the teacher left it alone


def test_an_absent_student_is_marked_and_has_empty_score_cells(scored_exam):
    sheet = _workbook(scored_exam)["Scores"]
    gus = _by(_records(sheet), "ID")["S7"]
    assert gus["STATUS"] == "Absent"
    assert [gus[header] for header in SCORES_HEADERS[3:8]] == [None] * 5
    present = [record["STATUS"] for record in _records(sheet) if record["ID"] != "S7"]
    assert present == [None] * 6


def test_scripts_with_no_student_follow_the_roster(scored_exam):
    extra = Script.objects.create(exam=scored_exam, number=7)
    question = scored_exam.questions.get(label="Q1")
    baker.make(Answer, script=extra, question=question, text="answer", score=Decimal("1.5"))
    records = _records(_workbook(scored_exam)["Scores"])
    last = records[-1]
    assert last["ID"] in (None, "")
    assert last["NAME"] == "Script 7 (no student)"
    assert (last["Q1 (2)"], last["Q2 (1)"], last["TOTAL (6)"]) == (1.5, None, 1.5)
    assert last["STATUS"] == "No student; 2 not scored"
    assert [record["ID"] for record in records[:-1]] == ["S1", "S2", "S5", "S3", "S4", "S6", "S7"]


def test_every_sheet_has_a_bold_frozen_filtered_header_and_sized_columns(scored_exam):
    workbook = _workbook(scored_exam)
    assert workbook["Scores"].freeze_panes == "D2"  # ID, NAME and CLASS stay in view too
    assert workbook["Answers"].freeze_panes == "A2"
    assert workbook["Questions"].freeze_panes == "A2"
    for sheet in workbook.worksheets:
        assert all(cell.font.bold for cell in sheet[1])
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(row=1, column=sheet.max_column).column_letter}{sheet.max_row}"
        widths = [sheet.column_dimensions[cell.column_letter].width for cell in sheet[1]]
        assert all(len(str(cell.value)) < width <= 53 for cell, width in zip(sheet[1], widths))
    scores = workbook["Scores"]
    assert scores.column_dimensions["B"].width > scores.column_dimensions["A"].width  # names are wider than IDs


def test_scores_and_percentages_have_number_formats(scored_exam):
    sheet = _workbook(scored_exam)["Scores"]
    ada = sheet[2]
    assert [cell.number_format for cell in ada[3:7]] == ["0.0#"] * 4
    assert ada[7].number_format == "0.0%"
    answers = _workbook(scored_exam)["Answers"]
    headers = [cell.value for cell in answers[1]]
    first = dict(zip(headers, answers[2]))
    assert first["SIMILARITY"].number_format == "0.00"
    assert first["FINAL SCORE"].number_format == "0.0#"
    assert first["SCORED AT"].number_format == "yyyy-mm-dd hh:mm"


def test_low_scores_are_coloured_in_each_question_total_and_percentage_column(scored_exam):
    sheet = _workbook(scored_exam)["Scores"]
    rules = {
        str(ranges.sqref): [rule.formula[0] for rule in rules]
        for ranges, rules in sheet.conditional_formatting._cf_rules.items()
    }
    assert rules == {
        "D2:D8": ["AND(ISNUMBER(D2),D2<1)"],
        "E2:E8": ["AND(ISNUMBER(E2),E2<0.5)"],
        "F2:F8": ["AND(ISNUMBER(F2),F2<1.5)"],
        "G2:G8": ["AND(ISNUMBER(G2),G2<3)"],
        "H2:H8": ["AND(ISNUMBER(H2),H2<0.5)"],
    }
    rule = sheet.conditional_formatting._cf_rules[next(iter(sheet.conditional_formatting._cf_rules))][0]
    assert rule.dxf.fill.fgColor.rgb.endswith("F8CBAD")


def test_answers_list_every_answer_with_its_reading_score_and_marker(scored_exam, teacher):
    teacher.first_name, teacher.last_name = "Tess", "Marker"
    teacher.save()
    answer = Answer.objects.get(script__student__student_id="S2", question__label="Q1")
    answer.confirmed_text = "corrected"
    answer.text = "corrected"
    answer.scored_at = datetime(2025, 3, 1, 4, 30, tzinfo=dt_timezone.utc)
    answer.save()
    with timezone.override(ZoneInfo("Asia/Singapore")):
        records = _records(_workbook(scored_exam)["Answers"])
    assert len(records) == 18
    order = [(record["SCRIPT"], record["QUESTION"]) for record in records[:4]]
    assert order == [(1, "Q1"), (1, "Q2"), (1, "Q3"), (2, "Q1")]
    ben = records[3]
    assert ben["ID"] == "S2" and ben["NAME"] == "Ben Okafor" and ben["MAX"] == 2
    assert ben["EXTRACTED TEXT"] == "answer S2 Q1"  # what the engine read, not the teacher's correction
    assert ben["CONFIRMED TEXT"] == "corrected"
    assert ben["BLANK"] == "no"
    assert ben["SIMILARITY"] == pytest.approx(0.7)
    assert (ben["SUGGESTED SCORE"], ben["FINAL SCORE"], ben["SCORE SOURCE"]) == (1, 1.5, "teacher")
    assert ben["SCORED BY"] == "Tess Marker"
    assert ben["SCORED AT"] == datetime(2025, 3, 1, 12, 30)  # Singapore time, no zone: Excel has none
    dev_q2 = next(r for r in records if r["ID"] == "S4" and r["QUESTION"] == "Q2")
    assert [dev_q2[header] for header in ("FINAL SCORE", "SCORE SOURCE", "SCORED BY", "SCORED AT")] == [
        1, "suggested", None, None
    ]
    assert dev_q2["CONFIRMED TEXT"] is None
    eva_q3 = next(r for r in records if r["ID"] == "S5" and r["QUESTION"] == "Q3")
    assert (eva_q3["BLANK"], eva_q3["SIMILARITY"], eva_q3["SUGGESTED SCORE"]) == ("yes", 0, 0)


def test_the_extracted_text_falls_back_to_the_text_when_no_readings_were_kept(scored_exam):
    Answer.objects.filter(script__student__student_id="S1", question__label="Q1").update(readings={}, text="x = 2")
    Answer.objects.filter(script__student__student_id="S1", question__label="Q2").update(
        readings={}, text="teacher's", confirmed_text="teacher's"
    )
    records = _records(_workbook(scored_exam)["Answers"])
    assert records[0]["EXTRACTED TEXT"] == "x = 2"
    assert records[1]["EXTRACTED TEXT"] in (None, "")  # the engines' reading is lost; the teacher's is not it
    assert records[1]["CONFIRMED TEXT"] == "teacher's"


def test_text_that_looks_like_a_formula_is_stored_as_text(scored_exam):
    answer = Answer.objects.get(script__student__student_id="S1", question__label="Q1")
    answer.readings = {"easyocr": {"text": "=1+1", "confidence": 0.9}}
    answer.confirmed_text = "@SUM(A1)"
    answer.save()
    student = answer.script.student
    student.name = "-Ada"
    student.save()
    workbook = _workbook(scored_exam)
    answers = workbook["Answers"]
    headers = [cell.value for cell in answers[1]]
    row = dict(zip(headers, answers[2]))
    for header, text in [("EXTRACTED TEXT", "=1+1"), ("CONFIRMED TEXT", "@SUM(A1)"), ("NAME", "-Ada")]:
        assert row[header].value == text
        assert row[header].data_type == "s"
        assert row[header].quotePrefix
    assert workbook["Scores"]["B2"].value == "-Ada"
    assert workbook["Scores"]["B2"].data_type == "s"


def test_control_characters_in_readings_do_not_break_the_workbook(scored_exam):
    Answer.objects.filter(script__student__student_id="S1", question__label="Q1").update(
        readings={"easyocr": {"text": "a\x01b\x07c", "confidence": 0.5}}
    )
    records = _records(_workbook(scored_exam)["Answers"])
    assert records[0]["EXTRACTED TEXT"] == "abc"


def test_questions_have_the_key_and_figures_worked_by_hand(scored_exam):
    sheet = _workbook(scored_exam)["Questions"]
    assert [cell.value for cell in sheet[1]] == [
        "QUESTION", "MAX", "ANSWER KEY", "ALSO ACCEPTED", "SCORED", "MEAN", "STD DEV", "FULL MARKS", "BLANK",
        "DISCRIMINATION",
    ]
    records = _by(_records(sheet), "QUESTION")
    assert list(records) == ["Q1", "Q2", "Q3"]
    q1 = records["Q1"]
    # Q1 scores by script: 2, 1.5, 1, 0.5, 0, 2 (totals 6, 4.5, 3, 2.5, 0, 4).
    assert (q1["MAX"], q1["ANSWER KEY"], q1["SCORED"]) == (2, "key Q1", 6)
    assert q1["MEAN"] == pytest.approx(7 / 6)
    deviations = [score - 7 / 6 for score in (2, 1.5, 1, 0.5, 0, 2)]
    assert q1["STD DEV"] == pytest.approx(math.sqrt(sum(d * d for d in deviations) / 6))
    assert q1["FULL MARKS"] == pytest.approx(2 / 6)
    assert q1["BLANK"] == 0
    # Top third by total: S1 (2), S2 (1.5); bottom third: S4 (0.5), S5 (0). (1.75 - 0.25) / 2.
    assert q1["DISCRIMINATION"] == pytest.approx(0.75)
    q3 = records["Q3"]
    # Q3: 3, 2, 2, 1, 0 (blank), 1. Top: S1 3, S2 2; bottom: S4 1, S5 0. (2.5 - 0.5) / 3.
    assert (q3["MEAN"], q3["FULL MARKS"], q3["BLANK"]) == pytest.approx((1.5, 1 / 6, 1 / 6))
    assert q3["DISCRIMINATION"] == pytest.approx(2 / 3)
    assert records["Q2"]["MEAN"] == pytest.approx(4 / 6)  # S4's suggested mark counts
    cells = dict(zip([cell.value for cell in sheet[1]], sheet[2]))
    assert (cells["FULL MARKS"].number_format, cells["BLANK"].number_format) == ("0.0%", "0.0%")


def test_an_exam_with_no_scripts_still_makes_a_workbook(exam):
    workbook = _workbook(exam)
    headers = [cell.value for cell in workbook["Scores"][1]]
    assert headers == ["ID", "NAME", "CLASS", "TOTAL (0)", "PERCENTAGE", "STATUS"]
    assert workbook["Answers"].max_row == 1


def _soffice_csv(data: bytes, tmp_path) -> dict[str, list[list[str]]]:
    """Every sheet of the workbook as LibreOffice shows it (formatted values), by sheet name."""
    source = tmp_path / "scores.xlsx"
    source.write_bytes(data)
    # 44,34,76: comma, double quote, UTF-8; token 9 true: cells as shown; token 12 -1: every sheet.
    csv_filter = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1"
    subprocess.run(
        [shutil.which("soffice"), f"-env:UserInstallation=file://{tmp_path / 'profile'}", "--headless",
         "--convert-to", csv_filter, "--outdir", str(tmp_path / "out"), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    return {
        path.stem.removeprefix("scores-"): list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        for path in (tmp_path / "out").glob("*.csv")
    }


@pytest.mark.skipif(
    shutil.which("soffice") is None,
    reason="LibreOffice (soffice) is not installed: apt-get install libreoffice-calc-nogui",
)
def test_libreoffice_opens_the_workbook_and_computes_no_formulas(scored_exam, tmp_path):
    Answer.objects.filter(script__student__student_id="S1", question__label="Q1").update(
        readings={"easyocr": {"text": "=1+1", "confidence": 0.9}}
    )
    sheets = _soffice_csv(scores_workbook(exam=scored_exam), tmp_path)
    assert set(sheets) == {"Scores", "Answers", "Questions"}
    scores = sheets["Scores"]
    assert scores[0] == SCORES_HEADERS
    assert scores[1] == ["S1", "Ada Lovelace", "9A", "2.0", "1.0", "3.0", "6.0", "100.0%", ""]
    assert scores[5] == ["S4", "Dev Patel", "9B", "0.5", "1.0", "1.0", "2.5", "41.7%", ""]
    assert scores[7] == ["S7", "Gus Absent", "9B", "", "", "", "", "", "Absent"]
    assert sheets["Answers"][1][5] == "=1+1"
