"""A teacher sets up an exam in a real browser: create, import roster and key, upload the paper and scans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.scans import services as scans
from grader.models import ScanUpload, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_folder(demo_folder_for) -> Path:
    return demo_folder_for(students=4, absent=1, seed=3)


@pytest.fixture
def queued_uploads(monkeypatch) -> list[ScanUpload]:
    """Uploads the app hands to Celery; the test plays the worker so it can watch the progress bar."""
    queued: list[ScanUpload] = []
    monkeypatch.setattr(scans, "scan_upload_enqueue", lambda *, upload: queued.append(upload))
    return queued


def test_a_teacher_sets_up_an_exam_and_watches_the_scans_become_scripts(
    page, live_server, demo_folder, queued_uploads, department
):
    User.objects.create_user("hannah", password="a-long-password", department=department, first_name="Hannah")
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name="New exam").click()
    page.get_by_label("Title").fill("Year 9 Science mock")
    page.get_by_label("Pages per script").fill("2")
    page.get_by_role("button", name="Create exam").click()
    expect(page.get_by_role("heading", name="Year 9 Science mock")).to_be_visible()

    page.get_by_role("link", name=re.compile("Roster")).click()
    page.get_by_label(re.compile("Roster \\(.xlsx\\)")).set_input_files(demo_folder / "roster.xlsx")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported roster: 4 added")).to_be_visible()

    page.get_by_role("link", name="Year 9 Science mock").click()
    page.get_by_role("link", name=re.compile("Answer key")).click()
    page.get_by_label(re.compile("Answer key \\(.xlsx\\)")).set_input_files(demo_folder / "answers.xlsx")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported answer key: 12 added")).to_be_visible()

    page.get_by_role("link", name="Year 9 Science mock").click()
    page.get_by_label("Blank exam (PDF)").set_input_files(demo_folder / "template.pdf")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("Blank exam stored: 2 pages.")).to_be_visible()

    page.get_by_label(re.compile("Scanned scripts")).set_input_files(demo_folder / "scans.pdf")
    page.get_by_role("button", name="Upload scans").click()
    expect(page.get_by_text("scans.pdf: 6 pages queued for processing.")).to_be_visible()
    expect(page.get_by_text("Queued 0/6")).to_be_visible()
    assert page.get_by_text("Scripts (0)").is_visible()

    scans.scan_upload_process(upload_id=queued_uploads[0].pk)

    # The row polls for progress, stops when done, and the scripts appear without a reload.
    expect(page.get_by_text("6 pages read, 3 scripts made.")).to_be_visible()
    expect(page.get_by_text("Scripts (3)")).to_be_visible()
    assert page.locator("tr[hx-trigger]").count() == 0

    page.get_by_role("link", name=re.compile("Script 2")).click()
    expect(page.get_by_role("heading", name="Script 2")).to_be_visible()
    expect(page.locator("figure.page-card img")).to_have_count(2)
