"""Celery tasks for learning: thin wrappers that take primary keys and call a service."""

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import services


@shared_task(base=WorkTask)
def reader_learn_task(job_id: int) -> str:
    return services.reader_learn_run(job_id=job_id).status
