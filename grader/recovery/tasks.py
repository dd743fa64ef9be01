"""The recovery sweep as a task, for Celery beat (``CELERY_BEAT_SCHEDULE`` in grader/settings.py)."""

from celery import shared_task

from .jobs import WorkTask
from .services import work_recover


@shared_task(base=WorkTask)
def work_recover_task() -> str:
    return str(work_recover())
