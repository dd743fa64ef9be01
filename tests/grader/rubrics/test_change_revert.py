"""Reverting one change of a rubric answer: its dimension scores, feedback and total go back together, from
the row's history like any other answer's change, and only the latest change can be reverted."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from grader.grading.models import AnswerChange, ExamStatus
from grader.grading.services import ExamFinishedRefused, StaleAnswer, text_confirm
from grader.models import Exam
from grader.rubrics.models import AnswerFeedback, DimensionScore, RubricChange
from grader.rubrics.services import comment_add, rubric_answer_save, rubric_change_revert

D = Decimal


def save(answer, teacher, points, *, comments=(), text=""):
    answer.refresh_from_db()
    return rubric_answer_save(answer_id=answer.pk, points=points, comment_numbers=comments, text=text,
                              expected_version=answer.version, user=teacher)


def latest(answer) -> RubricChange:
    return RubricChange.objects.filter(answer=answer).first()


def looks(answer) -> tuple:
    """What a marker sees of the answer: its total, dimension scores, bank comments and own words."""
    answer.refresh_from_db()
    feedback = AnswerFeedback.objects.filter(answer=answer).first()
    return (answer.score, [s.points for s in DimensionScore.objects.filter(answer=answer)],
            [c.number for c in feedback.comments.all()] if feedback else [], feedback.text if feedback else "")


def revert_url(exam, change) -> str:
    return reverse("grading_rubric_revert", args=[exam.pk, change.pk])


def history(client, exam, answer) -> str:
    return client.get(reverse("grading_row", args=[exam.pk, answer.pk]) + "?history=1").content.decode()


def test_a_revert_puts_back_the_dimension_scores_feedback_and_total_exactly(essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], comments=[1], text="Well argued.")
    before = looks(answer)
    save(answer, teacher, [D("4"), D("3"), D("3")], text="Perfect.")
    undone = latest(answer)
    answer.refresh_from_db()
    version = answer.version

    revert = rubric_change_revert(change_id=undone.pk, user=teacher)

    assert looks(answer) == before == (D("7.5"), [D("3"), D("2.5"), D("2")], [1], "Well argued.")
    assert answer.version == version + 1
    assert revert.note == f"Revert of rubric change {undone.pk}" and revert.old == undone.new and revert.new == undone.old
    total = AnswerChange.objects.filter(answer=answer, field=AnswerChange.Field.SCORE).first()
    assert (total.old_value, total.new_value, total.at) == ("10", "7.5", revert.at)  # recorded, with the change


def test_reverting_the_first_change_clears_the_score_and_feedback(essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="Well argued.")

    rubric_change_revert(change_id=latest(answer).pk, user=teacher)

    assert looks(answer) == (None, [], [], "")


def test_an_older_change_is_refused_with_409_and_nothing_changes(client_for, exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="First.")
    older = latest(answer)
    save(answer, teacher, [D("4"), D("3"), D("3")], text="Second.")
    before, changes = looks(answer), (RubricChange.objects.count(), AnswerChange.objects.count())
    version = answer.version

    response = client_for(teacher, htmx=True).post(revert_url(exam, older))

    assert response.status_code == 409 and "revert the later change first" in response.content.decode()
    assert looks(answer) == before and answer.version == version
    assert (RubricChange.objects.count(), AnswerChange.objects.count()) == changes


def test_the_same_change_cannot_be_reverted_twice(client_for, exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    save(answer, teacher, [D("4"), D("3"), D("3")])
    change = latest(answer)
    client = client_for(teacher, htmx=True)

    assert client.post(revert_url(exam, change)).status_code == 200
    again = client.post(revert_url(exam, change))

    assert again.status_code == 409 and looks(answer)[0] == D("7.5")


def test_a_feedback_only_change_shows_in_the_history_and_reverts(client_for, exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="Good.")
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="Name both causes.")
    change = latest(answer)
    client = client_for(teacher, htmx=True)
    answer.refresh_from_db()
    version, totals = answer.version, AnswerChange.objects.count()

    row = history(client, exam, answer)
    assert "rubric: Feedback: “Good.” → “Name both causes.”" in row and revert_url(exam, change) in row

    response = client.post(revert_url(exam, change))

    assert response.status_code == 200 and "scoreSaved" in response.headers["HX-Trigger"]
    assert "Reverted." in response.content.decode()
    assert looks(answer) == (D("7.5"), [D("3"), D("2.5"), D("2")], [], "Good.")
    assert answer.version == version + 1  # another marker's page is stale
    assert AnswerChange.objects.count() == totals  # the total never moved


def test_the_history_names_each_rubric_change_once_with_its_revert(client_for, exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    save(answer, teacher, [D("4"), D("2.5"), D("3")], text="Better.")
    answer.refresh_from_db()
    text_confirm(answer_id=answer.pk, text="The tilt of the axis", expected_version=answer.version, user=teacher)
    client = client_for(teacher, htmx=True)

    row = history(client, exam, answer)

    assert "rubric: Content 3 → 4, Language 2 → 3, Feedback: (none) → “Better.”" in row
    assert "rubric: Content – → 3, Organisation – → 2.5, Language – → 2" in row
    assert "score:" not in row  # the totals the rubric changes made are not listed again
    text = AnswerChange.objects.get(answer=answer, field=AnswerChange.Field.TEXT)
    assert reverse("grading_revert", args=[exam.pk, text.pk]) in row  # the transcription keeps its own revert
    assert row.index("transcription:") < row.index("Content 3 → 4") < row.index("Content – → 3")  # newest first
    for change in RubricChange.objects.filter(answer=answer):
        assert revert_url(exam, change) in row


def test_a_revert_can_itself_be_reverted(client_for, exam, essay, essay_answers, teacher):
    comment_add(question_id=essay.pk, text="Name both causes.")
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")], text="Kept.")
    save(answer, teacher, [D("4"), D("3"), D("3")], comments=[1])
    after = looks(answer)
    client = client_for(teacher, htmx=True)
    undone = latest(answer)
    client.post(revert_url(exam, undone))
    revert = latest(answer)
    assert looks(answer) == (D("7.5"), [D("3"), D("2.5"), D("2")], [], "Kept.")
    assert f"(Revert of rubric change {undone.pk})" in history(client, exam, answer)

    response = client.post(revert_url(exam, revert))

    assert response.status_code == 200 and looks(answer) == after == (D("10"), [D("4"), D("3"), D("3")], [1], "")


def test_a_revert_on_a_finished_exam_is_refused(client_for, exam, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    save(answer, teacher, [D("4"), D("3"), D("3")])
    ExamStatus.objects.create(exam=exam, finished_at=timezone.now(), finished_by=teacher)
    change = latest(answer)

    response = client_for(teacher, htmx=True).post(revert_url(exam, change))

    assert response.status_code == 422 and "marked finished" in response.content.decode()
    assert looks(answer)[0] == D("10") and RubricChange.objects.count() == 2
    assert revert_url(exam, change) not in history(client_for(teacher, htmx=True), exam, answer)
    with pytest.raises(ExamFinishedRefused):
        rubric_change_revert(change_id=change.pk, user=teacher)


def test_without_htmx_a_revert_goes_back_to_the_row(client_for, exam, essay, essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])

    response = client_for(teacher).post(revert_url(exam, latest(answer)))

    assert response.status_code == 302
    assert response.url == f"{reverse('grading_question', args=[exam.pk, essay.pk])}#answer-{answer.pk}"
    assert looks(answer)[0] is None


def test_a_change_of_another_teachers_exam_is_not_found(client_for, exam, essay_answers, teacher, other_teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    change = latest(answer)
    theirs = baker.make(Exam, owner=other_teacher, department=other_teacher.department)
    client = client_for(other_teacher, htmx=True)

    assert client.post(revert_url(exam, change)).status_code == 404
    assert client.post(reverse("grading_rubric_revert", args=[theirs.pk, change.pk])).status_code == 404
    assert looks(answer)[0] == D("7.5") and RubricChange.objects.count() == 1


def test_a_change_made_stale_by_a_direct_edit_is_refused(essay_answers, teacher):
    answer = essay_answers[0]
    save(answer, teacher, [D("3"), D("2.5"), D("2")])
    DimensionScore.objects.filter(answer=answer, dimension__name="Content").update(points=D("2"))

    with pytest.raises(StaleAnswer, match="revert the later change first"):
        rubric_change_revert(change_id=latest(answer).pk, user=teacher)


def test_any_sequence_of_saves_and_reverts_keeps_every_total_the_sum_of_its_dimensions(essay_answers, teacher):
    chance = random.Random(7)
    answer = essay_answers[0]
    for _ in range(16):
        if chance.random() < 0.4 and latest(answer):
            rubric_change_revert(change_id=latest(answer).pk, user=teacher)
        else:
            points = ([None] * 3 if chance.random() < 0.2 else
                      [D(chance.randrange(0, 2 * top + 1)) / 2 for top in (4, 3, 3)])
            save(answer, teacher, points, text=chance.choice(("", "Good.", "Try again.")))
        score, points, _, _ = looks(answer)
        assert score == (sum(points, D(0)) if points else None)
