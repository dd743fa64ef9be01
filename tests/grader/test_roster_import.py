"""Importing a roster from Excel (service and page) and keeping it by hand."""

from __future__ import annotations

import html
import io
import os
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from model_bakery import baker
from openpyxl import load_workbook

from grader import services
from grader.models import Exam, Student
from tests.conftest import layout_page, pdf_bytes, xlsx_declaring, xlsx_upload

HEADER = ["ID", "NAME", "CLASS", "EMAIL"]


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def students_of(exam: Exam) -> dict[str, tuple[str, str, str]]:
    return {s.student_id: (s.name, s.class_name, s.email) for s in Student.objects.filter(exam=exam)}


def xlsx_with_float_numbers(rows) -> SimpleUploadedFile:
    """An .xlsx whose whole numbers are written as ``1001.0``, the way some tools export them.

    openpyxl writes ``1001.0`` as ``1001`` and reads it back as an int; rewriting the sheet XML makes
    the reader hand markdesk a float, as it does for files saved by those tools.
    """
    source = zipfile.ZipFile(io.BytesIO(xlsx_upload(rows).read()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = re.sub(rb"<v>(\d+)</v>", rb"<v>\1.0</v>", data)
            target.writestr(item, data)
    return SimpleUploadedFile("roster.xlsx", buffer.getvalue())


def import_through_page(client, exam: Exam, upload, **extra):
    return client.post(reverse("roster_import", args=[exam.pk]), {"file": upload}, follow=True, **extra)


def problems_of(call) -> list[str]:
    with pytest.raises(services.ImportProblems) as caught:
        call()
    return caught.value.problems


# ---------------------------------------------------------------- the service


def test_a_good_roster_creates_every_student_with_tidied_names(exam):
    summary = services.roster_import(
        exam=exam,
        file=xlsx_upload(
            [
                HEADER,
                ["S1001", "  Amira   Haddad ", "9A", "amira@example.org"],
                ["S1002", "Ben Okafor", "9B", None],
            ]
        ),
    )

    assert students_of(exam) == {
        "S1001": ("Amira Haddad", "9A", "amira@example.org"),
        "S1002": ("Ben Okafor", "9B", ""),
    }
    assert (summary.created, summary.updated, summary.unchanged, summary.kept) == (2, 0, 0, [])
    assert summary.message("roster") == "Imported roster: 2 added, 0 updated, 0 unchanged."


def test_headers_match_in_any_case_and_order_and_extra_columns_are_ignored(exam):
    services.roster_import(
        exam=exam,
        file=xlsx_upload(
            [
                ["Email", "name", "Class", "id", "Notes"],
                ["amira@example.org", "Amira Haddad", "9A", "S1001", "late bus"],
                ["", "Ben Okafor", "9B", "S1002", "left-handed"],
            ]
        ),
    )

    assert students_of(exam) == {
        "S1001": ("Amira Haddad", "9A", "amira@example.org"),
        "S1002": ("Ben Okafor", "9B", ""),
    }


def test_numeric_ids_that_excel_stored_as_floats_lose_their_decimal_point(exam):
    upload = xlsx_with_float_numbers([HEADER, [1001, "Amira Haddad", 9, ""], [1002, "Ben Okafor", 9, ""]])
    sheet = load_workbook(io.BytesIO(upload.read()), read_only=True).worksheets[0]
    first_id = next(sheet.iter_rows(min_row=2, values_only=True))[0]
    assert isinstance(first_id, float) and first_id == 1001.0  # the reader really hands over a float
    upload.seek(0)

    services.roster_import(exam=exam, file=upload)

    assert students_of(exam) == {"1001": ("Amira Haddad", "9", ""), "1002": ("Ben Okafor", "9", "")}


def test_importing_again_updates_changed_students_and_never_duplicates_them(exam):
    services.roster_import(
        exam=exam,
        file=xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""], ["S2", "Ben Okafor", "9B", "ben@example.org"]]),
    )

    summary = services.roster_import(
        exam=exam,
        file=xlsx_upload(
            [
                HEADER,
                ["S1", "Amira Haddad-Smith", "9A", "amira@example.org"],
                ["S2", "Ben Okafor", "9B", "ben@example.org"],
                ["S3", "Chen Wei", "9C", ""],
            ]
        ),
    )

    assert Student.objects.filter(exam=exam).count() == 3
    assert students_of(exam) == {
        "S1": ("Amira Haddad-Smith", "9A", "amira@example.org"),
        "S2": ("Ben Okafor", "9B", "ben@example.org"),
        "S3": ("Chen Wei", "9C", ""),
    }
    assert (summary.created, summary.updated, summary.unchanged) == (1, 1, 1)


