"""Celery tasks for outputs: thin wrappers that take primary keys and call a service.

Both may run twice (a redelivered message, the recovery sweep): a job is claimed by one run at a
time, and a delivery is sent only from queued or failed (see ``grader.recovery.jobs`` and
``emails.email_delivery_send``).
"""

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import emails, services


@shared_task(base=WorkTask)
def export_run_task(job_id: int) -> str | None:
    job = services.export_run(job_id=job_id)
    return job.status if job else None


@shared_task(base=WorkTask)
def email_delivery_send_task(delivery_id: int) -> str | None:
    delivery = emails.email_delivery_send(delivery_id=delivery_id)
    return delivery.status if delivery else None
