"""Teacher changes while grading: scores, transcriptions, their history and reverts, answer groups,
and finishing an exam.

Functions are keyword-only and named noun_verb; each runs in one transaction. Scores are in marks
(``Decimal``, ``None`` = no teacher score: the suggestion stands). Every change to ``Answer.score``
or ``Answer.confirmed_text`` goes through here, is recorded as an ``AnswerChange`` and bumps
``Answer.version``.

Concurrency: every change locks the exam row, then the answers it changes (always in that order,
so two markers cannot deadlock). A save names the ``Answer.version`` the teacher saw; when the
answer changed since, ``StaleAnswer`` carries the current answer and nothing is written. While
an exam is finished (``exam_finish``) its scores and transcriptions cannot change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from grader.models import Exam, Question, User
from grader.reading.models import Answer
from grader.reading.services import (
    answer_read_text,
    answers_suggest,
    question_resuggest_for_text,
    question_rule,
    reading_best,
)
from ml.scoring import ScoreRule, marks_text, score_valid
from grader.wording import counted

from .models import AnswerChange, AnswerGroupOverride, CompletenessWaiver, ExamStatus
from .selectors import answer_groups_for_question, exam_completeness

SCORE, TEXT = AnswerChange.Field.SCORE, AnswerChange.Field.TEXT


class GradingRefused(ValueError):
    """A grading change was refused; the message is written for the teacher. Nothing was saved."""


class ScoreRefused(GradingRefused):
    """The score is not valid for the question (negative, above the maximum, off the granularity)."""


class ExamFinishedRefused(GradingRefused):
    """The exam is marked finished; reopen it to change scores."""


class StaleAnswer(GradingRefused):
    """The answer changed since the teacher loaded it; ``current`` is the answer as it is now."""

    def __init__(self, *, current: Answer, message: str | None = None):
        self.current = current
        super().__init__(message or f"{current} was changed by someone else meanwhile; its current value is shown.")


class CompletenessRefused(GradingRefused):
    """The exam cannot be finished (or the item waived); ``items`` are the open completeness items."""

    def __init__(self, message: str, *, items=()):
        self.items = list(items)
        super().__init__(message)


# ---------------------------------------------------------------- helpers


def _exam_lock_open(*, exam_id: int) -> Exam:
    """Lock the exam row (serialising grading changes on it) and refuse when it is finished."""
    exam = Exam.objects.select_for_update().get(pk=exam_id)
    if ExamStatus.objects.filter(exam=exam, finished_at__isnull=False).exists():
        raise ExamFinishedRefused("This exam is marked finished; reopen it to change scores or transcriptions.")
    return exam


def answer_lock(*, answer_id: int) -> Answer:
    """Lock the answer's exam open (``ExamFinishedRefused`` when finished), then the answer itself, for a
    change to it; inside a transaction."""
    exam_id = Answer.objects.filter(pk=answer_id).values_list("question__exam_id", flat=True).get()
    _exam_lock_open(exam_id=exam_id)
    return Answer.objects.select_for_update().select_related("question", "question__exam", "script").get(pk=answer_id)


def _score_text(score: Decimal | None) -> str | None:
    return None if score is None else marks_text(score)


def _score_parse(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _current_value(answer: Answer, field_name: str) -> str | None:
    return _score_text(answer.score) if field_name == SCORE else answer.confirmed_text


def score_check(*, question: Question, score: Decimal | None) -> None:
    """Raise ``ScoreRefused`` saying why, when ``score`` (marks; ``None`` clears) is not allowed for ``question``."""
    if score is None:
        return
    # A question whose maximum is not a multiple of its granularity has no rule; still keep 0..max.
    rule = question_rule(question) or ScoreRule(max_score=question.max_score, min_similarity=0, granularity=Decimal("0.01"))
    problem = score_valid(score=score, rule=rule)
    if problem:
        raise ScoreRefused(problem)


def _apply(*, answer: Answer, field_name: str, value: str | None, user: User | None, now: datetime,
           reverted_change: AnswerChange | None = None, note: str = "") -> AnswerChange:
    """Write ``value`` to the locked ``answer``'s field, record the change and bump the version."""
    change = AnswerChange(answer=answer, field=field_name, old_value=_current_value(answer, field_name),
                          new_value=value, by=user, at=now, reverted_change=reverted_change, note=note)
    seen_text = answer_read_text(answer)
    if field_name == SCORE:
        answer.score = _score_parse(value)
        answer.scored_by, answer.scored_at = (user, now) if value is not None else (None, None)
        answer.version += 1
        answer.save(update_fields=["score", "scored_by", "scored_at", "version"])
    else:
        answer.confirmed_text = value
        answer.text = value if value is not None else reading_best(answer.readings)[0]
        answer.version += 1
        answer.save(update_fields=["confirmed_text", "text", "version"])
        answers_suggest(answers=[answer])
        answer.refresh_from_db(fields=["similarity", "similarity_strategy", "suggested_score", "suggestion_reason",
                                       "fit_text", "text"])
    change.save()
    # A teacher's score is evidence for the answers that read or fit the same (ml.marking): those
    # still unscored are suggested again, under the text the score was given to and the one it had.
    answer.resuggested = [
        touched.pk
        for text in dict.fromkeys(t for t in (seen_text, answer_read_text(answer)) if t)
        if answer.score is not None or field_name == SCORE
        for touched in question_resuggest_for_text(question=answer.question, text=text)
    ]
    return change


