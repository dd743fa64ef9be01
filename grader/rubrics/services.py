"""Rubrics: saving and attaching them, scoring an answer by dimension, its feedback and the comment bank.

Keyword-only, noun_verb, one transaction each. Points are ``Decimal`` marks. An answer's total goes
through ``grader.grading.services.score_set`` (so it is checked against the question, recorded as an
``AnswerChange`` and bumps ``Answer.version``); the breakdown and the feedback are kept here.
Refusals are ``RubricRefused`` (a ``GradingRefused``: the message is written for the teacher).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from grader.grading import services as grading_services
from grader.grading.models import AnswerChange
from grader.grading.services import GradingRefused, StaleAnswer
from grader.models import Question, User
from grader.reading.models import Answer
from ml.rubric import Rubric as MlRubric
from ml.rubric import RubricDimension as MlDimension
from ml.rubric import RubricError, RubricLevel, rubric_check
from ml.scoring import ScoreRule, marks_text, score_valid

from .models import (
    AnswerFeedback,
    DimensionScore,
    FeedbackComment,
    QuestionRubric,
    Rubric,
    RubricChange,
    RubricDimension,
)

FEEDBACK_MAX_CHARS = 4_000
COMMENT_MAX_CHARS = 1_000


class RubricRefused(GradingRefused):
    """A rubric change, a dimension score or a feedback was refused; nothing was saved."""


@dataclass(frozen=True)
class LevelSpec:
    points: Decimal
    label: str
    description: str = ""


@dataclass(frozen=True)
class DimensionSpec:
    name: str
    max_points: Decimal
    levels: tuple[LevelSpec, ...] = field(default=())


def _specs_check(*, name: str, dimensions: Sequence[DimensionSpec]) -> None:
    """The same rules as the rubric model's (``ml.rubric.rubric_check``), in the teacher's words."""
    if not name.strip():
        raise RubricRefused("A rubric needs a name.")
    try:
        rubric_check(MlRubric(name=name, dimensions=tuple(
            MlDimension(name=d.name.strip(), max_points=float(d.max_points),
                        levels=tuple(RubricLevel(points=float(level.points), label=level.label)
                                     for level in d.levels))
            for d in dimensions)))
    except RubricError as error:
        raise RubricRefused(f"The rubric cannot be saved: {error}.") from None
    for dimension in dimensions:
        if dimension.max_points != dimension.max_points.quantize(Decimal("0.01")):
            raise RubricRefused(f"{dimension.name}: max points have at most 2 decimal places.")


def _levels_json(levels: Sequence[LevelSpec]) -> list[dict]:
    return [{"points": marks_text(level.points), "label": level.label.strip(), "description": level.description.strip()}
            for level in sorted(levels, key=lambda level: -level.points)]


@transaction.atomic
def rubric_save(*, owner: User, name: str, dimensions: Sequence[DimensionSpec], rubric_id: int | None = None) -> Rubric:
    """Create a rubric, or replace the dimensions of ``owner``'s rubric ``rubric_id``.

    Once answers are scored by a rubric its dimensions' names and max points stay as they are (the
    scores would no longer add up); their levels and descriptions can still change. Questions using
    the rubric get its new total as their maximum."""
    _specs_check(name=name, dimensions=dimensions)
    if Rubric.objects.filter(owner=owner, name=name.strip()).exclude(pk=rubric_id).exists():
        raise RubricRefused(f"You already have a rubric called “{name.strip()}”.")
    if rubric_id is None:
        rubric = Rubric.objects.create(owner=owner, name=name.strip())
        existing = []
    else:
        rubric = Rubric.objects.select_for_update().get(pk=rubric_id, owner=owner)
        rubric.name = name.strip()
        rubric.save(update_fields=["name", "updated_at"])
        existing = list(rubric.dimensions.all())
    shape = [(d.name.strip(), d.max_points) for d in dimensions]
    if existing and [(d.name, d.max_points) for d in existing] == shape:
        for dimension, spec in zip(existing, dimensions, strict=True):
            dimension.levels = _levels_json(spec.levels)
            dimension.save(update_fields=["levels"])
    else:
        if DimensionScore.objects.filter(dimension__rubric=rubric).exists():
            raise RubricRefused(f"Answers are already scored by “{rubric.name}”: its dimensions and their "
                                "max points cannot change (their levels can). Save it as a new rubric instead.")
        rubric.dimensions.all().delete()
        for order, spec in enumerate(dimensions):
            RubricDimension.objects.create(rubric=rubric, order=order, name=spec.name.strip(),
                                           max_points=spec.max_points, levels=_levels_json(spec.levels))
    total = sum((spec.max_points for spec in dimensions), Decimal(0))
    Question.objects.filter(rubric_link__rubric=rubric).update(max_score=total)
    return rubric


@transaction.atomic
def question_rubric_set(*, question_id: int, rubric_id: int | None, task: str = "", user: User) -> Question:
    """Mark ``question`` by ``user``'s rubric ``rubric_id`` (its maximum becomes the rubric's total), or by
    its key again with ``None``. Refused while the question has teacher scores, which were given
    under the other scheme. With a rubric model, its answers already read are given suggestions."""
    question = Question.objects.select_for_update().get(pk=question_id)
    link = QuestionRubric.objects.filter(question=question).first()
    current = link.rubric_id if link else None
    if current == rubric_id:
        if link and link.task != task:
            link.task = task
            link.save(update_fields=["task"])
        return question
    if Answer.objects.filter(question=question, score__isnull=False).exists():
        raise RubricRefused(f"{question.label} already has teacher scores; clear them before changing how it is marked.")
    if rubric_id is None:
        link.delete()
        return question
    rubric = Rubric.objects.filter(pk=rubric_id, owner=user).first()
    if rubric is None:
        raise RubricRefused("No such rubric among yours.")
    QuestionRubric.objects.update_or_create(question=question, defaults={"rubric": rubric, "task": task})
    question.max_score = rubric.max_points
    question.save(update_fields=["max_score"])
    from .suggest import exam_rubric_suggest_enqueue  # suggest needs this module's refusals

    exam_rubric_suggest_enqueue(exam_id=question.exam_id, question_ids=[question.pk])  # its answers read already
    return question


def _points_check(*, question: Question, dimension: RubricDimension, points: Decimal) -> None:
    granularity = question.effective_granularity
    if dimension.max_points % granularity:
        granularity = Decimal("0.01")  # a maximum off the question's steps still keeps 0..max
    problem = score_valid(score=points, rule=ScoreRule(max_score=dimension.max_points, min_similarity=0,
                                                       granularity=granularity))
    if problem:
        raise RubricRefused(f"{dimension.name}: {problem}")


def _feedback_text(text: str) -> str:
    text = text.strip()
    if len(text) > FEEDBACK_MAX_CHARS:
        raise RubricRefused(f"The feedback is {len(text):,} characters long; at most {FEEDBACK_MAX_CHARS:,}.")
    return text


def _total_record(*, answer_id: int, total: Decimal | None, expected_version: int, user: User,
                  note: str) -> tuple[Answer, datetime | None]:
    """Set the answer's total through ``score_set`` (which locks the exam and the answer, checks the version
    and the total against the question, records it and bumps the version), with ``note`` on its
    ``AnswerChange``. Returns the answer and the time of that change (``None`` when the total was already
    that): the rubric change that made the total is recorded at the same time."""
    answer = grading_services.score_set(answer_id=answer_id, score=total, expected_version=expected_version, user=user)
    if answer.version == expected_version:
        return answer, None
    change = AnswerChange.objects.filter(answer=answer, field=AnswerChange.Field.SCORE).order_by("-at", "-pk").first()
    if note:
        AnswerChange.objects.filter(pk=change.pk).update(note=note[:200])
    return answer, change.at


@transaction.atomic
def rubric_answer_save(*, answer_id: int, points: Sequence[Decimal | None], comment_numbers: Sequence[int],
                       text: str, save_as_comment: bool = False, expected_version: int, user: User) -> Answer:
    """Score ``answer`` by dimension and set its feedback, in one save.

    ``points`` has one entry per dimension of the question's rubric, in order: all given (the answer's
    score becomes their sum) or all ``None`` (its score is cleared). The feedback is the bank comments
    numbered ``comment_numbers`` and the teacher's ``text``; with ``save_as_comment`` that text becomes
    the bank's next comment instead (and the answer gets it). Stale versions and finished exams are
    refused as by ``score_set``."""
    answer = Answer.objects.select_related("question", "question__exam").get(pk=answer_id)
    question = answer.question
    link = QuestionRubric.objects.filter(question=question).select_related("rubric").first()
    if link is None:
        raise RubricRefused(f"{question.label} is not marked by a rubric.")
    dimensions = list(link.rubric.dimensions.all())
    if len(points) != len(dimensions):
        raise RubricRefused(f"{question.label} has {len(dimensions)} rubric dimensions; {len(points)} scores were sent.")
    given = [value for value in points if value is not None]
    if given and len(given) != len(points):
        missing = ", ".join(d.name for d, value in zip(dimensions, points, strict=True) if value is None)
        raise RubricRefused(f"Score every dimension (missing: {missing}), or none to clear the score.")
    for dimension, value in zip(dimensions, points, strict=True):
        if value is not None:
            _points_check(question=question, dimension=dimension, points=value)
    text = _feedback_text(text)
    total = sum(given, Decimal(0)) if given else None
    # The history says how the new total was made up: "Content 3 + Organisation 2.5 + Language 2".
    note = " + ".join(f"{d.name} {marks_text(value)}" for d, value in zip(dimensions, points, strict=True)) if given else ""
    answer, total_at = _total_record(answer_id=answer.pk, total=total, expected_version=expected_version, user=user,
                                     note=note)
    state_before = _state(answer_id=answer.pk)  # read under the lock; score_set left dimensions and feedback
    changed_at = total_at or timezone.now()
    old = {score.dimension_id: score.points for score in DimensionScore.objects.filter(answer=answer)}
    new = {d.pk: value for d, value in zip(dimensions, points, strict=True) if value is not None}
    changed = old != new
    if changed:
        DimensionScore.objects.filter(answer=answer).delete()
        DimensionScore.objects.bulk_create([DimensionScore(answer=answer, dimension_id=pk, points=value)
                                            for pk, value in new.items()])
    bank = {comment.number: comment for comment in FeedbackComment.objects.select_for_update().filter(question=question)}
    unknown = sorted(set(comment_numbers) - set(bank))
    if unknown:
        raise RubricRefused(f"{question.label}'s comment bank has no comment {', '.join(map(str, unknown))}.")
    chosen = [bank[number] for number in dict.fromkeys(comment_numbers)]
    if save_as_comment and text:
        chosen.append(_comment_create(question=question, text=text))
        text = ""
    feedback, _ = AnswerFeedback.objects.get_or_create(answer=answer)
    if feedback.text != text or {c.pk for c in feedback.comments.all()} != {c.pk for c in chosen}:
        feedback.text, feedback.by, feedback.at = text, user, timezone.now()
        feedback.save()
        feedback.comments.set(chosen)
        changed = True
    if changed and total_at is None:
        # The total stayed the same, but what another marker saw did not.
        Answer.objects.filter(pk=answer.pk).update(version=F("version") + 1)
        answer.version += 1
    if changed:
        RubricChange.objects.create(answer=answer, old=state_before, new=_state(answer_id=answer.pk), by=user,
                                    at=changed_at)
    return answer


# ---------------------------------------------------------------- history and rollback


def _state(*, answer_id: int) -> dict:
    """The answer's rubric state as ``RubricChange`` records it."""
    points = {score.dimension.name: marks_text(score.points)
              for score in DimensionScore.objects.filter(answer_id=answer_id).select_related("dimension")}
    feedback = AnswerFeedback.objects.filter(answer_id=answer_id).prefetch_related("comments").first()
    return {"points": points,
            "comments": [[comment.number, comment.text] for comment in feedback.comments.all()] if feedback else [],
            "text": feedback.text if feedback else ""}


