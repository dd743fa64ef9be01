"""What the learning screens and the reader ask: labelled answers, the exam's reader, the latest job."""

from __future__ import annotations

from pathlib import Path

from django.db.models import F, Q, QuerySet

from grader.models import Exam, User
from grader.reading.models import Answer

from .models import LearningJob


def answers_labelled(*, exams: QuerySet[Exam] | list[Exam]) -> QuerySet[Answer]:
    """Answers whose text a teacher has vouched for: typed (``confirmed_text``), or scored exactly as
    the known answer the ink fits would score it (the teacher agreed that the ink says ``fit_text``)."""
    return (
        Answer.objects.filter(script__exam__in=exams, read_error="", page__isnull=False, crop__isnull=False)
        .filter(Q(confirmed_text__isnull=False) | Q(score__isnull=False, fit_text__gt="", score=F("suggested_score")))
        .select_related("script", "question", "page")
        .order_by("script__exam_id", "script__number", "question__order")
    )


def answers_labelled_count(*, exam: Exam) -> int:
    """How many written (not blank) answers of ``exam`` the reader could learn from."""
    return answers_labelled(exams=[exam]).exclude(blank=True).count()


def answer_label(answer: Answer) -> str:
    """The text a labelled answer (see :func:`answers_labelled`) is taken to say ("" for blank)."""
    if answer.confirmed_text is not None:
        return answer.confirmed_text.strip()
    return "" if answer.blank else answer.fit_text


def exam_reader_weights(*, exam: Exam) -> Path | None:
    """The newest fine-tuned reader weights kept for this exam, as a local path; None for english_g2's."""
    return _weights_newest(LearningJob.objects.filter(exam=exam))


def teacher_reader_weights(*, user: User) -> Path | None:
    """The newest weights learned from this teacher's corrections on any exam: where a new exam's
    learning starts (the teacher's handwriting readers keep what they learned)."""
    return _weights_newest(LearningJob.objects.filter(created_by=user))


def _weights_newest(jobs: QuerySet[LearningJob]) -> Path | None:
    job = jobs.filter(status=LearningJob.Status.DONE).exclude(weights="").order_by("-finished_at", "-pk").first()
    if job is None or not job.weights.storage.exists(job.weights.name):
        return None
    return Path(job.weights.path)


def learning_job_latest(*, exam: Exam) -> LearningJob | None:
    return LearningJob.objects.filter(exam=exam).order_by("-created_at", "-pk").first()
