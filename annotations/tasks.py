"""Celery tasks for boxes: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def suggestions_compute_task(exam_id: int) -> int:
    return services.suggestions_compute(exam_id=exam_id)
