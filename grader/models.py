"""Core records: people, exams, the roster, the answer key, template pages, scan uploads and scripts.

Page images are stored at the app's canonical raster (``settings.PAGE_DPI``, 150 dpi; an A4 page is
1240x1754 pixels). Page indexes are 0-based in storage and shown 1-based to teachers.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from ml.similarity import STRATEGIES

RESERVED_LABELS = ("NAME", "ID", "CLASS")


class Department(models.Model):
    name = models.CharField(max_length=120, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    class Role(models.TextChoices):
        TEACHER = "teacher", "Teacher"
        HEAD = "head", "Department head"
        ADMIN = "admin", "Administrator"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TEACHER)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )

    @property
    def is_markdesk_admin(self) -> bool:
        return self.is_superuser or self.role == self.Role.ADMIN

    @property
    def is_department_head(self) -> bool:
        return self.role == self.Role.HEAD


def _exam_file_path(instance: Exam, filename: str) -> str:
    return f"exams/{instance.pk}/{filename}"


class Exam(models.Model):
    title = models.CharField(max_length=200)
    subject = models.CharField(max_length=120, blank=True)
    date = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exams_owned")
    co_markers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="exams_comarked")
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="exams"
    )
    classes = models.CharField(
        max_length=200, blank=True, help_text="Class names taking this exam, separated by commas, e.g. 9A, 9B."
    )
    pages_per_script = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
    anonymous = models.BooleanField(
        "anonymous grading", default=False, help_text="Show script numbers only, never names or IDs, while grading."
    )
    drop_blank_pages = models.BooleanField(
        "drop blank back pages",
        default=True,
        help_text="Set aside the empty back pages a duplex scanner produces (they stay visible and can be restored).",
    )
    template_pdf = models.FileField(upload_to=_exam_file_path, blank=True)
    default_min_similarity = models.FloatField(
        "minimum similarity",
        default=0.8,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Answers at least this similar to the key get full marks (0-1); questions may override it.",
    )
    default_granularity = models.DecimalField(
        "score granularity",
        max_digits=4,
        decimal_places=2,
        default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Scores are multiples of this (e.g. 0.5); questions may override it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "-created_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("exam_detail", args=[self.pk])

    @property
    def class_list(self) -> list[str]:
        return [c.strip() for c in self.classes.split(",") if c.strip()]


class Student(models.Model):
    """A roster entry: one student expected to sit the exam."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="students")
    student_id = models.CharField("ID", max_length=64)
    name = models.CharField(max_length=200)
    class_name = models.CharField("class", max_length=64, blank=True)
    email = models.EmailField(blank=True)

    class Meta:
        ordering = ["class_name", "name"]
        constraints = [models.UniqueConstraint(fields=["exam", "student_id"], name="unique_student_id_per_exam")]

    def __str__(self) -> str:
        return f"{self.name} ({self.student_id})"


class Question(models.Model):
    """One answer-key entry. ``accept`` holds other accepted answers; ``max_score`` is in marks."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="questions")
    label = models.CharField(max_length=32)
    order = models.PositiveIntegerField(default=0)
    answer = models.TextField(blank=True)
    accept = models.JSONField(default=list, blank=True)
    created_with_box = models.BooleanField(
        default=False, help_text="Added to the key by drawing its box; deleting the box removes it again."
    )
    max_score = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("1"), validators=[MinValueValidator(Decimal("0"))]
    )
    min_similarity = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Empty: the exam's."
    )
    granularity = models.DecimalField(
        max_digits=4, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Empty: the exam's.",
    )
    strategy = models.CharField(
        "similarity",
        max_length=16,
        default="auto",
        choices=[(s, s.capitalize()) for s in STRATEGIES],
        help_text="How answers are compared with the key; auto chooses from the key's answers.",
    )
    lowest_terms = models.BooleanField(
        default=False, help_text="Numeric answers must be fractions in lowest terms (for 'simplify' questions)."
    )

    class Meta:
        ordering = ["order", "label"]
        constraints = [models.UniqueConstraint(fields=["exam", "label"], name="unique_question_label_per_exam")]

    def __str__(self) -> str:
        return self.label

    @property
    def effective_min_similarity(self) -> float:
        return self.exam.default_min_similarity if self.min_similarity is None else self.min_similarity

    @property
    def effective_granularity(self) -> Decimal:
        return self.exam.default_granularity if self.granularity is None else self.granularity

    def rubric_total(self) -> Decimal | None:
        """The total of the rubric the question is marked by (``grader.rubrics``), which is its maximum;
        None when it is marked by its key."""
        return (Question.objects.filter(pk=self.pk)
                .aggregate(total=models.Sum("rubric_link__rubric__dimensions__max_points"))["total"])


def _template_page_path(instance: TemplatePage, filename: str) -> str:
    return f"exams/{instance.exam_id}/template/{filename}"


class TemplatePage(models.Model):
    """A page of the blank exam, rasterised at ``settings.PAGE_DPI``."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="template_pages")
    index = models.PositiveSmallIntegerField(help_text="0-based page index")
    image = models.ImageField(upload_to=_template_page_path)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["exam", "index"], name="unique_template_page")]

    def __str__(self) -> str:
        return f"{self.exam} template page {self.index + 1}"


