"""The outputs workflows in chromium against a live server: downloads from the results page, emailing
students through a real local SMTP server, backup and restore, and what a department head may do.

Celery runs eagerly here, and with ``transaction=True`` each job and email runs for real as its
request commits, so the page the browser lands on already shows the outcome.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from grader.grading.models import ExamStatus
from grader.models import Exam
from grader.outputs.models import EmailDelivery
from tests.conftest import pdf_first_page_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp/outputs-shots")
PASSWORD = "a-long-password"
TEACHER_EMAIL = "teacher@school.example"
EMAILED = {"S1": "ada@example.org", "S2": "ben@example.org", "S4": "dev@example.org", "S5": "eva@example.org",
           "S6": "femi@example.org"}


def _log_in(page, live_server, user, path: str) -> None:
    user.set_password(PASSWORD)
    user.save()
    page.goto(f"{live_server.url}/accounts/login/?next={path}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _download(page, link) -> tuple[str, bytes]:
    """Click ``link`` and return the download's file name and content."""
    with page.expect_download() as info:
        link.click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def _ready_file(page, name: str):
    """The row of the Files table for the file ``name`` once it is ready, and its Download link."""
    from playwright.sync_api import expect

    row = page.locator("#files tbody tr").filter(has_text=name)
    expect(row.locator(".progress-cell")).to_have_text("ready")
    return row.get_by_role("link", name=re.compile("^Download"))


def test_a_teacher_downloads_all_scored_scripts_and_the_spreadsheet_from_the_results_page(page, live_server, teacher, scored_exam):
    from playwright.sync_api import expect

    _log_in(page, live_server, teacher, reverse("outputs", args=[scored_exam.pk]))
    expect(page.get_by_role("heading", name="Results", exact=True)).to_be_visible()
    expect(page.locator("#files")).to_contain_text("Files you ask for appear here")
    _shot(page, "results-teacher")

    page.get_by_role("button", name="All scored scripts (zip of 6 PDFs)").click()
    name, data = _download(page, _ready_file(page, "All scored scripts"))
    assert name == "Year 9 Science - scored scripts.zip"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == [f"S{n}.pdf" for n in range(1, 7)]
    assert all(archive.read(member).startswith(b"%PDF") for member in archive.namelist())

    page.get_by_role("button", name="Scores spreadsheet (xlsx)").click()
    name, data = _download(page, _ready_file(page, "Scores spreadsheet"))
    assert name == "Year 9 Science - scores.xlsx"
    workbook = load_workbook(io.BytesIO(data), read_only=True)
    cells = {str(cell) for row in workbook.worksheets[0].iter_rows(values_only=True) for cell in row}
    assert {"S1", "S6", "Ada Lovelace"} <= cells
    _shot(page, "results-teacher-files")


def test_a_teacher_tests_the_email_then_sends_each_student_their_own_scored_script(page, live_server, teacher, scored_exam, smtp):
    from playwright.sync_api import expect

    ExamStatus.objects.update_or_create(exam=scored_exam, defaults={"finished_at": timezone.now(), "finished_by": teacher})
    teacher.email = TEACHER_EMAIL
    _log_in(page, live_server, teacher, reverse("email_students", args=[scored_exam.pk]))
    preview = page.locator("#email-preview")
    expect(preview).to_contain_text("Year 9 Science: your scored script")
    send = page.get_by_role("button", name="Send to students")
    expect(send).to_be_disabled()
    _shot(page, "email-before")

    page.get_by_label("Subject").fill("{exam} for {name}: your scored script")
    expect(preview).to_contain_text("Year 9 Science for Ada Lovelace: your scored script")
    expect(preview).to_contain_text("not saved")
    page.get_by_label("Preview and test with").select_option(label="Ben Okafor (S2)")
    expect(preview).to_contain_text("Ben Okafor <ben@example.org>")
    expect(preview).to_contain_text("You scored 4.5 out of 6 (75%)")

    page.get_by_role("button", name="Save and send a test to me").click()
    expect(page.get_by_role("status")).to_contain_text(f"Test sent to {TEACHER_EMAIL}")
    (test,) = smtp.received
    assert test.recipients == [TEACHER_EMAIL]
    assert test.message["Subject"] == "[TEST] Year 9 Science for Ben Okafor: your scored script"
    assert test.attachment[0] == "Year 9 Science - S2.pdf"

    send.click()
    expect(page.get_by_role("status")).to_contain_text("Sending 5 emails. No email address for Chloe Martin")
    students = {s.student_id: s for s in scored_exam.students.all()}
    for student_id in EMAILED:
        expect(page.locator(f"#student-{students[student_id].pk}")).to_have_attribute("data-state", "sent")
    expect(page.locator(f"#student-{students['S3'].pk}")).to_contain_text("no email address")
    expect(page.locator(f"#student-{students['S7'].pk}")).to_contain_text("absent")
    expect(send).to_be_enabled()  # pressing it again sends nobody anything: sent is never resent
    _shot(page, "email-after")

    assert len(smtp.received) == 1 + len(EMAILED)
    for student_id, address in EMAILED.items():
        (received,) = smtp.to(address)
        assert received.recipients == [address]
        assert received.message["Subject"] == f"Year 9 Science for {students[student_id].name}: your scored script"
        filename, pdf = received.attachment
        assert filename == f"Year 9 Science - {student_id}.pdf"
        text = pdf_first_page_text(pdf)
        assert student_id in text and students[student_id].name in text
    assert set(EmailDelivery.objects.values_list("status", flat=True)) == {"sent", "no-address"}


