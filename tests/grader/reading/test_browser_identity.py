"""A teacher resolves an unmatched script on the identity screen with the keyboard only."""

from __future__ import annotations

import pytest
from django.utils import timezone

from grader.models import Exam, Script, Student, User
from grader.reading.models import ScriptIdentity

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def unmatched(department):
    """An exam of three students: script 1 matched automatically, script 2 read but matched to nobody."""
    teacher = User.objects.create_user("hannah", password="a-long-password", department=department)
    exam = Exam.objects.create(title="Year 9 Science mock", owner=teacher, department=department)
    amira, ben, chloe = (
        Student.objects.create(exam=exam, student_id=sid, name=name, class_name="9A")
        for sid, name in (("S1001", "Amira Haddad"), ("S1002", "Ben Okafor"), ("S1003", "Chloe Martin"))
    )
    now = timezone.now()
    first = Script.objects.create(exam=exam, number=1, student=ben)
    ScriptIdentity.objects.create(
        script=first, name_text="Ben Okafor", id_text="S1002", read_at=now, score=0.97, confident=True,
        candidates=[{"student": "S1002", "score": 0.97}],
    )
    second = Script.objects.create(exam=exam, number=2)
    ScriptIdentity.objects.create(
        script=second, name_text="Amr Hadad", id_text="S10O7", read_at=now, score=0.45, confident=False,
        candidates=[{"student": "S1003", "score": 0.45}, {"student": "S1001", "score": 0.44}],
    )
    return exam, second, amira


def test_a_teacher_resolves_an_unmatched_script_with_the_keyboard_only(page, live_server, unmatched):
    from playwright.sync_api import expect

    exam, script, amira = unmatched
    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{exam.pk}/identity/")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Who wrote each script?")).to_be_visible()
    expect(page.get_by_role("button", name="Keys")).to_be_visible()  # shown by identity.js once its keys work

    # The unmatched script is listed first; j focuses it, / opens the roster search.
    page.keyboard.press("j")
    expect(page.locator("#script-2")).to_be_focused()
    page.keyboard.press("/")
    search = page.get_by_role("combobox", name="Search the roster for the writer of script 2")
    expect(search).to_be_focused()
    page.keyboard.type("hadd")
    expect(page.get_by_role("option", name="Amira Haddad")).to_be_visible()
    page.keyboard.press("Enter")

    expect(page.get_by_text("Saved: script 2 is Amira Haddad (S1001).")).to_be_visible()
    expect(page.locator("#script-2")).to_be_focused()
    script.refresh_from_db()
    assert script.student == amira
    assert script.identity.confirmed_at is not None
    assert script.identity.confirmed_by.username == "hannah"

    # Picking a student another (unconfirmed) script had frees that script, whose row updates too.
    page.keyboard.press("/")
    page.keyboard.type("S1002")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved: script 2 is Ben Okafor (S1002).")).to_be_visible()
    expect(page.locator("#script-1")).to_contain_text("Not matched")
    assert Script.objects.get(pk=script.pk).student.student_id == "S1002"
    assert Script.objects.get(exam=exam, number=1).student is None

    # ? shows the keys, and again hides them.
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_visible()
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_hidden()