def test_students_missing_from_a_new_file_are_kept_and_reported(exam):
    baker.make(Student, exam=exam, student_id="S9", name="Dana Cruz", class_name="9A")
    baker.make(Student, exam=exam, student_id="S8", name="Eli Park", class_name="9B")

    summary = services.roster_import(exam=exam, file=xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""]]))

    assert set(students_of(exam)) == {"S1", "S8", "S9"}
    assert summary.kept == ["S8", "S9"]
    assert summary.message("roster") == (
        "Imported roster: 1 added, 0 updated, 0 unchanged. 2 already in markdesk but not in the file were kept: S8, S9."
    )


def test_the_same_id_in_another_exam_is_a_different_student(exam, teacher):
    other_exam = baker.make(Exam, owner=teacher)
    baker.make(Student, exam=other_exam, student_id="S1", name="Someone Else")

    services.roster_import(exam=exam, file=xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""]]))

    assert students_of(exam) == {"S1": ("Amira Haddad", "9A", "")}
    assert students_of(other_exam) == {"S1": ("Someone Else", "", "")}


def test_blank_rows_are_skipped_and_problems_keep_the_row_numbers_excel_shows(exam):
    problems = problems_of(
        lambda: services.roster_import(
            exam=exam,
            file=xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""], [None, None, None, None], ["S2", "", "9A", ""]]),
        )
    )

    assert problems == ["Row 4: the NAME is empty."]


