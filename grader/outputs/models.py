"""What leaves the app: generated files (scored-script PDFs, spreadsheets, sample reports, backups)
and the emails that carry each student's scored script.

Every generated file is an ``ExportJob`` run by a Celery task, so the teacher sees its progress and
downloads the result when it is done. Email deliveries are recorded one per student and exam, and a
delivery already sent is never sent again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from grader.models import Exam, Student
from grader.recovery.models import Job


def _export_path(instance: ExportJob, filename: str) -> str:
    return f"exams/{instance.exam_id}/exports/{instance.pk or 'new'}-{filename}"


class ExportJob(Job):
    """One requested file and the state of the task making it (``Job``: status, progress, heartbeat).

    ``params`` by kind: ``script-pdf`` ``{"script_id": int}``; ``sample-report`` ``{"n": int,
    "pass_mark": float | None}`` (pass mark in marks; when set, only scripts at or above it are
    drawn); the others take none. ``done``/``total`` count the scripts (or files) processed.
    """

    class Kind(models.TextChoices):
        SCRIPT_PDF = "script-pdf", "Scored script (PDF)"
        SCRIPTS_ZIP = "scripts-zip", "All scored scripts (zip of PDFs)"
        SPREADSHEET = "spreadsheet", "Scores spreadsheet (xlsx)"
        SAMPLE_REPORT = "sample-report", "Good / Average / Weak sample report (PDF)"
        BACKUP = "backup", "Backup of the whole exam (zip)"

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="export_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    params = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to=_export_path, blank=True, max_length=300)
    filename = models.CharField(max_length=200, blank=True, help_text="Name the download is saved under")

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.exam}"


class ExamEmail(models.Model):
    """The email a teacher sends students for one exam: subject and body templates.

    Placeholders, written ``{name}``: ``name``, ``student_id``, ``class_name``, ``total``, ``max``,
    ``percent`` and ``exam``. ``tested_digest`` is the digest of the subject and body the last test
    email (sent to the teacher) carried; students can be emailed only once that test matches.
    """

    exam = models.OneToOneField(Exam, on_delete=models.CASCADE, related_name="email")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    tested_digest = models.CharField(max_length=64, blank=True)
    tested_at = models.DateTimeField(null=True, blank=True)
    tested_to = models.EmailField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class EmailDelivery(models.Model):
    """One student's scored-script email for one exam, and what became of it.

    ``sending`` is set just before the SMTP conversation: a delivery found ``sending`` by a later
    attempt may have reached the student, so it is never sent again automatically.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        NO_ADDRESS = "no-address", "No email address"

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="email_deliveries")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="email_deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    to = models.EmailField(blank=True)
    subject = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    message_id = models.CharField(max_length=300, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True, help_text="When the latest attempt began (status became sending)")
    sent_at = models.DateTimeField(null=True, blank=True)
    queued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["student__class_name", "student__name"]
        constraints = [models.UniqueConstraint(fields=["exam", "student"], name="unique_delivery_per_student")]

    def __str__(self) -> str:
        return f"{self.student} {self.status}"
