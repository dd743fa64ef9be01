"""A teacher grades a whole question of a read demo exam with the keyboard only."""

from __future__ import annotations

from decimal import Decimal

import pytest

from grader.grading.models import AnswerChange
from grader.grading.selectors import answer_groups_for_question
from grader.models import Exam, User
from grader.reading.models import Answer
from tests.grader.reading.test_views_reading import demo_load, demo_read

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def read_demo(department, demo_folder_for, remembered_ocr):
    teacher = User.objects.create_user("hannah", password="a-long-password", department=department)
    exam = Exam.objects.create(title="Year 9 Science mock", owner=teacher, department=department, pages_per_script=2)
    demo_read(demo_load(exam=exam, teacher=teacher, folder=demo_folder_for(students=3, absent=0, seed=5)))
    # A question whose three answers hold one group of two and one answer on its own.
    for question in exam.questions.order_by("order"):
        groups = answer_groups_for_question(question_id=question.pk)
        if question.answers.count() == 3 and len(groups) == 1 and groups[0].size == 2:
            return exam, question, groups[0]
    pytest.fail("The demo exam has no question with exactly one group of two answers.")


def test_a_teacher_grades_a_question_with_the_keyboard_only(page, live_server, read_demo):
    from playwright.sync_api import expect

    exam, question, group = read_demo
    pair = [member.pk for member in group.members]
    alone = question.answers.exclude(pk__in=pair).get()
    first, second = sorted(Answer.objects.filter(pk__in=pair), key=lambda a: a.script.number)
    top = format(question.max_score.normalize(), "f")

    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{exam.pk}/grade/{question.pk}/")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=f"Grade {question.label}")).to_be_visible()
    page.screenshot(path="/tmp/gradeui-shots/question-before.png", full_page=True)

    keys = 0

    def press(*names):
        nonlocal keys
        for name in names:
            page.keyboard.press(name)
            keys += 1

    def type_(text):
        nonlocal keys
        page.keyboard.type(text)
        keys += len(text)

    # Rows are in script order: the answer on its own comes first, then the group's two.
    assert alone.script.number < first.script.number < second.script.number
    alone_box = page.get_by_label(f"{question.label} score for script {alone.script.number}", exact=False)
    first_box = page.get_by_label(f"{question.label} score for script {first.script.number}", exact=False)

    # The group's box has the focus on arrival, with both members' handwriting beside it: the top mark
    # for both, then Enter (on to the first row).
    group_box = page.get_by_label(f"{question.label} score for the group")
    expect(group_box).to_be_focused()
    expect(page.locator("tr.grading-group img.grading-member-crop")).to_have_count(2)
    type_(top)
    press("Enter")
    expect(page.get_by_role("status").filter(has_text="Scored 2 answers")).to_be_visible()
    expect(alone_box).to_be_focused()
    expect(first_box).to_have_value(top)

    # e corrects the text read on the first row; Enter saves it and goes back to the score box.
    press("e")
    expect(page.locator(f"#text-{alone.pk}")).to_be_focused()
    press("Control+a")
    type_(question.answer)
    press("Enter")
    expect(page.locator(f"#answer-{alone.pk}")).to_contain_text("Text saved")
    expect(alone_box).to_be_focused()

    # A digit types a different score than the (new) suggestion; Enter saves it and, every row now
    # having a score, says the question is done instead of moving on.
    alone.refresh_from_db()
    other = "0" if alone.suggested_score else top
    type_(other)
    press("Enter")
    expect(page.locator(f"#answer-{alone.pk} .grading-state")).to_contain_text("saved")
    expect(page.locator("#grading-count")).to_contain_text("Question done: all 3 scored.")
    expect(alone_box).to_be_focused()
    press("Tab")
    expect(first_box).to_be_focused()

    # h: the history of the group's first member, its newest Revert focused; Enter reverts the group's score.
    press("h")
    revert = page.locator(f"#answer-{first.pk} button.grading-revert").first
    expect(revert).to_be_focused()
    press("Enter")
    expect(page.locator(f"#answer-{first.pk}")).to_contain_text("Reverted.")
    expect(first_box).to_be_focused()
    expect(first_box).to_have_value("")

    # Enter on the empty box accepts the suggestion.
    press("Enter")
    expect(page.locator(f"#answer-{first.pk} .grading-state")).to_contain_text("saved")
    page.screenshot(path="/tmp/gradeui-shots/question-after.png", full_page=True)

    # ? shows the keys.
    press("?")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_visible()
    page.screenshot(path="/tmp/gradeui-shots/question-keys.png")
    press("?")
    keys -= 2  # the help is not grading

    first.refresh_from_db(), second.refresh_from_db(), alone.refresh_from_db()
    assert first.score == first.suggested_score is not None
    assert second.score == question.max_score
    assert alone.confirmed_text == question.answer.strip()
    assert alone.score == Decimal(other)
    assert AnswerChange.objects.filter(answer=first, reverted_change__isnull=False).count() == 1
    assert {a.scored_by.username for a in (first, second, alone)} == {"hannah"}
    n = keys / 3
    print(f"keystrokes per graded answer: {n:.2f}")


def test_a_score_typed_while_offline_is_kept_and_saved_when_the_connection_returns(page, live_server, teacher, exam, question, answer):
    from playwright.sync_api import expect

    teacher.set_password("a-long-password")
    teacher.save()
    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{exam.pk}/grade/{question.pk}/")
    page.get_by_label("Username").fill(teacher.username)
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    box = page.get_by_label(f"{question.label} score for script {answer.script.number}", exact=False)
    row = page.locator(f"#answer-{answer.pk}")

    # The page (and grading.js) must have loaded before the connection goes: grading.js focuses the box.
    expect(box).to_be_focused()
    page.context.set_offline(True)
    box.click()
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(row).to_contain_text("not saved")
    expect(box).to_have_value("1")
    answer.refresh_from_db()
    assert answer.score is None

    page.context.set_offline(False)  # the page sends what is waiting as soon as it is back online
    expect(row).not_to_contain_text("not saved", timeout=5_000)
    expect(row.locator(".grading-state")).to_contain_text("saved")
    answer.refresh_from_db()
    assert answer.score == Decimal("1")