def _feedback_fold(*, comments: Sequence[FeedbackComment | tuple[int, str]], bank: dict[int, FeedbackComment],
                   text: str) -> tuple[list[FeedbackComment], str]:
    """The bank comments an answer can keep linked, and its own words, so that it reads exactly as
    ``comments`` (bank comments or ``(number, words)``, in number order) followed by ``text``: from the
    first comment the bank no longer holds with the same words, the rest become the answer's own words."""
    kept: list[FeedbackComment] = []
    folded: list[str] = []
    for comment in comments:
        number, words = (comment.number, comment.text) if isinstance(comment, FeedbackComment) else comment
        linked = bank.get(number)
        if not folded and linked is not None and linked.text == words:
            kept.append(linked)
        else:
            folded.append(words)
    return kept, "\n".join(part.strip() for part in [*folded, text] if part.strip())


def _state_apply(*, answer: Answer, state: dict, user: User, now) -> None:
    """Put ``state`` (``RubricChange``'s form) back on ``answer``: its dimension scores by name and its
    feedback. A state whose dimensions are not the rubric's any more is refused."""
    link = QuestionRubric.objects.filter(question_id=answer.question_id).select_related("rubric").first()
    dimensions = {d.name: d for d in link.rubric.dimensions.all()} if link else {}
    points = state["points"]
    if points and set(points) != set(dimensions):
        raise RubricRefused(f"{answer}: its rubric's dimensions changed since; it cannot be rolled back.")
    DimensionScore.objects.filter(answer=answer).delete()
    DimensionScore.objects.bulk_create([DimensionScore(answer=answer, dimension=dimensions[name], points=Decimal(value))
                                        for name, value in points.items()])
    bank = {c.number: c for c in FeedbackComment.objects.filter(question_id=answer.question_id)}
    comments, text = _feedback_fold(comments=[tuple(pair) for pair in state["comments"]], bank=bank, text=state["text"])
    feedback, _ = AnswerFeedback.objects.get_or_create(answer=answer)
    feedback.text, feedback.by, feedback.at = text, user, now
    feedback.save()
    feedback.comments.set(comments)


