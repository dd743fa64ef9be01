"""The rubric model suggests dimension scores and a draft of the feedback by itself once an exam's answers
are read (train -> suggest on the tiny random Qwen2.5-VL of ``ml.recognition.vlm_tiny``, or a fake model
where the point is what is asked of it), shown in grey in the grading form; "Suggest again" makes a
question's anew."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from grader.grading.models import AnswerChange
from grader.models import Question, Script
from grader.reading.models import Answer
from grader.reading.services import exam_resuggest_when_read
from grader.rubrics import suggest
from grader.rubrics.models import AnswerFeedback, DimensionScore, RubricSuggestion
from grader.rubrics.services import question_rubric_set, rubric_answer_save
from grader.rubrics.suggest import exam_rubric_suggest, points_on_steps
from ml.recognition.vlm_tiny import tiny_model_build
from ml.rubric import RubricPrediction
from ml.train_rubric import rubric_config_load, rubric_train
from tests.ml.test_rubric import config_write, data_folder_build

from .test_export import _page

D = Decimal


@pytest.fixture(scope="module")
def rubric_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rubric-model")
    tiny = {"root": root, "model": tiny_model_build(root / "model"), "data": data_folder_build(root / "data")}
    config = rubric_config_load(config_write(root / "c.yaml", tiny, epochs=1, out=str(root / "out")))
    return rubric_train(config).out


class FakeRubricModel:
    """Answers every item with the same prediction and keeps the size of each batch it was asked."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_batch(self, items):
        self.batches.append(len(items))
        return [RubricPrediction(scores=(2.74,) * len(item.rubric.dimensions), feedback="Name both causes.")
                for item in items]


@pytest.fixture
def fake_model(monkeypatch, settings, tmp_path) -> FakeRubricModel:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / suggest.CARD_FILE).write_text("{}")  # configured as far as the web app can tell
    settings.RUBRIC_MODEL_PATH = str(tmp_path / "model")
    model = FakeRubricModel()
    monkeypatch.setattr(suggest, "rubric_model_get", lambda: model)
    return model


def with_pages(exam, answers) -> None:
    for number, answer in enumerate(answers):
        answer.page = _page(exam, answer.script, number)
        answer.crop = [20, 30, 220, 130]
        answer.save()


def score(answer, teacher, points, text=""):
    answer.refresh_from_db()
    return rubric_answer_save(answer_id=answer.pk, points=points, comment_numbers=[], text=text,
                              expected_version=answer.version, user=teacher)


def test_suggested_points_land_on_the_questions_steps_within_range():
    assert points_on_steps(2.74, maximum=Decimal("4"), granularity=Decimal("0.5")) == Decimal("2.5")
    assert points_on_steps(3.9, maximum=Decimal("4"), granularity=Decimal("0.5")) == Decimal("4")
    assert points_on_steps(-0.2, maximum=Decimal("3"), granularity=Decimal("1")) == Decimal("0")
    assert points_on_steps(1.234, maximum=Decimal("2.5"), granularity=Decimal("1")) == Decimal("1.23")


def test_once_the_exam_is_read_the_rubric_model_suggests_for_every_unscored_answer_by_itself(
        client_for, teacher, exam, essay, essay_answers, rubric_model, settings, django_capture_on_commit_callbacks):
    settings.RUBRIC_MODEL_PATH = str(rubric_model)
    with_pages(exam, essay_answers)
    scored = essay_answers[2]
    score(scored, teacher, [D("1")] * 3)

    with django_capture_on_commit_callbacks(execute=True):
        assert exam_resuggest_when_read(script_id=essay_answers[0].script_id)  # the last script was read

    suggestions = {s.answer_id: s for s in RubricSuggestion.objects.all()}
    assert set(suggestions) == {essay_answers[0].pk, essay_answers[1].pk}  # the scored answer is left alone
    maxima = [Decimal("4"), Decimal("3"), Decimal("3")]
    for suggestion in suggestions.values():
        points = [Decimal(p) for p in suggestion.points]
        assert all(0 <= p <= m and not p % Decimal("0.5") for p, m in zip(points, maxima, strict=True))
        assert isinstance(suggestion.feedback, str) and suggestion.model == str(rubric_model)
    page = client_for(teacher).get(reverse("grading_question", args=[exam.pk, essay.pk])).content.decode()
    first = suggestions[essay_answers[0].pk]
    assert f'name="points" value="" placeholder="{first.points[0]}"' in page
    assert "Suggest again" in page