# ---------------------------------------------------------------- scores and transcriptions


@transaction.atomic
def score_set(*, answer_id: int, score: Decimal | None, expected_version: int, user: User) -> Answer:
    """Set the teacher's score in marks, or clear it with ``None`` (the suggestion stands again).

    Raises ``StaleAnswer`` when ``expected_version`` is not the answer's version, ``ScoreRefused``
    when the score is negative, above the maximum or not a multiple of the granularity, and
    ``ExamFinishedRefused`` on a finished exam. Saving the score the answer already has changes
    nothing (no history row, same version). The unscored answers suggested again because of this
    score are listed (ids) in the returned answer's ``resuggested``.
    """
    answer = answer_lock(answer_id=answer_id)
    if answer.version != expected_version:
        raise StaleAnswer(current=answer)
    score_check(question=answer.question, score=score)
    answer.resuggested = []
    if _score_text(score) != _score_text(answer.score):
        _apply(answer=answer, field_name=SCORE, value=_score_text(score), user=user, now=timezone.now())
    return answer


@transaction.atomic
def text_confirm(*, answer_id: int, text: str | None, expected_version: int, user: User) -> Answer:
    """Set the teacher's transcription (ends stripped), or clear it with ``None`` back to the engines'.

    The answer's similarity and suggested score are computed again from the new text; a teacher
    score is kept. Raises ``StaleAnswer`` / ``ExamFinishedRefused`` like ``score_set``.
    """
    answer = answer_lock(answer_id=answer_id)
    if answer.version != expected_version:
        raise StaleAnswer(current=answer)
    value = None if text is None else text.strip()
    answer.resuggested = []
    if value != answer.confirmed_text:
        _apply(answer=answer, field_name=TEXT, value=value, user=user, now=timezone.now())
    return answer


def _revert(*, change: AnswerChange, user: User, now: datetime, note: str) -> AnswerChange:
    answer = Answer.objects.select_for_update().select_related("question", "question__exam").get(pk=change.answer_id)
    if _current_value(answer, change.field) != change.new_value:
        raise StaleAnswer(
            current=answer,
            message=f"{answer} was changed again after this change; revert the later change first.",
        )
    return _apply(answer=answer, field_name=change.field, value=change.old_value, user=user, now=now,
                  reverted_change=change, note=note)


@transaction.atomic
def change_revert(*, change_id: int, user: User) -> AnswerChange:
    """Undo one recorded change by applying its old value as a new change (which points back at it).

    Only the latest value can be reverted: when the field was changed again since, ``StaleAnswer``
    is raised with the current answer. Returns the new change.
    """
    change = AnswerChange.objects.select_related("answer__question").get(pk=change_id)
    _exam_lock_open(exam_id=change.answer.question.exam_id)
    return _revert(change=change, user=user, now=timezone.now(), note=f"Revert of change {change.pk}")


@transaction.atomic
def exam_rollback(*, exam_id: int, to: datetime, user: User) -> list[AnswerChange]:
    """Put every answer of the exam back as it was at ``to``: each change made after ``to`` is
    reverted, newest first, and recorded as a revert (so the rollback itself can be rolled back).

    All or nothing: if an answer's value does not follow its recorded history, ``StaleAnswer`` is
    raised and nothing is changed. Returns the reverts made, in the order applied. Rubric answers'
    dimensions and feedback are not in this history: ``grader.rubrics.services.exam_rollback`` puts
    them back with their totals.
    """
    _exam_lock_open(exam_id=exam_id)
    now = timezone.now()
    later = list(
        AnswerChange.objects.filter(answer__question__exam_id=exam_id, at__gt=to, at__lte=now).order_by("-at", "-pk")
    )
    # Lock every answer concerned, in id order, before changing any.
    list(Answer.objects.select_for_update().filter(pk__in={c.answer_id for c in later}).order_by("pk").values("pk"))
    note = f"Rollback to {timezone.localtime(to):%Y-%m-%d %H:%M:%S}"
    return [_revert(change=change, user=user, now=now, note=note) for change in later]


# ---------------------------------------------------------------- answer groups


@dataclass
class GroupScoreResult:
    """``scored``: members whose score was set. ``skipped``: members left alone because they changed
    since the teacher saw the group (their version differs, or they were not in the group then)."""

    scored: list[Answer] = field(default_factory=list)
    skipped: list[Answer] = field(default_factory=list)
    unchanged: list[Answer] = field(default_factory=list)


