"""Celery tasks: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from grader.models import ScanUpload
from grader.reading import services as reading_services
from grader.recovery.jobs import WorkTask

from . import services


@shared_task(base=WorkTask)
def scan_upload_process_task(upload_id: int) -> str:
    # A message handed out again (its worker died after the upload was done) queues no second reading:
    # the first run queued it, and the recovery sweep reads any script left unread.
    if ScanUpload.objects.filter(pk=upload_id, status=ScanUpload.Status.DONE).exists():
        return ScanUpload.Status.DONE
    upload = services.scan_upload_process(upload_id=upload_id)
    if upload.status == upload.Status.DONE:
        reading_services.upload_read_enqueue(upload=upload)
    return upload.status
