"""Read-only queries for rubric questions: a question's rubric, its comment bank, answers' breakdowns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from grader.grading import selectors as grading_selectors
from grader.grading.models import AnswerChange
from grader.models import Question
from ml.scoring import marks_text

from .models import (
    AnswerFeedback,
    DimensionScore,
    FeedbackComment,
    QuestionRubric,
    Rubric,
    RubricChange,
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


def _feedback_words(state: dict) -> str:
    """What the student read in ``state`` (``RubricChange``'s form), on one line and cut short."""
    words = " ".join(" ".join([*(text for _, text in state["comments"]), state["text"]]).split())
    if not words:
        return "(none)"
    return f"“{words[:60]}…”" if len(words) > 60 else f"“{words}”"


def rubric_change_words(*, old: dict, new: dict, order: Sequence[str] = ()) -> str:
    """A rubric change in the teacher's words: "Content 2 → 3, Feedback: “Good.” → “Name both causes.”",
    dimensions in ``order`` (the rubric's; a JSON column need not keep the recorded order)."""
    names = list(dict.fromkeys([*order, *new["points"], *old["points"]]))
    parts = [f"{name} {old['points'].get(name, '–')} → {new['points'].get(name, '–')}"
             for name in names if old["points"].get(name) != new["points"].get(name)]
    before, after = _feedback_words(old), _feedback_words(new)
    numbers = [", ".join(str(number) for number, _ in state["comments"]) or "none" for state in (old, new)]
    if before != after:
        parts.append(f"Feedback: {before} → {after}")
    elif numbers[0] != numbers[1]:
        parts.append(f"Feedback: the same words, bank comments {numbers[0]} → {numbers[1]}")
    return ", ".join(parts) or "no change"


def answer_history(*, answer_id: int) -> list[AnswerChange | RubricChange]:
    """Every recorded change to an answer, newest first (``grading``'s history), a rubric answer's
    ``RubricChange``s among them with ``rubric_words`` (``rubric_change_words``). A score change made by
    a rubric change (at the same time) is left out: the rubric change says what it did, and reverting
    it puts the total back too."""
    changes = list(grading_selectors.answer_history(answer_id=answer_id))
    rubric_changes = list(RubricChange.objects.filter(answer_id=answer_id).select_related("by"))
    if not rubric_changes:
        return changes
    order = list(RubricDimension.objects.filter(rubric__question_links__question__answers__pk=answer_id)
                 .values_list("name", flat=True))
    for change in rubric_changes:
        change.rubric_words = rubric_change_words(old=change.old, new=change.new, order=order)
    made = {change.at for change in rubric_changes}
    changes = [change for change in changes if not (change.field == AnswerChange.Field.SCORE and change.at in made)]
    return sorted([*changes, *rubric_changes], key=lambda change: change.at, reverse=True)


def rubrics_for_owner(*, owner) -> list[Rubric]:
    return list(Rubric.objects.filter(owner=owner).prefetch_related("dimensions"))


@dataclass(frozen=True)
class DimensionResult:
    name: str
    max_points: object  # Decimal
    points: object  # Decimal | None: no teacher score on this dimension


@dataclass(frozen=True)
class AnswerRubricResult:
    """An answer's rubric breakdown and the feedback its student reads (for the PDF, sheet and email)."""

    dimensions: tuple[DimensionResult, ...]
    feedback: str

    @property
    def breakdown(self) -> str:
        """"Content 3/4 · Organisation 2/3 · Language –/3" """
        return " · ".join(f"{d.name} {'–' if d.points is None else marks_text(d.points)}/{marks_text(d.max_points)}"
                          for d in self.dimensions)


def answers_rubric_results(*, answer_ids: Iterable[int]) -> dict[int, AnswerRubricResult]:
    """Answer id -> its breakdown and feedback, for the answers to rubric questions among ``answer_ids``;
    answers to questions without a rubric are left out."""
    from grader.reading.models import Answer

    answers = list(Answer.objects.filter(pk__in=list(answer_ids), question__rubric_link__isnull=False)
                   .select_related("question__rubric_link__rubric")
                   .prefetch_related("dimension_scores", "feedback__comments",
                                     "question__rubric_link__rubric__dimensions"))
    results = {}
    for answer in answers:
        points = {score.dimension_id: score.points for score in answer.dimension_scores.all()}
        feedback = getattr(answer, "feedback", None)
        results[answer.pk] = AnswerRubricResult(
            dimensions=tuple(DimensionResult(name=d.name, max_points=d.max_points, points=points.get(d.pk))
                             for d in answer.question.rubric_link.rubric.dimensions.all()),
            feedback=feedback.full_text if feedback else "")
    return results


def script_feedback_text(*, labelled_answers: Iterable[tuple[str, int]]) -> str:
    """The feedback of a script's rubric answers as email text, one paragraph a question:
    "Q5 (Content 3/4 · Organisation 2/3 · Language 2/3): Name both causes." (``labelled_answers``:
    (question label, answer id) in question order; answers without feedback or rubric are left out)."""
    pairs = list(labelled_answers)
    results = answers_rubric_results(answer_ids=[answer_id for _, answer_id in pairs])
    return "\n\n".join(f"{label} ({results[answer_id].breakdown}): {results[answer_id].feedback}"
                       for label, answer_id in pairs if answer_id in results and results[answer_id].feedback)


def question_has_rubric(*, question_id: int) -> bool:
    return QuestionRubric.objects.filter(question_id=question_id).exists()
