"""The RUBRIC sheet: rubric questions imported from and exported to an .xlsx workbook, all or nothing."""

from __future__ import annotations

import io
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from model_bakery import baker
from openpyxl import Workbook, load_workbook

from grader.models import Question
from grader.rubrics.models import QuestionRubric, Rubric


def _workbook(rows, *, title="RUBRIC") -> SimpleUploadedFile:
    workbook = Workbook()
    workbook.active.title = "Key"
    workbook.active.append(["QUESTION", "ANSWER", "MAX"])
    sheet = workbook.create_sheet(title)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile("key.xlsx", buffer.getvalue())


HEADER = ["QUESTION", "RUBRIC", "TASK", "DIMENSION", "MAX", "LEVELS"]


def test_a_rubric_sheet_marks_its_questions_by_rubrics_and_exports_back(client_for, teacher, exam):
    q5 = baker.make(Question, exam=exam, label="Q5", order=5)
    url = reverse("rubric_sheet", args=[exam.pk])
    client = client_for(teacher)
    response = client.post(url, {"question": q5.pk, "file": _workbook([
        HEADER,
        ["Q5", "Explain", "Explain why we have seasons.", "Content", 4, "4 exceptional: every cause\n2 fair: one cause"],
        ["Q5", "Explain", None, "Language", 2, "2 clear; 1 unclear: hard to follow"],
    ])}, follow=True)
    assert "Q5 marked by a rubric" in response.content.decode()
    q5.refresh_from_db()
    assert q5.max_score == Decimal("6") and q5.rubric_link.task == "Explain why we have seasons."
    language = q5.rubric_link.rubric.dimensions.get(name="Language")
    assert language.levels == [{"points": "2", "label": "clear", "description": ""},
                               {"points": "1", "label": "unclear", "description": "hard to follow"}]

    exported = load_workbook(io.BytesIO(client.get(url).content))["RUBRIC"]
    rows = list(exported.values)
    assert rows[0] == tuple(HEADER)
    assert rows[1] == ("Q5", "Explain", "Explain why we have seasons.", "Content", 4,
                       "4 exceptional: every cause\n2 fair: one cause")
    assert rows[2][3:5] == ("Language", 2)


def test_a_sheet_with_a_problem_imports_nothing_and_names_every_row(client_for, teacher, exam):
    baker.make(Question, exam=exam, label="Q5")
    response = client_for(teacher).post(reverse("rubric_sheet", args=[exam.pk]), {"file": _workbook([
        HEADER,
        ["Q5", "Explain", "", "Content", "lots", ""],
        ["Q9", "Other", "", "Accuracy", 2, ""],
        ["Q5", "Explain", "", "Language", 2, "clear"],
    ])}, follow=True)
    page = response.content.decode()
    assert "row 2: MAX “lots” is not a number" in page and "row 4: Language, level line 1" in page
    assert not QuestionRubric.objects.exists() and not Rubric.objects.exists()


def test_an_unknown_question_refuses_the_sheet(client_for, teacher, exam):
    response = client_for(teacher).post(reverse("rubric_sheet", args=[exam.pk]), {"file": _workbook([
        HEADER, ["Q9", "Other", "", "Accuracy", 2, ""]])}, follow=True)
    assert "the answer key has no question Q9" in response.content.decode()
    assert not Rubric.objects.exists()


def test_a_workbook_without_a_rubric_sheet_or_not_a_workbook_is_refused_with_a_message(client_for, teacher, exam):
    client = client_for(teacher)
    url = reverse("rubric_sheet", args=[exam.pk])
    assert "has no sheet called RUBRIC" in client.post(url, {"file": _workbook([HEADER], title="Other")},
                                                        follow=True).content.decode()
    response = client.post(url, {"file": SimpleUploadedFile("key.xlsx", b"not a workbook")}, follow=True)
    assert response.status_code == 200 and "not an Excel .xlsx workbook" in response.content.decode()


def test_the_answer_key_spreadsheet_brings_its_rubric_sheet_along(client_for, teacher, exam):
    workbook = Workbook()
    key = workbook.active
    key.title = "Answers"
    key.append(["QUESTION", "ANSWER", "MAX_SCORE"])
    key.append(["Q1", "42", 1])
    key.append(["Q5", "", 6])
    rubric = workbook.create_sheet("RUBRIC")
    for row in (HEADER, ["Q5", "Explain", "Explain why.", "Content", 4, ""], ["Q5", "Explain", "", "Language", 2, ""]):
        rubric.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = client_for(teacher).post(reverse("answer_key_import", args=[exam.pk]),
                                        {"file": SimpleUploadedFile("key.xlsx", buffer.getvalue())}, follow=True)
    assert "RUBRIC sheet: Q5 marked by a rubric" in response.content.decode()
    q5 = exam.questions.get(label="Q5")
    assert q5.rubric_link.rubric.name == "Explain" and q5.max_score == Decimal("6")
    assert not hasattr(exam.questions.get(label="Q1"), "rubric_link")


def test_the_answer_key_template_has_an_empty_rubric_sheet_that_imports_as_nothing(client_for, teacher, exam):
    client = client_for(teacher)
    data = client.get(reverse("spreadsheet_template", args=["answer-key"])).content
    workbook = load_workbook(io.BytesIO(data))
    assert list(workbook["RUBRIC"].values) == [tuple(HEADER)]
    assert any("RUBRIC sheet" in (row[0] or "") for row in workbook["How to fill in"].values)
    response = client.post(reverse("answer_key_import", args=[exam.pk]),
                           {"file": SimpleUploadedFile("key.xlsx", data)}, follow=True)
    page = response.content.decode()
    assert "RUBRIC sheet" not in page and not Rubric.objects.exists()
