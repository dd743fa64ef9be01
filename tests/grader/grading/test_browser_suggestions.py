"""In the browser, a saved score changes the suggestion of the rows that read like it, in place."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from model_bakery import baker

from grader.models import Exam, Question, Script, User
from grader.reading.models import Answer
from grader.reading.services import question_resuggest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def question(department):
    teacher = User.objects.create_user("imani", password="a-long-password", department=department)
    exam = Exam.objects.create(title="Biology quiz", owner=teacher, department=department, pages_per_script=1)
    question = baker.make(Question, exam=exam, label="Q1", order=1, answer="mitochondria", max_score=Decimal("1"),
                          granularity=Decimal("0.5"), strategy="fuzzy")
    for number, text in enumerate(["nucleus membrane", "nucleus membranes", "ribosome"], start=1):
        baker.make(Answer, script=baker.make(Script, exam=exam, number=number), question=question, text=text,
                   read_at=timezone.now(), readings={"easyocr": {"text": text, "confidence": 0.9}})
    question_resuggest(question_id=question.pk)
    return question


def test_a_part_mark_is_suggested_at_once_for_an_answer_that_reads_nearly_the_same(page, live_server, question):
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{question.exam_id}/grade/{question.pk}/")
    page.get_by_label("Username").fill("imani")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    first = page.get_by_label("Q1 score for script 1", exact=True)
    second = page.get_by_label("Q1 score for script 2", exact=True)
    expect(first).to_be_focused()
    expect(second).to_have_attribute("placeholder", "0")

    page.keyboard.type("0.5")
    page.keyboard.press("Enter")

    expect(second).to_have_attribute("placeholder", "0.5")
    expect(page.locator(f"#answer-{Answer.objects.get(script__number=2).pk}")).to_contain_text("like script 1")
    expect(page.locator(f"#answer-{Answer.objects.get(script__number=3).pk}")).to_contain_text("rule: similarity")
    expect(second).to_be_focused()


def _login(page, live_server, question):
    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{question.exam_id}/grade/{question.pk}/")
    page.get_by_label("Username").fill("imani")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()


def test_the_number_pad_types_scores_with_numlock_off_and_a_refused_score_keeps_the_focus(page, live_server, question):
    from playwright.sync_api import expect

    _login(page, live_server, question)
    first = page.get_by_label("Q1 score for script 1", exact=True)
    expect(first).to_be_focused()
    expect(page.locator("#grading-count")).to_have_text("0 / 3 scored")

    # NumLock off: the pad's 5 arrives as "Clear"/arrow keys; the code still names the digit.
    def pad(key, code):
        page.evaluate("(args) => document.activeElement.dispatchEvent(new KeyboardEvent("
                      "'keydown', {key: args[0], code: args[1], bubbles: true, cancelable: true}))", [key, code])

    pad("Clear", "Numpad5")
    expect(first).to_have_value("5")
    pad("Enter", "NumpadEnter")

    # 5 on a 1-mark question is refused: the box keeps the focus and what was typed, and says why.
    row = page.locator(f"#answer-{Answer.objects.get(script__number=1).pk}")
    expect(row).to_contain_text("above the maximum")
    expect(first).to_be_focused()
    expect(first).to_have_value("5")
    expect(page.locator("#grading-announce")).to_contain_text("above the maximum")

    page.keyboard.press("Backspace")
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(page.locator("#grading-count")).to_have_text("1 / 3 scored")
    expect(page.get_by_label("Q1 score for script 2", exact=True)).to_be_focused()


def test_p_pulls_an_answer_out_of_its_group_with_the_keyboard(page, live_server, question):
    from playwright.sync_api import expect

    Answer.objects.filter(script__number=2).update(text="nucleus membrane",
                                                   readings={"easyocr": {"text": "nucleus membrane", "confidence": 0.9}})
    _login(page, live_server, question)
    group_box = page.get_by_label("Q1 score for the group", exact=False)
    expect(group_box).to_be_focused()

    page.keyboard.press("p")
    expect(page.get_by_role("button", name="Pull script 1 out of this group")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("button", name="Pull script 2 out of this group")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.locator("tr.grading-group")).to_have_count(0)
    assert Answer.objects.get(script__number=2).group_override.detached
