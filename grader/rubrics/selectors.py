"""Read-only queries for rubric questions: a question's rubric, its comment bank, answers' breakdowns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from grader.models import Question
from ml.scoring import marks_text

from .models import (
    AnswerFeedback,
    DimensionScore,
    FeedbackComment,
    QuestionRubric,
    Rubric,
    RubricDimension,
    RubricSuggestion,
)


@dataclass
class QuestionRubricView:
    """What the grading form needs of a rubric question."""

    rubric: Rubric
    task: str
    dimensions: list[RubricDimension]
    comments: list[FeedbackComment] = field(default_factory=list)
    model_configured: bool = False  # a rubric model can suggest scores and feedback


def question_rubric_view(*, question: Question) -> QuestionRubricView | None:
    link = QuestionRubric.objects.filter(question=question).select_related("rubric").first()
    if link is None:
        return None
    from .suggest import rubric_model_configured

    return QuestionRubricView(rubric=link.rubric, task=link.task, dimensions=list(link.rubric.dimensions.all()),
                              comments=list(FeedbackComment.objects.filter(question=question)),
                              model_configured=rubric_model_configured())


@dataclass
class PostedRubric:
    """What a teacher sent (shown again when it was refused): points as typed, comment numbers, text."""

    points: Sequence[str]
    comments: Sequence[int]
    text: str


def answers_rubric_decorate(*, view: QuestionRubricView | None, answers: Iterable,
                            posted: Mapping[int, PostedRubric] | None = None) -> None:
    """Give each answer ``rubric_points`` ([(dimension, points as typed, points suggested)]),
    ``feedback_comments`` (the numbers chosen), ``feedback_text``, ``feedback_full`` (what the student
    reads) and ``feedback_draft`` (the rubric model's, "" when none); ``posted`` (answer id ->
    PostedRubric) wins over what is saved. Suggestions show only while the answer has no score."""
    answers = list(answers)
    if view is None:
        return
    ids = [answer.pk for answer in answers]
    saved: dict[int, dict[int, str]] = defaultdict(dict)
    for answer_id, dimension_id, points in DimensionScore.objects.filter(answer_id__in=ids).values_list(
            "answer_id", "dimension_id", "points"):
        saved[answer_id][dimension_id] = marks_text(points)
    feedbacks = {feedback.answer_id: feedback for feedback in
                 AnswerFeedback.objects.filter(answer_id__in=ids).prefetch_related("comments")}
    suggestions = {s.answer_id: s for s in RubricSuggestion.objects.filter(answer_id__in=ids, answer__score__isnull=True)}
    for answer in answers:
        feedback = feedbacks.get(answer.pk)
        sent = (posted or {}).get(answer.pk)
        suggestion = suggestions.get(answer.pk)
        suggested = list(suggestion.points) if suggestion and len(suggestion.points) == len(view.dimensions) else []
        suggested += [""] * (len(view.dimensions) - len(suggested))
        answer.feedback_draft = suggestion.feedback if suggestion else ""
        if sent is not None:
            typed = list(sent.points) + [""] * len(view.dimensions)
            answer.rubric_points = list(zip(view.dimensions, typed, suggested))
            answer.feedback_comments, answer.feedback_text = set(sent.comments), sent.text
        else:
            answer.rubric_points = [(d, saved[answer.pk].get(d.pk, ""), hint)
                                    for d, hint in zip(view.dimensions, suggested, strict=True)]
            answer.feedback_comments = {c.number for c in feedback.comments.all()} if feedback else set()
            answer.feedback_text = feedback.text if feedback else ""
        answer.feedback_full = feedback.full_text if feedback else ""


def answer_feedback_text(*, answer_id: int) -> str:
    """The feedback the student reads on one answer ("" when none)."""
    feedback = AnswerFeedback.objects.filter(answer_id=answer_id).prefetch_related("comments").first()
    return feedback.full_text if feedback else ""


def rubrics_for_owner(*, owner) -> list[Rubric]:
    return list(Rubric.objects.filter(owner=owner).prefetch_related("dimensions"))
