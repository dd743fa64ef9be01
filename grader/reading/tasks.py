"""Celery tasks for reading: thin wrappers that take primary keys and call a service.

``script_read_task`` runs on the CPU queue ``ocr``; when a VLM is configured it queues the same script
on ``vlm`` for the GPU workers. Both are idempotent, so a retried or repeated task does no harm.
"""

from celery import shared_task
from django.conf import settings

from grader.recovery.jobs import WorkTask

from . import services


@shared_task(base=WorkTask)
def script_read_task(script_id: int) -> int:
    read = services.script_read(script_id=script_id, engines=[services.OCR])
    if settings.VLM_MODEL_PATH:
        script_read_vlm_task.delay(script_id)
    services.exam_resuggest_when_read(script_id=script_id)
    services.exam_identity_match_when_read(script_id=script_id)
    return read


@shared_task(base=WorkTask)
def script_box_read_task(script_id: int, box_id: int) -> int:
    """Read one box of one script (again), e.g. after it was drawn, or moved on the template or that script."""
    read = services.script_read(script_id=script_id, box_ids=[box_id])
    # A NAME, ID or CLASS box read on the last script completes what identity matching needs.
    services.exam_identity_match_when_read(script_id=script_id)
    return read


@shared_task(base=WorkTask)
def script_read_vlm_task(script_id: int) -> int:
    return services.script_read(script_id=script_id, engines=[services.VLM])


@shared_task(base=WorkTask)
def question_resuggest_task(question_id: int) -> None:
    services.question_resuggest(question_id=question_id)
