"""Rubric pages and the rubric grading form: choosing and writing rubrics, saving a row over htmx
(one score per dimension, feedback, comment bank), refusals shown in the row, and the bank edit."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from grader.rubrics.models import AnswerFeedback, DimensionScore, FeedbackComment, Rubric
from grader.rubrics.services import comment_add


def _rubric_url(exam, answer):
    return reverse("grading_rubric", args=[exam.pk, answer.pk])


def test_the_grading_page_shows_a_box_per_dimension_and_a_feedback_box(client_for, teacher, exam, essay, essay_answers):
    comment_add(question_id=essay.pk, text="Name both causes.")
    page = client_for(teacher).get(reverse("grading_question", args=[exam.pk, essay.pk])).content.decode()
    answer = essay_answers[0]
    for number in (1, 2, 3):
        assert f'id="rubric-{answer.pk}-{number}"' in page
    assert f'id="feedback-{answer.pk}"' in page and "Content" in page and "/ 10" in page
    assert "1. Name both causes." in page and "js/rubric.js" in page
    assert 'class="grading-score"' not in page  # no single score box, no group scoring


def test_saving_a_row_stores_each_dimension_the_sum_and_the_feedback(client_for, teacher, exam, essay, essay_answers):
    comment_add(question_id=essay.pk, text="Name both causes.")
    answer = essay_answers[0]
    response = client_for(teacher, htmx=True).post(_rubric_url(exam, answer), {
        "version": answer.version, "points": ["3", "2,5", "2"], "comment": ["1"], "feedback": "Well argued."})
    assert response.status_code == 200 and "scoreSaved" in response.headers["HX-Trigger"]
    answer.refresh_from_db()
    assert answer.score == Decimal("7.5")
    assert [s.points for s in DimensionScore.objects.filter(answer=answer)] == [Decimal("3"), Decimal("2.5"), Decimal("2")]
    assert AnswerFeedback.objects.get(answer=answer).full_text == "Name both causes.\nWell argued."
    assert "✓ saved" in response.content.decode()


def test_a_refused_row_keeps_what_was_typed_and_says_why(client_for, teacher, exam, essay, essay_answers):
    answer = essay_answers[0]
    response = client_for(teacher, htmx=True).post(_rubric_url(exam, answer), {
        "version": answer.version, "points": ["9", "1", "1"], "feedback": "Keep this."})
    body = response.content.decode()
    assert response.status_code == 422 and "Content: The score 9 is above the maximum of 4" in body
    assert 'value="9"' in body and "Keep this." in body
    answer.refresh_from_db()
    assert answer.score is None


def test_nonsense_points_and_comment_numbers_are_refused_not_a_500(client_for, teacher, exam, essay, essay_answers):
    answer = essay_answers[0]
    client = client_for(teacher, htmx=True)
    for data, message in (({"points": ["x", "1", "1"]}, "is not a number of marks"),
                          ({"points": ["1", "1", "1"], "comment": ["one"]}, "not a whole number"),
                          ({"points": ["1", "1"]}, "3 rubric dimensions; 2 scores")):
        response = client.post(_rubric_url(exam, answer), {"version": answer.version, **data})
        assert response.status_code == 422 and message in response.content.decode()


def test_a_stale_row_is_refused_with_the_current_scores(client_for, teacher, exam, essay, essay_answers):
    answer = essay_answers[0]
    client = client_for(teacher, htmx=True)
    client.post(_rubric_url(exam, answer), {"version": answer.version, "points": ["1", "1", "1"]})
    response = client.post(_rubric_url(exam, answer), {"version": answer.version, "points": ["2", "2", "2"]})
    assert response.status_code == 409
    answer.refresh_from_db()
    assert answer.score == Decimal("3")


def test_without_javascript_a_row_saves_and_returns_to_the_page(client_for, teacher, exam, essay, essay_answers):
    answer = essay_answers[1]
    response = client_for(teacher).post(_rubric_url(exam, answer), {"version": answer.version,
                                                                     "points": ["4", "3", "3"], "feedback": "Superb."})
    assert response.status_code == 302 and response.url.endswith(f"#answer-{answer.pk}")
    answer.refresh_from_db()
    assert answer.score == Decimal("10")


def test_saving_feedback_to_the_bank_numbers_it_for_the_class(client_for, teacher, exam, essay, essay_answers):
    answer = essay_answers[0]
    client_for(teacher, htmx=True).post(_rubric_url(exam, answer), {
        "version": answer.version, "points": ["1", "1", "1"], "feedback": "Explain the tilt.", "save_comment": "on"})
    comment = FeedbackComment.objects.get(question=essay)
    assert comment.number == 1 and AnswerFeedback.objects.get(answer=answer).text == ""
    response = client_for(teacher).post(reverse("feedback_comment_edit", args=[exam.pk, comment.pk]),
                                        {"text": "Explain how the tilt changes the light."})
    assert response.status_code == 302
    assert AnswerFeedback.objects.get(answer=answer).full_text == "Explain how the tilt changes the light."


def test_a_read_only_user_cannot_save_rubric_scores(client_for, head, exam, essay, essay_answers):
    answer = essay_answers[0]
    response = client_for(head, htmx=True).post(_rubric_url(exam, answer), {"version": answer.version,
                                                                           "points": ["1", "1", "1"]})
    assert response.status_code == 403


def test_writing_a_rubric_on_the_page_marks_the_question_by_it(client_for, teacher, exam):
    from model_bakery import baker

    from grader.models import Question

    question = baker.make(Question, exam=exam, label="Q9", granularity=Decimal("0.5"))
    url = reverse("question_rubric", args=[exam.pk, question.pk])
    client = client_for(teacher)
    page = client.get(url)
    assert page.status_code == 200
    assert f"<title>Q9 rubric · {exam.title} · markdesk</title>" in page.content.decode()
    response = client.post(url, {
        "action": "save", "name": "Diagram", "task": "Draw the water cycle.",
        "dimension": ["Accuracy", "Labels", ""], "max_points": ["4", "2", ""],
        "levels": ["4 exceptional: every stage, in order\n2 fair: most stages", "2 clear", ""]})
    assert response.status_code == 302
    question.refresh_from_db()
    rubric = Rubric.objects.get(name="Diagram")
    assert question.max_score == Decimal("6") and question.rubric_link.rubric == rubric
    assert rubric.dimensions.first().levels[1] == {"points": "2", "label": "fair", "description": "most stages"}
    assert question.rubric_link.task == "Draw the water cycle."


def test_a_malformed_level_line_is_refused_with_a_message(client_for, teacher, exam, essay):
    url = reverse("question_rubric", args=[exam.pk, essay.pk])
    response = client_for(teacher).post(url, {"action": "save", "name": "Bad", "dimension": ["A"],
                                             "max_points": ["x"], "levels": [""]})
    assert response.status_code == 422 and "is not a number of points" in response.content.decode()
    response = client_for(teacher).post(url, {"action": "save", "name": "Bad", "dimension": ["A"],
                                             "max_points": ["2"], "levels": ["exceptional"]})
    assert response.status_code == 422 and "level line 1" in response.content.decode()


def test_choosing_a_saved_rubric_or_the_key_again(client_for, teacher, exam, essay, rubric):
    from model_bakery import baker

    from grader.models import Question

    other = baker.make(Question, exam=exam, label="Q6")
    url = reverse("question_rubric", args=[exam.pk, other.pk])
    assert client_for(teacher).post(url, {"action": "choose", "rubric": str(rubric.pk)}).status_code == 302
    other.refresh_from_db()
    assert other.rubric_link.rubric == rubric and other.max_score == Decimal("10")
    assert client_for(teacher).post(url, {"action": "choose", "rubric": ""}).status_code == 302
    assert not Rubric.objects.get(pk=rubric.pk).question_links.filter(question=other).exists()


def test_another_teachers_rubric_cannot_be_chosen(client_for, other_teacher, teacher, exam, rubric):
    from model_bakery import baker

    from grader.models import Exam, Question

    mine = baker.make(Exam, owner=other_teacher, department=other_teacher.department)
    question = baker.make(Question, exam=mine, label="Q1")
    response = client_for(other_teacher).post(reverse("question_rubric", args=[mine.pk, question.pk]),
                                              {"action": "choose", "rubric": str(rubric.pk)})
    assert response.status_code == 422 and "No such rubric among yours" in response.content.decode()


def test_a_bare_total_or_a_group_score_is_refused_on_a_rubric_question(client_for, teacher, exam, essay, essay_answers):
    answer = essay_answers[0]
    client = client_for(teacher, htmx=True)
    response = client.post(reverse("grading_score", args=[exam.pk, answer.pk]), {"version": answer.version, "score": "5"})
    assert response.status_code == 422 and "score each of its dimensions" in response.content.decode()
    response = client.post(reverse("grading_group_score", args=[exam.pk, essay.pk]),
                           {"group": "x", "versions": f"{answer.pk}:{answer.version}", "score": "5"})
    assert response.status_code == 422
    answer.refresh_from_db()
    assert answer.score is None


def test_a_rubric_answers_total_is_reverted_with_its_dimensions_never_alone(client_for, teacher, exam, essay,
                                                                           essay_answers):
    from grader.grading.models import AnswerChange
    from grader.rubrics.models import RubricChange

    answer = essay_answers[0]
    client = client_for(teacher, htmx=True)
    client.post(_rubric_url(exam, answer), {"version": answer.version, "points": ["1", "1", "1"]})
    change = AnswerChange.objects.get(answer=answer)
    row = client.get(reverse("grading_row", args=[exam.pk, answer.pk]) + "?history=1").content.decode()
    assert "Content – → 1, Organisation – → 1, Language – → 1" in row
    assert reverse("grading_rubric_revert", args=[exam.pk, RubricChange.objects.get(answer=answer).pk]) in row
    assert reverse("grading_revert", args=[exam.pk, change.pk]) not in row
    response = client.post(reverse("grading_revert", args=[exam.pk, change.pk]))
    assert response.status_code == 422 and "score each of its dimensions" in response.content.decode()
    answer.refresh_from_db()
    assert answer.score == Decimal("3")


def test_the_answer_key_page_names_a_questions_rubric(client_for, teacher, exam, essay):
    page = client_for(teacher).get(reverse("answer_key", args=[exam.pk])).content.decode()
    assert f'rubric <a href="{reverse("question_rubric", args=[exam.pk, essay.pk])}">Explain</a>' in page