BAD_FILES = {
    "missing column": (
        lambda: xlsx_upload([["ID", "NAME", "CLASS"], ["S1", "Amira Haddad", "9A"]]),
        ["Missing column EMAIL in the header row (row 1)."],
    ),
    "missing columns": (
        lambda: xlsx_upload([["ID", "NAME"], ["S1", "Amira Haddad"]]),
        ["Missing columns CLASS, EMAIL in the header row (row 1)."],
    ),
    "duplicate id": (
        lambda: xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""], ["S2", "Ben Okafor", "9B", ""], ["S1", "Chen Wei", "9C", ""]]),
        ["Row 4: the ID S1 is also used in row 2."],
    ),
    "duplicate id written once as a number and once as text": (
        lambda: xlsx_upload([HEADER, [1001, "Amira Haddad", "9A", ""], ["1001", "Ben Okafor", "9B", ""]]),
        ["Row 3: the ID 1001 is also used in row 2."],
    ),
    "empty id": (
        lambda: xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""], [None, "Ben Okafor", "9B", ""]]),
        ["Row 3: the ID is empty."],
    ),
    "empty name": (
        lambda: xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""], ["S2", "   ", "9B", ""]]),
        ["Row 3: the NAME is empty."],
    ),
    "bad email": (
        lambda: xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""], ["S2", "Ben Okafor", "9B", "ben.example.org"]]),
        ["Row 3: 'ben.example.org' is not a valid email address."],
    ),
    "header only": (lambda: xlsx_upload([HEADER]), ["The file has a header row but no students."]),
    "no header row": (
        lambda: xlsx_upload([["Pupil", "Form"], ["Amira Haddad", "9A"]]),
        ["No header row found: the first row should name the columns ID, NAME, CLASS, EMAIL."],
    ),
    "text file named .xlsx": (
        lambda: SimpleUploadedFile("roster.xlsx", b"ID,NAME,CLASS,EMAIL\nS1,Amira Haddad,9A,\n"),
        ["The file is not an Excel .xlsx workbook (save it as .xlsx and try again)."],
    ),
    "pdf": (
        lambda: SimpleUploadedFile("roster.pdf", pdf_bytes([layout_page(1, size=(200, 280))])),
        ["The file is not an Excel .xlsx workbook (save it as .xlsx and try again)."],
    ),
    "empty file": (
        lambda: SimpleUploadedFile("roster.xlsx", b""),
        ["The file is not an Excel .xlsx workbook (save it as .xlsx and try again)."],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_roster_imports_nothing_leaves_existing_students_alone_and_names_the_problem(exam, case):
    make_file, expected = BAD_FILES[case]
    baker.make(Student, exam=exam, student_id="S1", name="Amira Original", class_name="8A", email="")
    before = students_of(exam)

    problems = problems_of(lambda: services.roster_import(exam=exam, file=make_file()))

    assert problems == expected
    assert students_of(exam) == before


def test_every_problem_in_a_file_is_listed_with_its_row_and_no_good_row_is_imported(exam):
    problems = problems_of(
        lambda: services.roster_import(
            exam=exam,
            file=xlsx_upload(
                [
                    HEADER,
                    ["S1", "Amira Haddad", "9A", "amira@example.org"],
                    ["", "", "9A", "not-an-email"],
                    ["S1", "Ben Okafor", "9B", ""],
                    ["S4", "Chen Wei", "9C", ""],
                ]
            ),
        )
    )

    assert problems == [
        "Row 3: the ID is empty.",
        "Row 3: the NAME is empty.",
        "Row 3: 'not-an-email' is not a valid email address.",
        "Row 4: the ID S1 is also used in row 2.",
    ]
    assert Student.objects.filter(exam=exam).count() == 0


def test_an_overlong_id_is_refused(exam):
    problems = problems_of(
        lambda: services.roster_import(exam=exam, file=xlsx_upload([HEADER, ["X" * 65, "Amira Haddad", "9A", ""]]))
    )

    assert problems == [f"Row 2: the ID {'X' * 20}… is longer than 64 characters."]
    assert not Student.objects.filter(exam=exam).exists()


def test_a_file_over_the_upload_limit_is_refused_before_it_is_read(exam, settings):
    settings.MAX_UPLOAD_MB = 0  # every file is over a limit of 0 MB

    problems = problems_of(
        lambda: services.roster_import(exam=exam, file=xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""]], name="roster.xlsx"))
    )

    assert len(problems) == 1
    assert problems[0].startswith("roster.xlsx is ")
    assert problems[0].endswith("over the 0 MB limit for one file.")
    assert not Student.objects.filter(exam=exam).exists()


STUDENTS = [["S1", "Amira Haddad", "9A", ""], ["S2", "Ben Okafor", "9B", ""], ["S3", "Chloe Martin", "9A", ""],
            ["S4", "Dev Patel", "9B", ""], ["S5", "Eva Rossi", "9A", ""]]


def test_every_row_is_imported_even_when_the_sheet_declares_fewer(exam):
    summary = services.roster_import(exam=exam, file=xlsx_declaring([HEADER, *STUDENTS], dimension="A1:D3"))

    assert summary.created == 5 and sorted(students_of(exam)) == ["S1", "S2", "S3", "S4", "S5"]


def test_a_duplicate_id_past_the_declared_rows_refuses_the_whole_file(exam):
    rows = [HEADER, *STUDENTS, ["S1", "Femi Adeyemi", "9B", ""]]

    problems = problems_of(lambda: services.roster_import(exam=exam, file=xlsx_declaring(rows, dimension="A1:D3")))

    assert problems == ["Row 7: the ID S1 is also used in row 2."]
    assert not Student.objects.filter(exam=exam).exists()


def test_a_file_with_more_rows_than_markdesk_imports_is_refused_whole(exam, settings):
    settings.IMPORT_MAX_ROWS = 4
    baker.make(Student, exam=exam, student_id="S1", name="Amira Haddad", class_name="9B")

    problems = problems_of(
        lambda: services.roster_import(exam=exam, file=xlsx_declaring([HEADER, *STUDENTS], dimension="A1:D2"))
    )

    assert problems == ["The sheet has data in row 6: markdesk imports at most 4 rows below the header from one file."]
    assert students_of(exam) == {"S1": ("Amira Haddad", "9B", "")}


