"""The grading record: every teacher change to a score or transcription, answer-group overrides,
waived completeness items and whether an exam is finished.

Scores are stored in ``AnswerChange`` as decimal strings in marks ("1.5"); ``None`` means "no
teacher value" (the score was cleared back to the suggestion, or the transcription back to the
engines' reading). Times are timezone-aware.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from grader.models import Exam
from grader.reading.models import Answer


class AnswerChange(models.Model):
    """One teacher change to one field of an answer.

    ``field`` is "score" (``Answer.score``) or "text" (``Answer.confirmed_text``). ``old_value`` and
    ``new_value`` are that field before and after, ``None`` for no teacher value. A change that
    undoes another points at it through ``reverted_change``. ``by`` is the account that made it;
    a change restored from a backup links no account and keeps its author's username in ``by_name``.
    """

    class Field(models.TextChoices):
        SCORE = "score", "Score"
        TEXT = "text", "Transcription"

    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="changes")
    field = models.CharField(max_length=8, choices=Field.choices)
    old_value = models.TextField(null=True, blank=True)
    new_value = models.TextField(null=True, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    by_name = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    reverted_change = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reverts",
        help_text="The change this one undoes, when it is a revert",
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["answer", "at"], name="grading_change_answer_at")]

    def __str__(self) -> str:
        return f"{self.answer} {self.field}: {self.old_value!r} -> {self.new_value!r}"


class AnswerGroupOverride(models.Model):
    """A teacher pulled this answer out of its answer group: it is scored on its own."""

    answer = models.OneToOneField(Answer, on_delete=models.CASCADE, related_name="group_override")
    detached = models.BooleanField(default=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)


class CompletenessWaiver(models.Model):
    """A teacher accepted one open completeness item, so it no longer stops the exam being finished.

    ``object_id`` is the item's object: an answer for "unscored" and "flagged", a script for
    "no-student", a student for "absent" and "duplicate".
    """

    class Kind(models.TextChoices):
        UNSCORED = "unscored", "Unscored answer"
        FLAGGED = "flagged", "Flagged answer not reviewed"
        NO_STUDENT = "no-student", "Script without a student"
        ABSENT = "absent", "Absent student"
        DUPLICATE = "duplicate", "Student claimed by several scripts"

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="completeness_waivers")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    object_id = models.PositiveIntegerField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(fields=["exam", "kind", "object_id"], name="unique_waiver_per_item"),
        ]

    def __str__(self) -> str:
        return f"{self.exam} {self.kind} {self.object_id} waived"


class ExamStatus(models.Model):
    """Grading state of an exam: finished (scores locked) once ``finished_at`` is set."""

    exam = models.OneToOneField(Exam, on_delete=models.CASCADE, related_name="grading_status")
    finished_at = models.DateTimeField(null=True, blank=True)
    finished_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    @property
    def finished(self) -> bool:
        return self.finished_at is not None
