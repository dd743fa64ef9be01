"""Celery tasks for learning: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def reader_learn_task(job_id: int) -> str:
    return services.reader_learn_run(job_id=job_id).status
