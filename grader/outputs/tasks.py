"""Celery tasks for outputs: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def export_run_task(job_id: int) -> str:
    return services.export_run(job_id=job_id).status
