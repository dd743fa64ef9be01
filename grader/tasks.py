"""Celery tasks: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def scan_upload_process_task(upload_id: int) -> str:
    return services.scan_upload_process(upload_id=upload_id).status