def test_blank_rows_below_the_last_student_do_not_count_against_the_row_limit(exam, settings):
    settings.IMPORT_MAX_ROWS = 5

    summary = services.roster_import(exam=exam, file=xlsx_upload([HEADER, *STUDENTS, [None, None, None, None], [""]]))

    assert summary.created == 5


def test_a_file_with_data_beyond_the_column_limit_is_refused(exam, settings):
    settings.IMPORT_MAX_COLUMNS = 5
    rows = [[*HEADER, "NOTES"], ["S1", "Amira Haddad", "9A", "", "fine"], ["S2", "Ben Okafor", "9B", "", None, "x"]]

    problems = problems_of(lambda: services.roster_import(exam=exam, file=xlsx_upload(rows)))

    assert problems == [
        "Row 3 has data beyond column E: markdesk reads at most 5 columns. Delete the columns it does not need and "
        "import again."
    ]
    assert not Student.objects.filter(exam=exam).exists()


# ---------------------------------------------------------------- the page


def test_a_successful_import_through_the_page_lists_the_students_and_a_summary(exam, teacher, client_for):
    baker.make(Student, exam=exam, student_id="S9", name="Dana Cruz", class_name="9A")

    response = import_through_page(
        client_for(teacher),
        exam,
        xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", "amira@example.org"], ["S2", "Ben Okafor", "9B", ""]]),
    )

    assert response.redirect_chain == [(reverse("roster", args=[exam.pk]), 302)]
    text = page_text(response)
    assert (
        "Imported roster: 2 added, 0 updated, 0 unchanged. 1 already in markdesk but not in the file were kept: S9."
        in text
    )
    assert "Roster (3)" in text
    assert "Amira Haddad" in text and "amira@example.org" in text and "Ben Okafor" in text
    assert "was not imported" not in text
    assert set(students_of(exam)) == {"S1", "S2", "S9"}


def test_a_refused_import_shows_every_problem_on_the_roster_page_once(exam, teacher, client_for):
    baker.make(Student, exam=exam, student_id="S1", name="Amira Original", class_name="8A")
    client = client_for(teacher)

    response = import_through_page(
        client,
        exam,
        xlsx_upload(
            [HEADER, ["S1", "Amira Haddad", "9A", ""], ["S1", "Ben Okafor", "9B", "nope"], ["S3", "Chen Wei", "9C", ""]],
            name="class-list.xlsx",
        ),
    )

    assert response.redirect_chain == [(reverse("roster", args=[exam.pk]), 302)]
    text = page_text(response)
    assert "class-list.xlsx was not imported" in text
    assert "Nothing was changed. Fix these 2 problems in the file and import it again:" in text
    assert "Row 3: the ID S1 is also used in row 2." in text
    assert "Row 3: 'nope' is not a valid email address." in text
    assert "Imported roster" not in text
    assert students_of(exam) == {"S1": ("Amira Original", "8A", "")}

    again = client.get(reverse("roster", args=[exam.pk]))
    assert "was not imported" not in page_text(again)


@pytest.mark.parametrize(
    ("upload", "problem"),
    [
        (lambda: xlsx_upload([["ID", "NAME", "CLASS"], ["S1", "Amira Haddad", "9A"]]), "Missing column EMAIL in the header row (row 1)."),
        (lambda: xlsx_upload([HEADER], name="roster.xlsx"), "The file has a header row but no students."),
        (
            lambda: SimpleUploadedFile("roster.xlsx", b"just some text, not a workbook"),
            "The file is not an Excel .xlsx workbook (save it as .xlsx and try again).",
        ),
    ],
    ids=["missing column", "header only", "not a workbook"],
)
def test_file_level_problems_are_shown_on_the_roster_page(exam, teacher, client_for, upload, problem):
    response = import_through_page(client_for(teacher), exam, upload())

    text = page_text(response)
    assert "was not imported" in text
    assert problem in text
    assert "No students yet." in text
    assert not Student.objects.filter(exam=exam).exists()