def _total(state: dict) -> Decimal | None:
    points = state["points"].values()
    return sum((Decimal(value) for value in points), Decimal(0)) if points else None


def _states_equal(a: dict, b: dict) -> bool:
    """The same points, bank comments (by number: a comment's words are edited for everyone, apart from
    any answer's history) and own words."""
    return a["points"] == b["points"] and [c[0] for c in a["comments"]] == [c[0] for c in b["comments"]] \
        and a["text"].strip() == b["text"].strip()


@transaction.atomic
def exam_rollback(*, exam_id: int, to: datetime, user: User) -> int:
    """Put every answer of the exam back as it was at ``to`` (``grading``'s ``exam_rollback``), rubric
    answers with their dimension scores and feedback: each rubric change made after ``to`` is undone
    too, newest first, and recorded (so the rollback itself can be rolled back).

    All or nothing: ``StaleAnswer`` / ``RubricRefused`` when an answer does not follow its recorded
    history, or a rubric answer's total would not be the sum of its dimensions (a change made before
    they were recorded). Returns how many changes were undone."""
    reverts = grading_services.exam_rollback(exam_id=exam_id, to=to, user=user)  # locks the exam
    now = reverts[0].at if reverts else timezone.now()
    note = f"Rollback to {timezone.localtime(to):%Y-%m-%d %H:%M:%S}"
    later = list(RubricChange.objects.filter(answer__question__exam_id=exam_id, at__gt=to).order_by("-at", "-pk"))
    by_answer: dict[int, list[RubricChange]] = {}
    for change in later:
        by_answer.setdefault(change.answer_id, []).append(change)
    answers = Answer.objects.select_for_update(of=("self",)).select_related("question", "script").in_bulk(
        {*by_answer, *(revert.answer_id for revert in reverts)})
    # A rubric change that kept the total has no ``AnswerChange`` of its own among the reverts.
    undone = len(reverts) + sum(1 for change in later if _total(change.old) == _total(change.new))
    for answer_id, changes in sorted(by_answer.items()):
        answer, current = answers[answer_id], _state(answer_id=answer_id)
        if not _states_equal(current, changes[0].new):
            raise StaleAnswer(current=answer, message=f"{answer}'s scores or feedback do not follow their "
                                                      "history; nothing was rolled back.")
        target = changes[-1].old
        _state_apply(answer=answer, state=target, user=user, now=now)
        RubricChange.objects.create(answer=answer, old=current, new=_state(answer_id=answer_id), by=user, at=now,
                                    note=note)
        if not any(revert.answer_id == answer_id for revert in reverts):
            Answer.objects.filter(pk=answer_id).update(version=F("version") + 1)
    rubric_questions = set(QuestionRubric.objects.filter(question__exam_id=exam_id).values_list("question_id", flat=True))
    for answer in answers.values():
        if answer.question_id not in rubric_questions:
            continue
        answer.refresh_from_db(fields=["score"])
        if answer.score != _total(_state(answer_id=answer.pk)):
            raise RubricRefused(f"{answer}'s total would no longer be the sum of its dimension scores (it was "
                                "scored before they were recorded); nothing was rolled back.")
    return undone