def test_a_teacher_backs_up_the_exam_and_restores_it_as_a_new_exam(page, live_server, teacher, scored_exam, tmp_path):
    from playwright.sync_api import expect

    _log_in(page, live_server, teacher, reverse("outputs", args=[scored_exam.pk]))
    page.get_by_role("button", name="Backup (zip)").click()
    name, data = _download(page, _ready_file(page, "Backup of the whole exam"))
    assert name.startswith("Year 9 Science - backup ") and data.startswith(b"PK")
    backup = tmp_path / name
    backup.write_bytes(data)

    page.goto(f"{live_server.url}{reverse('exam_list')}")
    page.get_by_role("link", name="Restore an exam from a backup").click()
    expect(page.get_by_role("heading", name="Restore an exam from a backup")).to_be_visible()
    _shot(page, "restore")
    page.get_by_label(re.compile("^Backup")).set_input_files(
        files=[{"name": "scores.xlsx", "mimeType": "application/zip", "buffer": b"not a zip"}]
    )
    page.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("alert")).to_contain_text("scores.xlsx was not restored")
    _shot(page, "restore-refused")

    page.get_by_label(re.compile("^Backup")).set_input_files(str(backup))
    page.get_by_role("button", name="Restore").click()
    # Restored beside the original, so its title says which is which.
    expect(page.get_by_role("status")).to_contain_text(f"Restored Year 9 Science (restored) from {name}")
    restored = Exam.objects.exclude(pk=scored_exam.pk).get()
    assert restored.owner == teacher and restored.scripts.count() == 6
    assert page.url.endswith(restored.get_absolute_url())


def test_a_head_downloads_the_sample_report_but_cannot_change_scores(page, live_server, head, scored_exam):
    from playwright.sync_api import expect

    _log_in(page, live_server, head, reverse("outputs", args=[scored_exam.pk]))
    expect(page.get_by_role("heading", name="Results", exact=True)).to_be_visible()
    buttons = page.locator("main").get_by_role("button")
    expect(buttons).to_have_text(["Sample report (PDF)"])  # nothing else: no scores, emails or backups
    assert page.get_by_role("link", name="Email students…").count() == 0
    _shot(page, "results-head")

    page.get_by_label("Scripts per band").fill("2")
    page.get_by_role("button", name="Sample report (PDF)").click()
    link = _ready_file(page, "sample report")
    expect(page.locator("#files tbody tr")).to_contain_text(["2 per band"])
    name, data = _download(page, link)
    assert name == "Year 9 Science - sample report.pdf" and data.startswith(b"%PDF")
    _shot(page, "results-head-report")

    # The head's own browser session, replayed by the test client: scores cannot be changed with it.
    session = next(c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    client = Client(headers={"HX-Request": "true"})
    client.cookies[settings.SESSION_COOKIE_NAME] = session["value"]
    answer = scored_exam.scripts.get(number=1).answers.first()
    response = client.post(reverse("grading_score", args=[scored_exam.pk, answer.pk]),
                           {"score": "0", "version": answer.version})
    assert response.status_code == 403
    answer.refresh_from_db()
    assert answer.score is not None and answer.score != 0

