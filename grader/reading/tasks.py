"""Celery tasks for reading: thin wrappers that take primary keys and call a service.

``script_read_task`` and ``script_box_read_task`` run EasyOCR on the CPU queue ``ocr``, a script at a
time; when a VLM is configured, ``services.reading_queue`` also sends ``scripts_read_vlm_task`` to the
GPU workers on ``vlm`` with several scripts each, so their pages are batched. All are idempotent, so a
retried or repeated task does no harm.
"""

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import services


@shared_task(base=WorkTask)
def script_read_task(script_id: int) -> int:
    read = services.script_read(script_id=script_id, engines=[services.OCR])
    services.exam_resuggest_when_read(script_id=script_id)
    services.exam_identity_match_when_read(script_id=script_id)
    return read


@shared_task(base=WorkTask)
def script_box_read_task(script_id: int, box_id: int) -> int:
    """Read one box of one script (again), e.g. after it was drawn, or moved on the template or that script."""
    read = services.script_read(script_id=script_id, engines=[services.OCR], box_ids=[box_id])
    # A NAME, ID or CLASS box read on the last script completes what identity matching needs.
    services.exam_identity_match_when_read(script_id=script_id)
    return read


@shared_task(base=WorkTask)
def scripts_read_vlm_task(script_ids: list[int], box_id: int | None = None) -> int:
    read = services.scripts_read(script_ids=script_ids, engines=[services.VLM],
                                 box_ids=None if box_id is None else [box_id])
    if script_ids and box_id is None:
        services.exam_identity_match_when_read(script_id=script_ids[-1])
    return read


@shared_task(base=WorkTask)
def question_resuggest_task(question_id: int) -> None:
    services.question_resuggest(question_id=question_id)