def test_a_file_over_the_per_file_limit_is_refused_as_it_arrives_with_a_413_page(exam, teacher, client_for, settings):
    settings.MAX_UPLOAD_MB = 1
    too_big = SimpleUploadedFile("roster.xlsx", os.urandom(1024 * 1024 + 300 * 1024))

    response = import_through_page(client_for(teacher), exam, too_big, HTTP_ACCEPT="text/html")

    assert response.status_code == 413
    assert "roster.xlsx is over the 1 MB limit for one file. Nothing was stored." in page_text(response)
    assert not Student.objects.filter(exam=exam).exists()


def test_with_an_upload_limit_of_zero_every_import_is_refused_with_a_message(exam, teacher, client_for, settings):
    settings.MAX_UPLOAD_MB = 0

    response = import_through_page(client_for(teacher), exam, xlsx_upload([HEADER, ["S1", "Amira Haddad", "9A", ""]]),
                                   HTTP_ACCEPT="text/html")

    assert response.status_code == 413
    assert "sheet.xlsx is over the 0 MB limit for one file." in page_text(response)
    assert not Student.objects.filter(exam=exam).exists()


def test_posting_the_import_form_without_a_file_asks_for_one(exam, teacher, client_for):
    response = client_for(teacher).post(reverse("roster_import", args=[exam.pk]), {}, follow=True)

    assert "Choose a file to upload." in page_text(response)
    assert not Student.objects.filter(exam=exam).exists()


# ---------------------------------------------------------------- keeping the roster by hand


def test_adding_a_student_in_the_form_puts_them_on_the_roster(exam, teacher, client_for):
    response = client_for(teacher).post(
        reverse("roster", args=[exam.pk]),
        {"student_id": " S7 ", "name": "Farah Ali", "class_name": "9A", "email": "farah@example.org"},
        follow=True,
    )

    assert students_of(exam) == {"S7": ("Farah Ali", "9A", "farah@example.org")}
    text = page_text(response)
    assert "Added Farah Ali (S7)." in text
    assert "Roster (1)" in text


def test_adding_a_student_whose_id_is_taken_is_refused_with_a_message(exam, teacher, client_for):
    baker.make(Student, exam=exam, student_id="S7", name="Farah Ali", class_name="9A")

    response = client_for(teacher).post(
        reverse("roster", args=[exam.pk]), {"student_id": "S7", "name": "Gil Moss", "class_name": "9B", "email": ""}
    )

    assert response.status_code == 200
    assert "S7 is already on the roster (Farah Ali)." in page_text(response)
    assert students_of(exam) == {"S7": ("Farah Ali", "9A", "")}


def test_adding_a_student_with_a_bad_email_is_refused(exam, teacher, client_for):
    response = client_for(teacher).post(
        reverse("roster", args=[exam.pk]), {"student_id": "S7", "name": "Gil Moss", "class_name": "", "email": "gil@"}
    )

    assert response.status_code == 200
    assert "Enter a valid email address." in page_text(response)
    assert not Student.objects.filter(exam=exam).exists()


def test_editing_a_student_saves_the_changes(exam, teacher, client_for):
    student = baker.make(Student, exam=exam, student_id="S7", name="Farah Ali", class_name="9A", email="")
    client = client_for(teacher)
    url = reverse("student_edit", args=[exam.pk, student.pk])

    form_page = client.get(url)
    assert form_page.status_code == 200
    assert 'value="Farah Ali"' in form_page.content.decode()

    response = client.post(
        url, {"student_id": "S7", "name": "Farah Ali-Khan", "class_name": "9B", "email": "farah@example.org"}, follow=True
    )

    assert students_of(exam) == {"S7": ("Farah Ali-Khan", "9B", "farah@example.org")}
    assert response.redirect_chain == [(reverse("roster", args=[exam.pk]), 302)]
    assert "Saved Farah Ali-Khan." in page_text(response)


def test_giving_a_student_an_id_another_student_has_is_refused(exam, teacher, client_for):
    baker.make(Student, exam=exam, student_id="S1", name="Amira Haddad")
    student = baker.make(Student, exam=exam, student_id="S7", name="Farah Ali")

    response = client_for(teacher).post(
        reverse("student_edit", args=[exam.pk, student.pk]), {"student_id": "S1", "name": "Farah Ali", "class_name": "", "email": ""}
    )

    assert response.status_code == 200
    assert "S1 is already on the roster (Amira Haddad)." in page_text(response)
    student.refresh_from_db()
    assert student.student_id == "S7"