@transaction.atomic
def rubric_change_revert(*, change_id: int, user: User) -> RubricChange:
    """Undo one rubric change: the answer's dimension scores and feedback go back to what they were
    before it, and its total with them (a score change recorded at the same time). The revert is a
    rubric change too, so it can be reverted in turn. Only the latest state can be reverted:
    ``StaleAnswer`` when the answer's scores or feedback changed again since, ``ExamFinishedRefused``
    on a finished exam, ``RubricRefused`` when the rubric's dimensions changed since. Returns the new
    change."""
    change = RubricChange.objects.get(pk=change_id)
    answer = grading_services.answer_lock(answer_id=change.answer_id)
    current = _state(answer_id=answer.pk)
    if not _states_equal(current, change.new):
        raise StaleAnswer(current=answer, message=f"{answer}'s scores or feedback were changed again after this "
                                                  "change; revert the later change first.")
    note = f"Revert of rubric change {change.pk}"
    answer, at = _total_record(answer_id=answer.pk, total=_total(change.old), expected_version=answer.version,
                               user=user, note=note)
    if at is None:
        # The total stays, but what another marker saw does not.
        Answer.objects.filter(pk=answer.pk).update(version=F("version") + 1)
        at = timezone.now()
    _state_apply(answer=answer, state=change.old, user=user, now=at)
    return RubricChange.objects.create(answer=answer, old=current, new=_state(answer_id=answer.pk), by=user, at=at,
                                       note=note)


