"""Suggestions from the rubric model: dimension scores and a draft of the feedback for each unscored
answer of a rubric question, made by a `vlm` worker (``tasks.rubric_suggest_task``) with the model in
``settings.RUBRIC_MODEL_PATH`` (``python -m ml.train_rubric``'s folder). The teacher accepts or edits
them in the grading form; a suggestion never becomes a score by itself.
"""

from __future__ import annotations

import threading
from pathlib import Path
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils import timezone

from grader.models import Question
from grader.reading.models import Answer
from ml.rubric import CARD_FILE, RubricInput, RubricModel
from ml.scoring import marks_text

from .export import answer_image, rubric_for_model
from .models import QuestionRubric, RubricSuggestion
from .services import RubricRefused

_models: dict[tuple[str, str], RubricModel] = {}
_lock = threading.Lock()


def rubric_model_configured() -> bool:
    """A rubric model folder is configured and holds a model (its card): a wrong path offers nothing."""
    path = settings.RUBRIC_MODEL_PATH
    return bool(path) and (Path(path) / CARD_FILE).is_file()


def rubric_model_get() -> RubricModel:
    """The configured rubric model, loaded once per worker process."""
    from ml.rubric import rubric_model_load

    key = (settings.RUBRIC_MODEL_PATH, settings.RUBRIC_BASE_MODEL_PATH)
    if not key[0]:
        raise RubricRefused("No rubric model is configured (RUBRIC_MODEL_PATH).")
    with _lock:
        if key not in _models:
            _models[key] = rubric_model_load(path=key[0], base_model_path=key[1] or None)
        return _models[key]


def points_on_steps(value: float, *, maximum: Decimal, granularity: Decimal) -> Decimal:
    """``value`` points to the nearest step of ``granularity`` within 0..``maximum`` (hundredths when the
    maximum is off the steps)."""
    step = granularity if granularity > 0 and not maximum % granularity else Decimal("0.01")
    steps = (Decimal(str(value)) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return min(max(steps * step, Decimal(0)), maximum)


def question_rubric_suggest(*, question_id: int, model: RubricModel | None = None) -> int:
    """Suggest for every unscored, non-blank answer of the question that has a page; returns how many.

    No transaction is held while the model runs: each suggestion is written on its own, and an answer
    scored meanwhile keeps its score (the suggestion only shows while it has none)."""
    question = Question.objects.select_related("exam").get(pk=question_id)
    link = QuestionRubric.objects.filter(question=question).select_related("rubric").first()
    if link is None:
        return 0
    model = model or rubric_model_get()
    rubric = rubric_for_model(link)
    dimensions = list(link.rubric.dimensions.all())
    granularity = question.effective_granularity
    made = 0
    for answer in Answer.objects.filter(question=question, score__isnull=True, blank=False).select_related("page"):
        image = answer_image(answer)
        if image is None:
            continue
        prediction = model.predict(RubricInput(image=image, rubric=rubric, task=link.task))
        points = [marks_text(points_on_steps(value, maximum=dimension.max_points, granularity=granularity))
                  for value, dimension in zip(prediction.scores, dimensions, strict=True)]
        RubricSuggestion.objects.update_or_create(answer=answer, defaults={
            "points": points, "feedback": prediction.feedback, "model": settings.RUBRIC_MODEL_PATH,
            "at": timezone.now()})
        made += 1
    return made
