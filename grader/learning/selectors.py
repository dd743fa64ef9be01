"""What the learning screens and the reader ask: labelled answers, the exam's reader, the latest job."""

from __future__ import annotations

from pathlib import Path

from django.db.models import F, Q, QuerySet

from grader.models import Exam, User
from grader.reading.models import Answer

from .models import LearningJob


# A job is DONE before it finishes (what it kept is used while it reads and suggests again), and such
# a job is the newest: nulls first, as PostgreSQL and SQLite sort them differently.
_NEWEST = (F("finished_at").desc(nulls_first=True), "-pk")


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


def answers_scored(*, exam: Exam) -> QuerySet[Answer]:
    """Written answers of ``exam`` with a teacher's score, as read: what a scorer learns the marking from."""
    return (
        Answer.objects.filter(script__exam=exam, score__isnull=False, blank=False, read_error="",
                              read_at__isnull=False, question__max_score__gt=0)
        .select_related("script", "question")
        .order_by("script__number", "question__order")
    )


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
    job = jobs.filter(status=LearningJob.Status.DONE).exclude(weights="").order_by(*_NEWEST).first()
    if job is None or not job.weights.storage.exists(job.weights.name):
        return None
    return Path(job.weights.path)


def exam_scorer(*, exam_id: int) -> tuple[Path, set[int]] | None:
    """The newest learned scorer kept for the exam, as (its zip's local path, the primary keys of the
    questions it is offered for); None when there is none."""
    job = (LearningJob.objects.filter(exam_id=exam_id, status=LearningJob.Status.DONE).exclude(scorer="")
           .order_by(*_NEWEST).first())
    if job is None or not job.scorer.storage.exists(job.scorer.name):
        return None
    return Path(job.scorer.path), set(job.metrics.get("scorer", {}).get("offered", []))


def learning_job_latest(*, exam: Exam) -> LearningJob | None:
    return LearningJob.objects.filter(exam=exam).order_by("-created_at", "-pk").first()