def test_removing_a_student_takes_them_off_the_roster(exam, teacher, client_for):
    student = baker.make(Student, exam=exam, student_id="S7", name="Farah Ali")
    keep = baker.make(Student, exam=exam, student_id="S8", name="Gil Moss")

    response = client_for(teacher).post(
        reverse("student_edit", args=[exam.pk, student.pk]), {"delete": "1"}, follow=True
    )

    assert list(Student.objects.filter(exam=exam)) == [keep]
    text = page_text(response)
    assert "Removed Farah Ali from the roster." in text
    assert "Roster (1)" in text


def test_a_student_of_another_exam_cannot_be_edited_through_this_one(exam, teacher, client_for):
    elsewhere = baker.make(Student, exam=baker.make(Exam, owner=teacher), student_id="S7", name="Farah Ali")

    response = client_for(teacher).post(reverse("student_edit", args=[exam.pk, elsewhere.pk]), {"delete": "1"})

    assert response.status_code == 404
    assert Student.objects.filter(pk=elsewhere.pk).exists()


# ---------------------------------------------------------------- the template download


def test_the_roster_template_is_a_workbook_with_the_roster_headers_that_imports_cleanly(exam, teacher, client_for):
    client = client_for(teacher)

    response = client.get(reverse("spreadsheet_template", args=["roster"]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert 'filename="markdesk-roster-template.xlsx"' in response["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.content))
    assert [cell.value for cell in workbook.worksheets[0][1]] == ["ID", "NAME", "CLASS", "EMAIL"]

    imported = import_through_page(client, exam, SimpleUploadedFile("markdesk-roster-template.xlsx", response.content))

    assert "Imported roster: 2 added, 0 updated, 0 unchanged." in page_text(imported)
    assert students_of(exam) == {
        "S1001": ("Amira Haddad", "9A", "amira.haddad@example.org"),
        "S1002": ("Ben Okafor", "9B", ""),
    }


def test_an_unknown_template_is_a_bad_request(teacher, client_for):
    assert client_for(teacher).get(reverse("spreadsheet_template", args=["grades"])).status_code == 400


def test_the_size_refusal_shows_a_size_that_is_really_over_the_limit(exam, settings):
    settings.MAX_UPLOAD_MB = 1
    too_big = SimpleUploadedFile("roster.xlsx", os.urandom(1024 * 1024 + 300 * 1024))

    problems = problems_of(lambda: services.roster_import(exam=exam, file=too_big))

    shown = re.search(r"roster\.xlsx is ([\d.]+)\s*MB, over the ([\d.]+)\s*MB limit for one file\.", problems[0])
    assert shown is not None
    assert float(shown.group(1)) > float(shown.group(2))


def test_import_problems_are_shown_on_the_roster_of_the_exam_they_belong_to_only(exam, teacher, client_for):
    other_exam = baker.make(Exam, owner=teacher, title="Year 10 Physics")
    client = client_for(teacher)
    client.post(reverse("roster_import", args=[exam.pk]), {"file": xlsx_upload([HEADER], name="year9.xlsx")})

    elsewhere = client.get(reverse("roster", args=[other_exam.pk]))
    own = client.get(reverse("roster", args=[exam.pk]))

    assert "year9.xlsx was not imported" not in page_text(elsewhere)
    assert "year9.xlsx was not imported" in page_text(own)


@pytest.mark.parametrize(
    ("row", "column"),
    [(["S1", "Amira Haddad", "C" * 65, ""], "CLASS"), (["S1", "A" * 201, "9A", ""], "NAME")],
    ids=["class", "name"],
)
def test_an_overlong_class_or_name_is_reported_with_its_row(exam, row, column):
    problems = problems_of(lambda: services.roster_import(exam=exam, file=xlsx_upload([HEADER, row])))

    assert len(problems) == 1 and problems[0].startswith("Row 2:") and column in problems[0]
    assert not Student.objects.filter(exam=exam).exists()
