"""The Celery application: ``celery -A grader worker -Q default,ocr`` (CPU) or ``-Q vlm`` (GPU)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "grader.settings")

app = Celery("markdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
