"""Celery tasks: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from grader.reading import services as reading_services

from . import services


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def scan_upload_process_task(upload_id: int) -> str:
    upload = services.scan_upload_process(upload_id=upload_id)
    if upload.status == upload.Status.DONE:
        reading_services.upload_read_enqueue(upload=upload)
    return upload.status
