"""Rubric questions: a rubric (dimensions with max points and level descriptors) saved by a teacher and
reused across exams, attached to a question instead of a single key answer; per-dimension scores of an
answer (its ``Answer.score`` is their sum); written feedback built from the question's comment bank and
the teacher's own words.

Points are ``Decimal`` marks. ``RubricDimension.levels`` is ``[{"points": "4", "label": "exceptional",
"description": "every cause, each explained"}]``, highest first (points as decimal strings).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from grader.models import Question
from grader.reading.models import Answer


class Rubric(models.Model):
    """A teacher's rubric, reusable on any of their exams' questions."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rubrics")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_rubric_name_per_owner")]

    def __str__(self) -> str:
        return self.name

    @property
    def max_points(self) -> Decimal:
        return sum((dimension.max_points for dimension in self.dimensions.all()), Decimal(0))


class RubricDimension(models.Model):
    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="dimensions")
    order = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=100)
    max_points = models.DecimalField(max_digits=6, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    levels = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["order", "pk"]
        constraints = [models.UniqueConstraint(fields=["rubric", "name"], name="unique_dimension_name_per_rubric")]

    def __str__(self) -> str:
        return f"{self.name} (/{self.max_points:g})"


class QuestionRubric(models.Model):
    """The rubric a question is marked by (its ``max_score`` is the rubric's total)."""

    question = models.OneToOneField(Question, on_delete=models.CASCADE, related_name="rubric_link")
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="question_links")
    task = models.TextField(blank=True, help_text="What the students were asked, for the rubric model's prompt")


class DimensionScore(models.Model):
    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="dimension_scores")
    dimension = models.ForeignKey(RubricDimension, on_delete=models.CASCADE, related_name="scores")
    points = models.DecimalField(max_digits=6, decimal_places=2)

    class Meta:
        ordering = ["dimension__order", "dimension__pk"]
        constraints = [models.UniqueConstraint(fields=["answer", "dimension"], name="unique_score_per_dimension")]


class FeedbackComment(models.Model):
    """One entry of a question's comment bank, inserted by its ``number`` key; editing it changes the
    feedback of every answer that has it."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="feedback_comments")
    number = models.PositiveSmallIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["question", "number"], name="unique_comment_number_per_question")]

    def __str__(self) -> str:
        return f"{self.number}. {self.text}"


class AnswerFeedback(models.Model):
    """The feedback a student gets on an answer: the bank comments chosen, then the teacher's own words."""

    answer = models.OneToOneField(Answer, on_delete=models.CASCADE, related_name="feedback")
    comments = models.ManyToManyField(FeedbackComment, blank=True, related_name="feedbacks")
    text = models.TextField(blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    @property
    def full_text(self) -> str:
        parts = [comment.text for comment in self.comments.all()] + [self.text]
        return "\n".join(part.strip() for part in parts if part.strip())


class RubricSuggestion(models.Model):
    """What the rubric model (``ml.rubric``) suggests for an answer: points per dimension (decimal
    strings in the rubric's order, on the question's steps) and a draft of the feedback. The teacher
    accepts it (Enter) or writes their own; it never becomes a score by itself."""

    answer = models.OneToOneField(Answer, on_delete=models.CASCADE, related_name="rubric_suggestion")
    points = models.JSONField(default=list)
    feedback = models.TextField(blank=True)
    model = models.CharField(max_length=300, blank=True, help_text="The model folder that made it")
    at = models.DateTimeField(default=timezone.now)


class RubricChange(models.Model):
    """One change to a rubric answer's dimension scores or feedback. ``AnswerChange`` records only the
    total; this keeps the rest, so a rollback puts the dimensions and the feedback back with it.

    ``old`` and ``new`` are the answer's whole rubric state before and after, by dimension name and by
    comment number and words (a backup restores them as they are): ``{"points": {"Content": "3"},
    "comments": [[1, "Name both causes."]], "text": "the teacher's own words"}``; no score is
    ``{"points": {}, "comments": [], "text": ""}``. A change made with a new total has the same ``at``
    as the total's ``AnswerChange``."""

    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="rubric_changes")
    old = models.JSONField()
    new = models.JSONField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
