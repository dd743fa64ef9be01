"""A teacher picks co-markers on the exam form by typing their names, with the keyboard only."""

from __future__ import annotations

import pytest

from grader.models import Exam, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_teacher_finds_and_ticks_co_markers_by_typing_without_the_mouse(page, live_server, department):
    from playwright.sync_api import expect

    User.objects.create_user("hannah", password="a-long-password", department=department, first_name="Hannah")
    for first, last in [("Amira", "Okafor"), ("Ben", "Walsh"), ("Chloé", "Martin"), ("Dev", "Patel")]:
        User.objects.create_user(first.lower(), password="a-long-password", department=department,
                                 first_name=first, last_name=last)

    page.goto(f"{live_server.url}/exams/new/")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="New exam")).to_be_visible()
    page.get_by_label("Title").fill("Year 10 Chemistry")

    markers = page.get_by_role("group", name="Co-markers")
    find = markers.get_by_role("searchbox", name="Find co-markers")
    find.focus()
    page.keyboard.type("chloe")  # accents do not matter
    expect(markers.get_by_role("checkbox")).to_have_count(1)  # hidden names leave the list
    expect(markers.get_by_role("checkbox", name="Chloé Martin")).to_be_visible()
    expect(markers.get_by_role("checkbox", name="Ben Walsh")).to_be_hidden()
    page.keyboard.press("Enter")  # ticks the one name shown, and does not send the form
    expect(markers.get_by_role("checkbox", name="Chloé Martin")).to_be_checked()
    expect(markers.get_by_text("Chosen: Chloé Martin")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/exams/new/")

    page.keyboard.type("wal")  # the filter's text was selected, so this replaces it
    page.keyboard.press("ArrowDown")
    expect(markers.get_by_role("checkbox", name="Ben Walsh")).to_be_focused()
    page.keyboard.press("Space")
    expect(markers.get_by_text("Chosen: Chloé Martin, Ben Walsh")).to_be_visible()  # in the list's order

    page.keyboard.press("ArrowUp")
    expect(find).to_be_focused()
    page.keyboard.type("zzz")
    expect(markers.get_by_text("No one matches.")).to_be_visible()
    page.keyboard.press("Escape")
    expect(markers.get_by_role("checkbox", name="Amira Okafor")).to_be_visible()

    page.screenshot(path="/tmp/screens/exam-form-co-markers.png", full_page=True)
    page.get_by_role("button", name="Create exam").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Year 10 Chemistry")).to_be_visible()
    expect(page.get_by_text("co-markers")).to_contain_text("Ben Walsh")
    expect(page.get_by_text("co-markers")).to_contain_text("Chloé Martin")
    exam = Exam.objects.get(title="Year 10 Chemistry")
    assert sorted(exam.co_markers.values_list("username", flat=True)) == ["ben", "chloé"]


def test_co_markers_are_checkboxes_that_post_without_javascript(client_for, teacher, other_teacher):
    response = client_for(teacher).get("/exams/new/")
    assert b'type="checkbox" name="co_markers"' in response.content
    assert b"Ctrl+click" not in response.content
