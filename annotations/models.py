"""Answer boxes drawn on the blank template, their per-script adjustments, and suggested boxes.

Every box here is ``[x1, y1, x2, y2]`` in template-page pixels at ``settings.PAGE_DPI`` (150 dpi;
an A4 page is 1240x1754), x2/y2 exclusive, on the 0-based template page ``page``. Scan-pixel boxes
(after alignment) are said to be so wherever they appear.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from grader.models import RESERVED_LABELS, Exam, Question, Script


class BoxGeometry(models.Model):
    x1 = models.IntegerField()
    y1 = models.IntegerField()
    x2 = models.IntegerField()
    y2 = models.IntegerField()

    class Meta:
        abstract = True

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return (self.x1, self.y1, self.x2, self.y2)

    @bbox.setter
    def bbox(self, value) -> None:
        self.x1, self.y1, self.x2, self.y2 = (int(round(v)) for v in value)


class AnswerBox(BoxGeometry):
    """A labelled region of the template: NAME, ID, CLASS, or a question (then linked to it).

    A question box may hold ordered step boxes (``parent`` set), each inside its parent.
    """

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="boxes")
    page = models.PositiveSmallIntegerField(help_text="0-based template page")
    label = models.CharField(max_length=32)
    question = models.ForeignKey(Question, null=True, blank=True, on_delete=models.SET_NULL, related_name="boxes")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField(default=0, help_text="Step order within the parent, from 1")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["page", "y1", "x1"]
        constraints = [
            models.UniqueConstraint(
                fields=["exam", "label"], condition=models.Q(parent=None), name="unique_box_label_per_exam"
            ),
            models.CheckConstraint(condition=models.Q(x2__gt=models.F("x1"), y2__gt=models.F("y1")), name="box_positive_size"),
        ]

    def __str__(self) -> str:
        return self.label if self.parent_id is None else f"{self.parent.label} step {self.order}"

    @property
    def is_identity(self) -> bool:
        return self.label in RESERVED_LABELS


class BoxAdjustment(BoxGeometry):
    """Where one script's answer really is, when the aligned template box misses it (scan pixels)."""

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="box_adjustments")
    box = models.ForeignKey(AnswerBox, on_delete=models.CASCADE, related_name="adjustments")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["script", "box"], name="unique_adjustment_per_script_box")]


class SuggestedBox(BoxGeometry):
    """A candidate answer region found in the handwriting, waiting for the teacher (template pixels).

    ``steps``: the VLM's step boxes of the answer, in order, each ``[x1, y1, x2, y2]`` in template pixels
    inside the box; accepting the suggestion makes them the box's steps. Empty for the ink's.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="suggested_boxes")
    page = models.PositiveSmallIntegerField(help_text="0-based template page")
    score = models.FloatField(default=0)
    source = models.CharField(max_length=16, help_text="frame: a printed box held ink; ink: handwriting alone")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    steps = models.JSONField(default=list, blank=True, help_text="[[x1, y1, x2, y2], ...] template px, in order")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["page", "y1", "x1"]