@transaction.atomic
def group_score_set(*, question_id: int, group_key: str, score: Decimal | None, user: User,
                    expected_versions: Mapping[int, int] | None = None) -> GroupScoreResult:
    """Score every member of an answer group at once (``None`` clears their teacher scores).

    The group is found again by ``group_key`` (see ``selectors.answer_groups_for_question``).
    ``expected_versions`` maps answer id -> the version the teacher saw; when given, a member whose
    version differs (someone scored or corrected it meanwhile) or that is not in the mapping (it
    joined the group since) is skipped, never overwritten; the teacher sees it in ``skipped``.
    Without it every member is scored. Each member's change is recorded on its own.
    Raises ``ScoreRefused`` for an invalid score or a group that no longer exists.
    """
    question = Question.objects.select_related("exam").get(pk=question_id)
    _exam_lock_open(exam_id=question.exam_id)
    score_check(question=question, score=score)
    group = next((g for g in answer_groups_for_question(question_id=question_id) if g.key == group_key), None)
    if group is None:
        raise ScoreRefused("This group no longer exists; its answers were changed or pulled out. Reload the groups.")
    result = GroupScoreResult()
    now, value = timezone.now(), _score_text(score)
    members = Answer.objects.select_for_update().select_related("question", "script").filter(
        pk__in=[member.pk for member in group.members]
    ).order_by("script__number")
    for answer in members:
        if expected_versions is not None and expected_versions.get(answer.pk) != answer.version:
            result.skipped.append(answer)
        elif _score_text(answer.score) == value:
            result.unchanged.append(answer)
        else:
            _apply(answer=answer, field_name=SCORE, value=value, user=user, now=now, note=f"Group {group.text!r}"[:200])
            result.scored.append(answer)
    return result


@transaction.atomic
def group_member_detach(*, answer_id: int, user: User) -> AnswerGroupOverride:
    """Pull an answer out of its group for good: it is scored on its own. Its score is kept."""
    answer = Answer.objects.select_related("question").get(pk=answer_id)
    Exam.objects.select_for_update().get(pk=answer.question.exam_id)
    override, _ = AnswerGroupOverride.objects.update_or_create(
        answer=answer, defaults={"detached": True, "by": user, "at": timezone.now()}
    )
    return override


@transaction.atomic
def group_member_attach(*, answer_id: int, user: User) -> None:
    """Undo ``group_member_detach``: the answer groups with the answers that read the same again."""
    AnswerGroupOverride.objects.filter(answer_id=answer_id).delete()


# ---------------------------------------------------------------- completeness and finishing


@transaction.atomic
def completeness_waive(*, exam_id: int, kind: str, object_id: int, user: User, reason: str) -> CompletenessWaiver:
    """Accept one open completeness item (e.g. an absent student who really was absent).

    Raises ``CompletenessRefused`` without a reason or when the item is not on the exam's list.
    Waiving it again replaces the reason.
    """
    Exam.objects.select_for_update().get(pk=exam_id)
    reason = reason.strip()
    if not reason:
        raise CompletenessRefused("Say why this item can be left as it is.")
    if exam_completeness(exam_id=exam_id).find(kind=kind, object_id=object_id) is None:
        raise CompletenessRefused("That item is not on this exam's completeness list (it may be settled already).")
    waiver, _ = CompletenessWaiver.objects.update_or_create(
        exam_id=exam_id, kind=kind, object_id=object_id, defaults={"by": user, "at": timezone.now(), "reason": reason}
    )
    return waiver


@transaction.atomic
def exam_finish(*, exam_id: int, user: User) -> ExamStatus:
    """Mark the exam finished, which locks its scores and transcriptions.

    Raises ``CompletenessRefused`` (with the open items) while any completeness item is neither
    settled nor waived. Finishing a finished exam changes nothing.
    """
    exam = Exam.objects.select_for_update().get(pk=exam_id)
    status, _ = ExamStatus.objects.get_or_create(exam=exam)
    if status.finished:
        return status
    open_items = exam_completeness(exam_id=exam_id).open_items
    if open_items:
        raise CompletenessRefused(
            f"{counted(len(open_items), 'item')} must be settled or waived before the exam is finished.", items=open_items
        )
    status.finished_at, status.finished_by = timezone.now(), user
    status.save(update_fields=["finished_at", "finished_by"])
    return status


@transaction.atomic
def exam_reopen(*, exam_id: int, user: User) -> ExamStatus:
    """Undo ``exam_finish`` so scores can change again."""
    exam = Exam.objects.select_for_update().get(pk=exam_id)
    status, _ = ExamStatus.objects.get_or_create(exam=exam)
    status.finished_at, status.finished_by = None, None
    status.save(update_fields=["finished_at", "finished_by"])
    return status
