"""Celery tasks for outputs: thin wrappers that take primary keys and call a service."""

from celery import shared_task
from django.db import OperationalError

from . import emails, services


@shared_task(acks_late=True)
def export_run_task(job_id: int) -> str:
    return services.export_run(job_id=job_id).status


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def email_delivery_send_task(delivery_id: int) -> str | None:
    # Safe to run twice: a delivery is sent only from queued or failed (see emails.email_delivery_send).
    delivery = emails.email_delivery_send(delivery_id=delivery_id)
    return delivery.status if delivery else None
