"""Suggestions from the rubric model: dimension scores and a draft of the feedback for each unscored
answer of a rubric question, made by a `vlm` worker (``tasks.exam_rubric_suggest_task``) with the model
in ``settings.RUBRIC_MODEL_PATH`` (``python -m ml.train_rubric``'s folder). They are made by themselves
once an exam's scripts are read and when a question is given a rubric; "Suggest again" makes a
question's anew. The teacher accepts or edits them in the grading form; a suggestion never becomes a
score by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

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


def rubric_answers_pending(*, exam_id: int, question_ids: Sequence[int] | None = None, again: bool = False):
    """The exam's answers the rubric model should suggest for: read, not blank, with a page, without a
    teacher score, on a rubric question (of ``question_ids`` when given); without ``again``, only those
    it has made no suggestion for yet (with the configured model)."""
    answers = Answer.objects.filter(question__exam_id=exam_id, question__rubric_link__isnull=False,
                                    score__isnull=True, blank=False, read_at__isnull=False, page__isnull=False)
    if question_ids is not None:
        answers = answers.filter(question_id__in=question_ids)
    if not again:
        answers = answers.exclude(rubric_suggestion__model=settings.RUBRIC_MODEL_PATH)
    return answers.select_related("page", "question").order_by("question__order", "script__number", "pk")


def exam_rubric_suggest(*, exam_id: int, question_ids: Sequence[int] | None = None, again: bool = False,
                        model: RubricModel | None = None) -> int:
    """Suggest dimension scores and a draft of the feedback for the exam's pending answers
    (``rubric_answers_pending``), ``settings.VLM_BATCH_SIZE`` answers to a generation; returns how many.

    Idempotent: run again, it suggests only for what is still pending (``again`` makes every unscored
    answer's suggestion anew). A teacher's scores and feedback are never touched: a suggestion is its
    own record, shown in grey only while the answer has no score. No transaction is held while the
    model runs; each batch is written when it is done."""
    if model is None and not rubric_model_configured():
        return 0
    pending = list(rubric_answers_pending(exam_id=exam_id, question_ids=question_ids, again=again))
    if not pending:
        return 0
    model = model or rubric_model_get()
    links = {link.question_id: link for link in QuestionRubric.objects.filter(
        question_id__in={answer.question_id for answer in pending}).select_related("rubric")}
    rubrics = {question_id: (rubric_for_model(link), list(link.rubric.dimensions.all()))
               for question_id, link in links.items()}
    size = max(1, settings.VLM_BATCH_SIZE)
    made = 0
    for first in range(0, len(pending), size):
        batch = []
        for answer in pending[first:first + size]:
            image = answer_image(answer)
            if image is not None:
                batch.append((answer, RubricInput(image=image, rubric=rubrics[answer.question_id][0],
                                                  task=links[answer.question_id].task)))
        predictions = model.predict_batch([item for _, item in batch])
        for (answer, _), prediction in zip(batch, predictions, strict=True):
            granularity = answer.question.effective_granularity
            points = [marks_text(points_on_steps(value, maximum=dimension.max_points, granularity=granularity))
                      for value, dimension in zip(prediction.scores, rubrics[answer.question_id][1], strict=True)]
            RubricSuggestion.objects.update_or_create(answer=answer, defaults={
                "points": points, "feedback": prediction.feedback, "model": settings.RUBRIC_MODEL_PATH,
                "at": timezone.now()})
            made += 1
    return made


def exam_rubric_suggest_enqueue(*, exam_id: int, question_ids: Sequence[int] | None = None,
                                again: bool = False) -> bool:
    """Queue ``exam_rubric_suggest`` on a `vlm` worker once the caller's transaction commits, when a
    rubric model is set (``RUBRIC_MODEL_PATH``; the worker checks it holds one) and the exam has rubric
    questions; returns whether it was queued."""
    from .tasks import exam_rubric_suggest_task

    if not settings.RUBRIC_MODEL_PATH:
        return False
    questions = QuestionRubric.objects.filter(question__exam_id=exam_id)
    if question_ids is not None:
        questions = questions.filter(question_id__in=question_ids)
    if not questions.exists():
        return False
    ids = None if question_ids is None else list(question_ids)
    transaction.on_commit(lambda: exam_rubric_suggest_task.delay(exam_id, ids, again))
    return True


def exam_answers_read_receive(sender, *, exam_id: int, **kwargs) -> None:
    """``grader.reading.signals.exam_answers_read``: the exam's answers are read, so suggest for them."""
    exam_rubric_suggest_enqueue(exam_id=exam_id)
