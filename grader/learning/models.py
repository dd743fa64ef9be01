"""Fine-tuning the CPU reader on a teacher's corrections, as a job with progress."""

from __future__ import annotations

from django.db import models

from grader.models import Exam
from grader.recovery.models import Job


def _weights_path(instance: LearningJob, filename: str) -> str:
    return f"exams/{instance.exam_id}/reader/{filename}"


def _scorer_path(instance: LearningJob, filename: str) -> str:
    return f"exams/{instance.exam_id}/scorer/{filename}"


class LearningJob(Job):
    """One run of "Learn from my corrections and re-read the rest" for an exam
    (``Job``: status, progress, heartbeat).

    ``stage`` is what the job is doing (export, train, re-read); ``done``/``total`` count its steps
    (epochs while training, scripts while re-reading). ``metrics`` holds the trainer's figures
    (``ml.ocr_train``: lines, CER before and after on held-out corrected lines). ``weights`` is the
    fine-tuned recogniser, kept only when it read the held-out lines better than the reader it
    started from; the exam is read with the newest such weights from then on.

    ``scorer`` is a learned scorer (``ml.scorer``, its folder zipped) trained on the teacher's marks,
    and ``metrics["scorer"]`` its held-out agreement per question against the suggestions without it;
    the questions where it agreed more often (``metrics["scorer"]["offered"]``, question primary keys)
    take its suggestions from then on.
    """

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="learning_jobs")
    stage = models.CharField(max_length=32, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    weights = models.FileField(upload_to=_weights_path, blank=True, max_length=300)
    scorer = models.FileField(upload_to=_scorer_path, blank=True, max_length=300)

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"Learning for {self.exam} ({self.get_status_display()})"

    @property
    def finished(self) -> bool:
        """Over, re-reading included (a job is DONE as soon as its weights are the exam's reader)."""
        return self.finished_at is not None
