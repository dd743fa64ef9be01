"""Importing the answer key from Excel (service and page) and keeping it by hand."""

from __future__ import annotations

import html
import io
import re
import zipfile
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from model_bakery import baker
from openpyxl import load_workbook

from grader import services
from grader.models import Exam, Question
from tests.conftest import xlsx_declaring, xlsx_upload

HEADER = ["QUESTION", "ANSWER", "MAX_SCORE", "ACCEPT"]


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def key_of(exam: Exam) -> list[tuple[str, str, list[str], Decimal]]:
    """The answer key in question order."""
    return [(q.label, q.answer, q.accept, q.max_score) for q in Question.objects.filter(exam=exam).order_by("order")]


def xlsx_with_float_numbers(rows) -> SimpleUploadedFile:
    """An .xlsx whose whole numbers are written as ``1.0``, so the reader returns floats as for Excel exports."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_upload(rows).read()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = re.sub(rb"<v>(\d+)</v>", rb"<v>\1.0</v>", data)
            target.writestr(item, data)
    return SimpleUploadedFile("key.xlsx", buffer.getvalue())


def problems_of(call) -> list[str]:
    with pytest.raises(services.ImportProblems) as caught:
        call()
    return caught.value.problems


def import_through_page(client, exam: Exam, upload):
    return client.post(reverse("answer_key_import", args=[exam.pk]), {"file": upload}, follow=True)


# ---------------------------------------------------------------- the service


def test_a_good_answer_key_creates_the_questions_in_the_order_of_the_rows(exam):
    summary = services.answer_key_import(
        exam=exam,
        file=xlsx_upload(
            [
                HEADER,
                ["Q2", "carbon dioxide", 1, " CO2 |CO₂ | | carbon dioxide gas "],
                ["Q1", "Na", 2, None],
                ["Q3", "light", 0, ""],
            ]
        ),
    )

    assert key_of(exam) == [
        ("Q2", "carbon dioxide", ["CO2", "CO₂", "carbon dioxide gas"], Decimal("1.00")),
        ("Q1", "Na", [], Decimal("2.00")),
        ("Q3", "light", [], Decimal("0.00")),
    ]
    assert list(Question.objects.filter(exam=exam).values_list("label", flat=True)) == ["Q2", "Q1", "Q3"]
    assert (summary.created, summary.updated, summary.unchanged) == (3, 0, 0)


def test_the_accept_column_is_optional_and_headers_match_loosely(exam):
    services.answer_key_import(
        exam=exam,
        file=xlsx_upload([["Notes", "max score", "answer", "Question"], ["easy", 1, "Na", "Q1"], ["", 2, "Cl", "Q2"]]),
    )

    assert key_of(exam) == [("Q1", "Na", [], Decimal("1.00")), ("Q2", "Cl", [], Decimal("2.00"))]


@pytest.mark.parametrize(
    ("raw", "label"),
    [(1, "Q1"), ("7", "Q7"), (" 12 ", "Q12"), ("07", "Q7"), ("q3", "Q3"), ("q4b", "Q4b"), ("Q2a", "Q2a"), ("Part A", "Part A")],
)
def test_question_labels_are_normalised(exam, raw, label):
    services.answer_key_import(exam=exam, file=xlsx_upload([HEADER, [raw, "x", 1, ""]]))

    assert [q.label for q in Question.objects.filter(exam=exam)] == [label]


def test_question_numbers_that_excel_stored_as_floats_become_labels_without_a_decimal_point(exam):
    upload = xlsx_with_float_numbers([HEADER, [1, "Na", 1, ""], [2, "Cl", 3, ""]])
    first = next(load_workbook(io.BytesIO(upload.read()), read_only=True).worksheets[0].iter_rows(min_row=2, values_only=True))
    assert isinstance(first[0], float) and isinstance(first[2], float)  # the reader really hands over floats
    upload.seek(0)

    services.answer_key_import(exam=exam, file=upload)

    assert key_of(exam) == [("Q1", "Na", [], Decimal("1.00")), ("Q2", "Cl", [], Decimal("3.00"))]


@pytest.mark.parametrize(("raw", "stored"), [(1.5, Decimal("1.50")), ("2.25", Decimal("2.25")), (0.5, Decimal("0.50")), ("0", Decimal("0.00"))])
def test_max_scores_may_be_decimals(exam, raw, stored):
    services.answer_key_import(exam=exam, file=xlsx_upload([HEADER, ["Q1", "Na", raw, ""]]))

    assert Question.objects.get(exam=exam, label="Q1").max_score == stored


def test_importing_again_updates_questions_by_label_and_follows_the_new_row_order(exam):
    services.answer_key_import(
        exam=exam, file=xlsx_upload([HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", 1, ""], ["Q3", "K", 1, ""]])
    )
    before = {q.label: q.pk for q in Question.objects.filter(exam=exam)}

    summary = services.answer_key_import(
        exam=exam,
        file=xlsx_upload([HEADER, ["Q2", "Cl", 1, ""], ["Q1", "Na", 1, ""], ["Q3", "potassium", 2, "K"], ["Q4", "Ar", 1, ""]]),
    )

    assert key_of(exam) == [
        ("Q2", "Cl", [], Decimal("1.00")),
        ("Q1", "Na", [], Decimal("1.00")),
        ("Q3", "potassium", ["K"], Decimal("2.00")),
        ("Q4", "Ar", [], Decimal("1.00")),
    ]
    assert {label: before[label] for label in ("Q1", "Q2", "Q3")} == {
        q.label: q.pk for q in Question.objects.filter(exam=exam, label__in=["Q1", "Q2", "Q3"])
    }
    # Q2 and Q1 swapped places (their order changed), Q3 changed, Q4 is new
    assert (summary.created, summary.updated, summary.unchanged, summary.kept) == (1, 3, 0, [])


def test_importing_the_same_key_twice_changes_nothing(exam):
    rows = [HEADER, ["Q1", "Na", 1.5, "sodium"], ["Q2", "Cl", 1, ""]]
    services.answer_key_import(exam=exam, file=xlsx_upload(rows))

    summary = services.answer_key_import(exam=exam, file=xlsx_upload(rows))

    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 2)
    assert Question.objects.filter(exam=exam).count() == 2


def test_questions_missing_from_a_new_key_are_kept_and_reported(exam):
    baker.make(Question, exam=exam, label="Q9", order=1)

    summary = services.answer_key_import(exam=exam, file=xlsx_upload([HEADER, ["Q1", "Na", 1, ""]]))

    assert sorted(Question.objects.filter(exam=exam).values_list("label", flat=True)) == ["Q1", "Q9"]
    assert summary.message("answer key") == (
        "Imported answer key: 1 added, 0 updated, 0 unchanged. 1 already in markdesk but not in the file were kept: Q9."
    )


BAD_KEYS = {
    "missing MAX_SCORE column": (
        [["QUESTION", "ANSWER"], ["Q1", "Na"]],
        ["Missing column MAX_SCORE in the header row (row 1)."],
    ),
    "non-numeric max score": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", "two", ""]],
        ["Row 3: MAX_SCORE 'two' is not a number."],
    ),
    "max score that is not finite": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", "NaN", ""]],
        ["Row 3: MAX_SCORE 'NaN' is not a number."],
    ),
    "negative max score": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", -1, ""]],
        ["Row 3: MAX_SCORE -1 is negative."],
    ),
    "empty max score": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", None, ""]],
        ["Row 3: MAX_SCORE is empty."],
    ),
    "huge max score": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", 10000, ""]],
        ["Row 3: MAX_SCORE 10000 is too large."],
    ),
    "empty question": (
        [HEADER, ["Q1", "Na", 1, ""], [None, "Cl", 1, ""]],
        ["Row 3: the QUESTION is empty."],
    ),
    "reserved label NAME": (
        [HEADER, ["Q1", "Na", 1, ""], ["NAME", "", 0, ""]],
        ["Row 3: unknown question 'NAME': NAME, ID and CLASS are the student's details, not questions."],
    ),
    "reserved label id in lower case": (
        [HEADER, ["Q1", "Na", 1, ""], ["id", "", 0, ""]],
        ["Row 3: unknown question 'id': NAME, ID and CLASS are the student's details, not questions."],
    ),
    "reserved label CLASS": (
        [HEADER, ["Q1", "Na", 1, ""], ["Class", "", 0, ""]],
        ["Row 3: unknown question 'Class': NAME, ID and CLASS are the student's details, not questions."],
    ),
    "invalid label": (
        [HEADER, ["Q1", "Na", 1, ""], ["???", "Cl", 1, ""]],
        ["Row 3: unknown question '???': use labels like Q1, Q2a or 3 (letters, digits, at most 32)."],
    ),
    "overlong label": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q" * 33, "Cl", 1, ""]],
        [f"Row 3: unknown question '{'Q' * 33}': use labels like Q1, Q2a or 3 (letters, digits, at most 32)."],
    ),
    "duplicate question": (
        [HEADER, ["Q1", "Na", 1, ""], ["Q2", "Cl", 1, ""], ["Q1", "K", 1, ""]],
        ["Row 4: question Q1 is also listed in row 2."],
    ),
    "duplicate question written once as a number": (
        [HEADER, ["Q1", "Na", 1, ""], [1, "K", 1, ""]],
        ["Row 3: question Q1 is also listed in row 2."],
    ),
    "header only": ([HEADER], ["The file has a header row but no questions."]),
}


@pytest.mark.parametrize("case", BAD_KEYS, ids=list(BAD_KEYS))
def test_a_bad_answer_key_imports_nothing_leaves_existing_questions_alone_and_names_the_row(exam, case):
    rows, expected = BAD_KEYS[case]
    baker.make(Question, exam=exam, label="Q1", answer="old", accept=["was"], max_score=Decimal("5"), order=1)
    before = key_of(exam)

    problems = problems_of(lambda: services.answer_key_import(exam=exam, file=xlsx_upload(rows)))

    assert problems == expected
    assert key_of(exam) == before


def test_a_file_that_is_not_a_workbook_imports_nothing(exam):
    problems = problems_of(
        lambda: services.answer_key_import(exam=exam, file=SimpleUploadedFile("key.xlsx", b"QUESTION;ANSWER\nQ1;Na\n"))
    )

    assert problems == ["The file is not an Excel .xlsx workbook (save it as .xlsx and try again)."]
    assert not Question.objects.filter(exam=exam).exists()


def test_every_problem_in_a_key_is_listed_with_its_row(exam):
    problems = problems_of(
        lambda: services.answer_key_import(
            exam=exam,
            file=xlsx_upload(
                [HEADER, ["Q1", "Na", 1, ""], ["NAME", "", "x", ""], ["Q1", "K", -2, ""], [None, "Ar", None, ""]]
            ),
        )
    )

    assert problems == [
        "Row 3: unknown question 'NAME': NAME, ID and CLASS are the student's details, not questions.",
        "Row 3: MAX_SCORE 'x' is not a number.",
        "Row 4: question Q1 is also listed in row 2.",
        "Row 4: MAX_SCORE -2 is negative.",
        "Row 5: the QUESTION is empty.",
        "Row 5: MAX_SCORE is empty.",
    ]
    assert not Question.objects.filter(exam=exam).exists()


# ---------------------------------------------------------------- the page


KEY = [["Q1", "Paris", 1, None], ["Q2", "42", 2, None], ["Q3", "H2O", 1, "water"], ["Q4", "7", 1, None]]


def test_every_question_is_imported_even_when_the_sheet_declares_fewer_rows(exam):
    summary = services.answer_key_import(exam=exam, file=xlsx_declaring([HEADER, *KEY], dimension="A1:D2"))

    assert summary.created == 4 and [label for label, *_ in key_of(exam)] == ["Q1", "Q2", "Q3", "Q4"]


def test_a_question_listed_twice_past_the_declared_rows_refuses_the_whole_key(exam):
    rows = [HEADER, *KEY, ["Q2", "43", 2, None]]

    problems = problems_of(lambda: services.answer_key_import(exam=exam, file=xlsx_declaring(rows, dimension="A1:D2")))

    assert problems == ["Row 6: question Q2 is also listed in row 3."]
    assert not Question.objects.filter(exam=exam).exists()


def test_a_key_with_more_rows_than_markdesk_imports_is_refused_whole(exam, settings):
    settings.IMPORT_MAX_ROWS = 3

    problems = problems_of(lambda: services.answer_key_import(exam=exam, file=xlsx_upload([HEADER, *KEY])))

    assert problems == ["The sheet has data in row 5: markdesk imports at most 3 rows below the header from one file."]
    assert not Question.objects.filter(exam=exam).exists()


def test_a_key_with_data_beyond_the_column_limit_is_refused(exam, settings):
    settings.IMPORT_MAX_COLUMNS = 4

    problems = problems_of(
        lambda: services.answer_key_import(exam=exam, file=xlsx_upload([HEADER, *KEY, [None, None, None, None, "x"]]))
    )

    assert problems == [
        "Row 6 has data beyond column D: markdesk reads at most 4 columns. Delete the columns it does not need and "
        "import again."
    ]
    assert not Question.objects.filter(exam=exam).exists()


def test_a_successful_import_through_the_page_shows_the_key_and_a_summary(exam, teacher, client_for):
    response = import_through_page(
        client_for(teacher),
        exam,
        xlsx_upload([HEADER, ["1", "Na", 1.5, ""], ["q2", "carbon dioxide", 2, "CO2|CO₂"]]),
    )

    assert response.redirect_chain == [(reverse("answer_key", args=[exam.pk]), 302)]
    text = page_text(response)
    assert "Imported answer key: 2 added, 0 updated, 0 unchanged." in text
    assert "Answer key (2)" in text
    assert "<td>CO2 | CO₂</td>" in text
    assert '<td class="num">1.50</td>' in text and '<td class="num">2</td>' in text
    assert key_of(exam) == [
        ("Q1", "Na", [], Decimal("1.50")),
        ("Q2", "carbon dioxide", ["CO2", "CO₂"], Decimal("2.00")),
    ]


def test_a_refused_import_lists_its_problems_on_the_answer_key_page(exam, teacher, client_for):
    baker.make(Question, exam=exam, label="Q1", answer="Na", max_score=Decimal("1"), order=1)

    response = import_through_page(
        client_for(teacher),
        exam,
        xlsx_upload([HEADER, ["Q1", "sodium", 1, ""], ["Q2", "Cl", -1, ""], ["???", "K", 1, ""]], name="key.xlsx"),
    )

    assert response.redirect_chain == [(reverse("answer_key", args=[exam.pk]), 302)]
    text = page_text(response)
    assert "key.xlsx was not imported" in text
    assert "Fix these 2 problems" in text
    assert "Row 3: MAX_SCORE -1 is negative." in text
    assert "Row 4: unknown question '???'" in text
    assert "Imported answer key" not in text
    assert key_of(exam) == [("Q1", "Na", [], Decimal("1.00"))]


def test_a_missing_max_score_column_is_shown_on_the_answer_key_page(exam, teacher, client_for):
    response = import_through_page(client_for(teacher), exam, xlsx_upload([["QUESTION", "ANSWER"], ["Q1", "Na"]]))

    text = page_text(response)
    assert "Missing column MAX_SCORE in the header row (row 1)." in text
    assert "No questions yet." in text
    assert not Question.objects.filter(exam=exam).exists()


# ---------------------------------------------------------------- keeping the key by hand


def test_adding_a_question_normalises_its_label_and_puts_it_last(exam, teacher, client_for):
    baker.make(Question, exam=exam, label="Q1", order=4)

    response = client_for(teacher).post(
        reverse("answer_key", args=[exam.pk]),
        {"label": "5", "answer": "oxygen", "accept_text": " O2 | O₂ ||", "max_score": "1.5"},
        follow=True,
    )

    added = Question.objects.get(exam=exam, label="Q5")
    assert (added.answer, added.accept, added.max_score, added.order) == ("oxygen", ["O2", "O₂"], Decimal("1.50"), 5)
    text = page_text(response)
    assert "Added Q5." in text
    assert "Answer key (2)" in text


@pytest.mark.parametrize(
    ("label", "max_score", "error"),
    [
        ("q1", "1", "Q1 is already in the answer key."),
        ("name", "1", "NAME, ID and CLASS are the student's details, not questions."),
        ("???", "1", "Use labels like Q1, Q2a or 3 (letters, digits, at most 32)."),
        ("Q2", "-1", "The max score cannot be negative."),
    ],
    ids=["duplicate", "reserved", "label the import would refuse", "negative"],
)
def test_a_question_the_key_cannot_take_is_refused_in_the_form(exam, teacher, client_for, label, max_score, error):
    baker.make(Question, exam=exam, label="Q1", order=1)

    response = client_for(teacher).post(
        reverse("answer_key", args=[exam.pk]), {"label": label, "answer": "x", "accept_text": "", "max_score": max_score}
    )

    assert response.status_code == 200
    assert error in page_text(response)
    assert list(Question.objects.filter(exam=exam).values_list("label", flat=True)) == ["Q1"]


def test_editing_a_question_shows_and_keeps_its_accepted_answers(exam, teacher, client_for):
    question = baker.make(
        Question, exam=exam, label="Q2", answer="carbon dioxide", accept=["CO2", "CO₂"], max_score=Decimal("1"), order=1
    )
    client = client_for(teacher)
    url = reverse("question_edit", args=[exam.pk, question.pk])

    form_page = client.get(url)
    shown = re.search(r'name="accept_text" value="([^"]*)"', form_page.content.decode())
    assert shown is not None and html.unescape(shown.group(1)) == "CO2 | CO₂"

    response = client.post(
        url, {"label": "Q2", "answer": "carbon dioxide", "accept_text": html.unescape(shown.group(1)), "max_score": "2"}, follow=True
    )

    question.refresh_from_db()
    assert (question.accept, question.max_score) == (["CO2", "CO₂"], Decimal("2.00"))
    assert response.redirect_chain == [(reverse("answer_key", args=[exam.pk]), 302)]
    assert "Saved Q2." in page_text(response)


def test_editing_a_question_can_replace_its_accepted_answers(exam, teacher, client_for):
    question = baker.make(Question, exam=exam, label="Q2", answer="CO2", accept=["CO₂"], order=1)

    client_for(teacher).post(
        reverse("question_edit", args=[exam.pk, question.pk]),
        {"label": "Q2", "answer": "CO2", "accept_text": "carbon dioxide |  dry ice ", "max_score": "1"},
    )

    question.refresh_from_db()
    assert question.accept == ["carbon dioxide", "dry ice"]


def test_removing_a_question_takes_it_out_of_the_key(exam, teacher, client_for):
    question = baker.make(Question, exam=exam, label="Q2", order=2)
    keep = baker.make(Question, exam=exam, label="Q1", order=1)

    response = client_for(teacher).post(reverse("question_edit", args=[exam.pk, question.pk]), {"delete": "1"}, follow=True)

    assert list(Question.objects.filter(exam=exam)) == [keep]
    text = page_text(response)
    assert "Removed Q2 from the answer key." in text
    assert "Answer key (1)" in text


def test_a_question_of_another_exam_cannot_be_edited_through_this_one(exam, teacher, client_for):
    elsewhere = baker.make(Question, exam=baker.make(Exam, owner=teacher), label="Q1")

    response = client_for(teacher).post(reverse("question_edit", args=[exam.pk, elsewhere.pk]), {"delete": "1"})

    assert response.status_code == 404
    assert Question.objects.filter(pk=elsewhere.pk).exists()


# ---------------------------------------------------------------- the template download


def test_the_answer_key_template_is_a_workbook_with_the_key_headers_that_imports_cleanly(exam, teacher, client_for):
    client = client_for(teacher)

    response = client.get(reverse("spreadsheet_template", args=["answer-key"]))

    assert response.status_code == 200
    assert 'filename="markdesk-answer-key-template.xlsx"' in response["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    assert [cell.value for cell in sheet[1]] == ["QUESTION", "ANSWER", "MAX_SCORE", "ACCEPT"]

    imported = import_through_page(client, exam, SimpleUploadedFile("markdesk-answer-key-template.xlsx", response.content))

    assert "Imported answer key: 3 added, 0 updated, 0 unchanged." in page_text(imported)
    assert key_of(exam) == [
        ("Q1", "Na", [], Decimal("1.00")),
        ("Q2", "carbon dioxide", ["CO2", "CO₂"], Decimal("1.00")),
        ("Q3", "light travels faster than sound", [], Decimal("2.00")),
    ]
