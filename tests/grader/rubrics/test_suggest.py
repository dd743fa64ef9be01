"""The rubric model suggests dimension scores and a draft of the feedback (train -> suggest on the tiny
random Qwen2.5-VL of ``ml.recognition.vlm_tiny``), shown in grey in the grading form."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse

from grader.rubrics.models import RubricSuggestion
from grader.rubrics.services import rubric_answer_save
from grader.rubrics.suggest import points_on_steps
from ml.recognition.vlm_tiny import tiny_model_build
from ml.train_rubric import rubric_config_load, rubric_train
from tests.ml.test_rubric import config_write, data_folder_build

from .test_export import _page


@pytest.fixture(scope="module")
def rubric_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rubric-model")
    tiny = {"root": root, "model": tiny_model_build(root / "model"), "data": data_folder_build(root / "data")}
    config = rubric_config_load(config_write(root / "c.yaml", tiny, epochs=1, out=str(root / "out")))
    return rubric_train(config).out


def test_suggested_points_land_on_the_questions_steps_within_range():
    assert points_on_steps(2.74, maximum=Decimal("4"), granularity=Decimal("0.5")) == Decimal("2.5")
    assert points_on_steps(3.9, maximum=Decimal("4"), granularity=Decimal("0.5")) == Decimal("4")
    assert points_on_steps(-0.2, maximum=Decimal("3"), granularity=Decimal("1")) == Decimal("0")
    assert points_on_steps(1.234, maximum=Decimal("2.5"), granularity=Decimal("1")) == Decimal("1.23")


def test_the_rubric_model_suggests_for_unscored_answers_and_the_form_shows_them(
        client_for, teacher, exam, essay, essay_answers, rubric_model, settings):
    settings.RUBRIC_MODEL_PATH = str(rubric_model)
    for number, answer in enumerate(essay_answers):
        answer.page = _page(exam, answer.script, number)
        answer.crop = [20, 30, 220, 130]
        answer.save()
    scored = essay_answers[2]
    rubric_answer_save(answer_id=scored.pk, points=[Decimal("1")] * 3, comment_numbers=[], text="",
                       expected_version=scored.version, user=teacher)
    client = client_for(teacher)
    response = client.post(reverse("question_rubric_suggest", args=[exam.pk, essay.pk]))
    assert response.status_code == 302
    suggestions = {s.answer_id: s for s in RubricSuggestion.objects.all()}
    assert set(suggestions) == {essay_answers[0].pk, essay_answers[1].pk}  # the scored answer is left alone
    maxima = [Decimal("4"), Decimal("3"), Decimal("3")]
    for suggestion in suggestions.values():
        points = [Decimal(p) for p in suggestion.points]
        assert all(0 <= p <= m and not p % Decimal("0.5") for p, m in zip(points, maxima, strict=True))
        assert isinstance(suggestion.feedback, str)
    page = client.get(reverse("grading_question", args=[exam.pk, essay.pk])).content.decode()
    first = suggestions[essay_answers[0].pk]
    assert f'name="points" value="" placeholder="{first.points[0]}"' in page
    assert "Suggest scores and feedback" in page


def test_without_a_rubric_model_nothing_is_suggested_and_the_form_works_the_same(
        client_for, teacher, exam, essay, essay_answers, settings, tmp_path):
    settings.RUBRIC_MODEL_PATH = str(tmp_path)  # a folder without a model is as good as none
    page = client_for(teacher).get(reverse("grading_question", args=[exam.pk, essay.pk])).content.decode()
    assert "Suggest scores and feedback" not in page and 'placeholder=""' in page
    response = client_for(teacher).post(reverse("question_rubric_suggest", args=[exam.pk, essay.pk]), follow=True)
    assert "No rubric model is configured" in response.content.decode()
    assert not RubricSuggestion.objects.exists()