def _comment_create(*, question: Question, text: str) -> FeedbackComment:
    text = text.strip()
    if not text:
        raise RubricRefused("A comment needs some text.")
    if len(text) > COMMENT_MAX_CHARS:
        raise RubricRefused(f"A comment is at most {COMMENT_MAX_CHARS:,} characters.")
    number = (FeedbackComment.objects.filter(question=question).aggregate(top=Max("number"))["top"] or 0) + 1
    return FeedbackComment.objects.create(question=question, number=number, text=text)


@transaction.atomic
def comment_add(*, question_id: int, text: str) -> FeedbackComment:
    """A new comment at the end of the question's bank (the next number)."""
    question = Question.objects.select_for_update().get(pk=question_id)
    return _comment_create(question=question, text=text)


@transaction.atomic
def comment_delete(*, comment_id: int, user: User) -> int:
    """Take a comment out of its question's bank. Every answer that has it reads exactly as before: the
    comment's words (and those of its later-numbered comments, to keep their order) become the
    answer's own words, recorded as a change of it. The other comments keep their numbers (they are
    the keys teachers learnt). Returns how many answers had it."""
    comment = FeedbackComment.objects.select_related("question").get(pk=comment_id)
    Question.objects.select_for_update().get(pk=comment.question_id)
    bank = {c.number: c for c in FeedbackComment.objects.select_for_update().filter(question_id=comment.question_id)
            if c.pk != comment.pk}
    feedbacks = list(AnswerFeedback.objects.filter(comments=comment).select_related("answer")
                     .prefetch_related("comments").order_by("answer_id"))
    now = timezone.now()
    for feedback in feedbacks:
        before = _state(answer_id=feedback.answer_id)
        kept, feedback.text = _feedback_fold(comments=list(feedback.comments.all()), bank=bank, text=feedback.text)
        feedback.save(update_fields=["text"])
        feedback.comments.set(kept)
        Answer.objects.filter(pk=feedback.answer_id).update(version=F("version") + 1)
        RubricChange.objects.create(answer=feedback.answer, old=before, new=_state(answer_id=feedback.answer_id),
                                    by=user, at=now, note=f"Comment {comment.number} taken out of the bank")
    comment.delete()
    return len(feedbacks)


@transaction.atomic
def comment_edit(*, comment_id: int, text: str) -> FeedbackComment:
    """Change a bank comment's text: every answer that has it gets the new text."""
    comment = FeedbackComment.objects.select_for_update().get(pk=comment_id)
    text = text.strip()
    if not text:
        raise RubricRefused("A comment needs some text; remove it from the answers instead.")
    if len(text) > COMMENT_MAX_CHARS:
        raise RubricRefused(f"A comment is at most {COMMENT_MAX_CHARS:,} characters.")
    comment.text = text
    comment.save(update_fields=["text"])
    return comment