def test_suggestions_come_in_batches_once_each_and_never_touch_a_teachers_scores_or_feedback(
        exam, essay, essay_answers, teacher, fake_model, settings):
    settings.VLM_BATCH_SIZE = 2
    more = [baker.make(Answer, script=baker.make(Script, exam=exam, number=number), question=essay, text="",
                       read_at=timezone.now()) for number in (4, 5, 6)]
    unread = baker.make(Answer, script=baker.make(Script, exam=exam, number=7), question=essay, read_at=None)
    blank = baker.make(Answer, script=baker.make(Script, exam=exam, number=8), question=essay, blank=True,
                       read_at=timezone.now())
    answers = [*essay_answers, *more, unread, blank]
    with_pages(exam, answers)
    score(essay_answers[0], teacher, [D("1"), D("1"), D("1")], text="Teacher's words.")
    score(essay_answers[1], teacher, [None] * 3, text="Feedback before the points.")  # no score yet
    history = AnswerChange.objects.count()

    made = exam_rubric_suggest(exam_id=exam.pk)

    assert made == 5 and fake_model.batches == [2, 2, 1]  # scripts 2 (feedback but no score yet), 3, 4, 5, 6
    suggested = set(RubricSuggestion.objects.values_list("answer_id", flat=True))
    assert suggested == {essay_answers[1].pk, essay_answers[2].pk, *(a.pk for a in more)}
    assert RubricSuggestion.objects.get(answer=essay_answers[2]).points == ["2.5", "2.5", "2.5"]
    assert exam_rubric_suggest(exam_id=exam.pk) == 0 and fake_model.batches == [2, 2, 1]  # nothing left to do
    essay_answers[0].refresh_from_db()
    assert essay_answers[0].score == D("3") and AnswerChange.objects.count() == history
    assert [s.points for s in DimensionScore.objects.filter(answer=essay_answers[0])] == [D("1")] * 3
    assert AnswerFeedback.objects.get(answer=essay_answers[0]).text == "Teacher's words."
    assert AnswerFeedback.objects.get(answer=essay_answers[1]).text == "Feedback before the points."


def test_a_question_given_a_rubric_after_reading_gets_suggestions(
        exam, rubric, teacher, fake_model, django_capture_on_commit_callbacks):
    question = baker.make(Question, exam=exam, label="Q6", order=6, granularity=Decimal("1"))
    answers = [baker.make(Answer, script=baker.make(Script, exam=exam, number=number), question=question,
                          text="", read_at=timezone.now()) for number in (1, 2)]
    with_pages(exam, answers)

    with django_capture_on_commit_callbacks(execute=True):
        question_rubric_set(question_id=question.pk, rubric_id=rubric.pk, user=teacher)

    assert sorted(RubricSuggestion.objects.values_list("answer_id", flat=True)) == [a.pk for a in answers]
    assert RubricSuggestion.objects.first().points == ["3", "3", "3"]  # 2.74 on whole points


def test_suggest_again_makes_the_questions_suggestions_anew(
        client_for, exam, essay, essay_answers, teacher, fake_model, django_capture_on_commit_callbacks):
    with_pages(exam, essay_answers)
    exam_rubric_suggest(exam_id=exam.pk)
    RubricSuggestion.objects.update(feedback="An older draft.")

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher).post(reverse("question_rubric_suggest", args=[exam.pk, essay.pk]), follow=True)

    assert "suggesting again for Q5" in response.content.decode()
    assert set(RubricSuggestion.objects.values_list("feedback", flat=True)) == {"Name both causes."}
    assert fake_model.batches == [3, 3]


def test_without_a_rubric_model_nothing_is_suggested_and_the_form_works_the_same(
        client_for, teacher, exam, essay, essay_answers, settings, tmp_path, django_capture_on_commit_callbacks):
    with_pages(exam, essay_answers)
    settings.RUBRIC_MODEL_PATH = str(tmp_path)  # a folder without a model is as good as none
    with django_capture_on_commit_callbacks(execute=True):
        exam_resuggest_when_read(script_id=essay_answers[0].script_id)
    assert not RubricSuggestion.objects.exists()
    page = client_for(teacher).get(reverse("grading_question", args=[exam.pk, essay.pk])).content.decode()
    assert "Suggest again" not in page and 'placeholder=""' in page
    response = client_for(teacher).post(reverse("question_rubric_suggest", args=[exam.pk, essay.pk]), follow=True)
    assert "No rubric model is configured" in response.content.decode()
    assert not RubricSuggestion.objects.exists()
