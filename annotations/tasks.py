"""Celery tasks for boxes: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import services


@shared_task(base=WorkTask)
def suggestions_compute_task(exam_id: int) -> int:
    return services.suggestions_compute(exam_id=exam_id)


@shared_task(base=WorkTask)
def vlm_suggestions_compute_task(exam_id: int) -> int:
    """On a GPU worker (routed to `vlm`): the VLM's box suggestions (``annotations.vlm_suggestions``)."""
    from .vlm_suggestions import vlm_suggestions_compute

    return vlm_suggestions_compute(exam_id=exam_id)
