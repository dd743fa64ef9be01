"""Celery tasks for boxes: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import services


@shared_task(base=WorkTask)
def box_suggestions_compute_task(exam_id: int) -> int:
    return services.box_suggestions_compute(exam_id=exam_id)


@shared_task(base=WorkTask)
def vlm_box_suggestions_compute_task(exam_id: int) -> int:
    """On a GPU worker (routed to `vlm`): the VLM's box suggestions (``annotations.vlm_suggestions``)."""
    from .vlm_suggestions import vlm_box_suggestions_compute

    return vlm_box_suggestions_compute(exam_id=exam_id)
