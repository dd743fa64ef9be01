"""A teacher grades a rubric question with the keyboard only: dimension scores, a bank comment, feedback."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from grader.models import Exam, Question, Script, User
from grader.reading.models import Answer
from grader.rubrics.models import AnswerFeedback, FeedbackComment
from grader.rubrics.services import comment_add, question_rubric_set, rubric_save

from .conftest import DIMENSIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def essay_exam(department):
    teacher = User.objects.create_user("hannah", password="a-long-password", department=department)
    exam = Exam.objects.create(title="Year 9 Science mock", owner=teacher, department=department)
    question = Question.objects.create(exam=exam, label="Q5", order=5, granularity=Decimal("0.5"))
    rubric = rubric_save(owner=teacher, name="Explain", dimensions=DIMENSIONS)
    question_rubric_set(question_id=question.pk, rubric_id=rubric.pk, user=teacher)
    comment_add(question_id=question.pk, text="Name both causes.")
    answers = [Answer.objects.create(script=Script.objects.create(exam=exam, number=number), question=question,
                                     text="", read_at=timezone.now()) for number in (1, 2)]
    return exam, question, answers


def test_a_teacher_scores_a_rubric_question_and_writes_feedback_by_keyboard(page, live_server, essay_exam):
    from playwright.sync_api import expect

    exam, question, (first, second) = essay_exam
    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{exam.pk}/grade/{question.pk}/")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Grade Q5")).to_be_visible()

    # The first dimension of the first answer has the focus; digits score, Tab moves on.
    expect(page.locator(f"#rubric-{first.pk}-1")).to_be_focused()
    page.keyboard.type("3")
    page.keyboard.press("Tab")
    page.keyboard.type("2.5")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    expect(page.locator(f"#answer-{first.pk} output.rubric-total")).to_have_text("7.5")
    page.keyboard.press("Tab")
    expect(page.locator(f"#feedback-{first.pk}")).to_be_focused()
    page.keyboard.type("Clear paragraphs.")
    page.keyboard.press("Alt+1")  # bank comment 1
    expect(page.locator(f"#answer-{first.pk} input[name=comment][value='1']")).to_be_checked()
    page.keyboard.press("Control+Enter")
    # Saved, and on to the next answer without a score.
    expect(page.locator(f"#rubric-{second.pk}-1")).to_be_focused()
    first.refresh_from_db()
    assert first.score == Decimal("7.5")
    assert AnswerFeedback.objects.get(answer=first).full_text == "Name both causes.\nClear paragraphs."

    # A dimension above its maximum is marked at once, refused by the server, and kept in the box.
    page.keyboard.type("5")
    expect(page.locator(f"#rubric-{second.pk}-1")).to_have_class("rubric-points rubric-over")
    page.keyboard.press("Tab")
    page.keyboard.type("1")
    page.keyboard.press("Tab")
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(page.locator(f"#answer-{second.pk} .grading-state")).to_contain_text("above the maximum of 4")
    expect(page.locator(f"#rubric-{second.pk}-1")).to_have_value("5")
    expect(page.locator(f"#rubric-{second.pk}-1")).to_be_focused()

    # Corrected; then feedback saved to the bank with Alt+s.
    page.keyboard.type("4")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("Explain the tilt.")
    page.keyboard.press("Alt+s")
    expect(page.locator("#comment-bank li")).to_have_count(2)
    second.refresh_from_db()
    assert second.score == Decimal("6")
    assert FeedbackComment.objects.get(question=question, number=2).text == "Explain the tilt."
    assert AnswerFeedback.objects.get(answer=second).full_text == "Explain the tilt."


def test_enter_accepts_the_rubric_models_suggestion_and_draft(page, live_server, essay_exam):
    from playwright.sync_api import expect

    from grader.rubrics.models import RubricSuggestion

    exam, question, (first, _) = essay_exam
    RubricSuggestion.objects.create(answer=first, points=["3", "2", "2.5"], feedback="Both causes, well ordered.")
    page.goto(f"{live_server.url}/accounts/login/?next=/exams/{exam.pk}/grade/{question.pk}/")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    box = page.locator(f"#rubric-{first.pk}-1")
    expect(box).to_be_focused()
    expect(box).to_have_attribute("placeholder", "3")
    expect(page.locator(f"#feedback-{first.pk}")).to_have_attribute("placeholder", "Both causes, well ordered.")
    # The teacher changes one dimension and accepts the rest with Enter.
    page.keyboard.press("Tab")
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(page.locator(f"#answer-{first.pk} .grading-state")).to_have_text("✓ saved")
    first.refresh_from_db()
    assert first.score == Decimal("6.5")
    assert AnswerFeedback.objects.get(answer=first).full_text == "Both causes, well ordered."