def _upload_path(instance: ScanUpload, filename: str) -> str:
    return f"exams/{instance.exam_id}/uploads/{filename}"


class ScanUpload(models.Model):
    """One uploaded file of scans (PDF or image) and the state of its processing task."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to=_upload_path)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=[("pdf", "PDF"), ("image", "Image")])
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=64, blank=True)
    pages_total = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    notes = models.JSONField(default=list, blank=True, help_text="Messages for the teacher about this upload.")
    heartbeat_at = models.DateTimeField(default=timezone.now, help_text="Last sign of progress (each page processed)")

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["exam", "sha256"], name="unique_upload_content_per_exam")]

    def __str__(self) -> str:
        return self.original_name

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.pages_done / self.pages_total) if self.pages_total else 0

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def stalled(self) -> bool:
        """Not finished, and no page processed for ``WORK_STALLED_MINUTES`` (see grader.recovery)."""
        from grader.recovery.models import stalled_before

        return not self.finished and self.heartbeat_at < stalled_before()


class Script(models.Model):
    """One student's answer script: an ordered set of scanned pages."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="scripts")
    number = models.PositiveIntegerField(help_text="1-based, shown to teachers; stable once given")
    student = models.ForeignKey(Student, null=True, blank=True, on_delete=models.SET_NULL, related_name="scripts")
    comment = models.TextField(blank=True, help_text="For the student: printed on the first page of the scored script.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["exam", "number"], name="unique_script_number")]

    def __str__(self) -> str:
        return f"Script {self.number}"

    def get_absolute_url(self) -> str:
        return reverse("script_detail", args=[self.exam_id, self.number])


def _scan_page_path(instance: ScanPage, filename: str) -> str:
    return f"exams/{instance.exam_id}/pages/{filename}"


class ScanPage(models.Model):
    """A scanned page. It belongs to a script at ``position`` (0-based), or to nothing yet (the tray).

    A page is never deleted by processing: blank back pages and pages a teacher removes are
    ``discarded`` with a reason and can be restored.
    """

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="pages")
    upload = models.ForeignKey(ScanUpload, on_delete=models.CASCADE, related_name="pages")
    source_index = models.PositiveIntegerField(help_text="0-based page index within the uploaded file")
    image = models.ImageField(upload_to=_scan_page_path)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    script = models.ForeignKey(Script, null=True, blank=True, on_delete=models.SET_NULL, related_name="pages")
    position = models.PositiveSmallIntegerField(null=True, blank=True)
    ink_fraction = models.FloatField(default=0)
    template_scores = models.JSONField(
        default=list, blank=True, help_text="Printed features shared with each template page, in template page order"
    )
    template_index = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="0-based template page this scan was aligned to"
    )
    transform = models.JSONField(
        null=True, blank=True, help_text="2x3 affine mapping template pixels to this page's pixels (both 150 dpi)"
    )
    alignment_note = models.CharField(max_length=200, blank=True, help_text="Why alignment failed, if it did")
    discarded = models.BooleanField(default=False)
    discard_reason = models.CharField(max_length=120, blank=True)
    flag = models.CharField(max_length=300, blank=True, help_text="Why a teacher should look at this page")

    class Meta:
        ordering = ["upload_id", "source_index"]
        constraints = [models.UniqueConstraint(fields=["upload", "source_index"], name="unique_page_per_upload")]

    def __str__(self) -> str:
        return f"{self.upload} page {self.source_index + 1}"

    @property
    def label(self) -> str:
        return f"{self.upload.original_name} p.{self.source_index + 1}"

    @property
    def template_match(self) -> int | None:
        """Printed features shared with the best-matching template page (None without a template)."""
        return max(self.template_scores) if self.template_scores else None
