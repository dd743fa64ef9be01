"""What every long job shares (status, progress, heartbeat), and the marks the recovery sweep leaves.

A job is claimed by one run at a time: ``attempts`` counts the runs, and a run writes progress and
its end only while the job's ``attempts`` is still its own (``grader.recovery.jobs``). Restarting or
cancelling a job bumps ``attempts``, so a run that lost its job (a worker thought dead, a job the
teacher cancelled) stops at its next heartbeat without writing anything.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def stalled_before() -> datetime:
    """Work whose last sign of progress is older than this has stalled (``WORK_STALLED_MINUTES``)."""
    return timezone.now() - timedelta(minutes=settings.WORK_STALLED_MINUTES)


class Job(models.Model):
    """A long piece of work a teacher waits for. ``done``/``total`` count its steps; ``heartbeat_at``
    is the last sign of progress (each step writes it)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Runs started (and restarts asked for) so far")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(default=timezone.now, help_text="Last sign of progress")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-pk"]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def stalled(self) -> bool:
        """Still to do, but no progress for ``WORK_STALLED_MINUTES``: its worker is gone or its message lost."""
        return not self.finished and self.heartbeat_at < stalled_before()

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class Requeue(models.Model):
    """When the sweep last queued a piece of work that has no job of its own (reading an exam's
    scripts), so it queues it once per stall rather than at every sweep, and how many times in a row
    it did so without the work making progress in between (it gives up after ``WORK_REQUEUE_MAX``).
    ``key``: ``read:<exam id>``."""

    key = models.CharField(max_length=64, unique=True)
    at = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.key} at {self.at:%Y-%m-%d %H:%M}"
