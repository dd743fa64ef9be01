"""Running work so that a killed worker, a dropped database connection or a redelivered message does no harm.

``WorkTask`` is the base of every markdesk task: acknowledged late, given back when its worker dies,
and retried (with backoff) when the database connection broke, after closing the broken connection so
that the retry opens a new one. Django's ``OperationalError``/``InterfaceError`` are what a dropped
connection raises (``pg_terminate_backend``, a restarted server, a network cut).

Jobs (``grader.recovery.models.Job``) are run through ``job_claim`` / ``job_beat`` / ``job_end``:

- ``job_claim`` takes a queued job, or a running one that stalled (its worker died), and bumps its
  ``attempts``; anything else (finished, cancelled, running elsewhere) is left alone, so a redelivered
  or repeated task returns at once only when there is really nothing to do;
- ``job_beat`` records progress and the heartbeat, and raises ``JobLost`` once the job is no longer
  this run's (restarted, cancelled, taken over): the run stops without writing;
- ``job_end`` writes the job's end, reconnecting and trying again when the connection broke.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from celery import Task
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from .models import Job, stalled_before

logger = logging.getLogger(__name__)

DB_ERRORS = (OperationalError, InterfaceError)
T = TypeVar("T")
J = TypeVar("J", bound=Job)


def db_reconnect() -> None:
    """Drop this thread's database connection (broken or not) so the next query opens a new one."""
    if connection.in_atomic_block:
        return  # the transaction's owner rolls back first; its caller reconnects
    try:
        connection.close()
    except DB_ERRORS:
        pass  # already dead: closing it is all we wanted


def db_retrying(write: Callable[[], T], *, tries: int = 4, wait_s: float = 1.0) -> T:
    """``write()``, again on a new connection when the database connection broke (up to ``tries``
    times, waiting ``wait_s``, 2 × ``wait_s``… between): for a job's finishing write, which must not
    be lost to the error it is recording."""
    for attempt in range(1, tries + 1):
        try:
            return write()
        except DB_ERRORS:
            if attempt == tries or connection.in_atomic_block:
                raise
            logger.warning("Database connection lost; trying again (%d of %d)", attempt, tries - 1)
            db_reconnect()
            time.sleep(wait_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


class WorkTask(Task):
    """Base task: late acknowledgement, given back on a lost worker, retried on a broken database connection.

    Before each task, Celery's Django fixup closes connections that errored; a retry closes the broken
    one itself, since it may run in the same process at once (eager) or after the backoff.
    """

    acks_late = True
    reject_on_worker_lost = True
    # A broken database connection, or the broker's (a task queuing the next one).
    autoretry_for = (*DB_ERRORS, ConnectionError)
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 6

    def retry(self, *args, exc=None, **kwargs):
        if isinstance(exc, DB_ERRORS):
            db_reconnect()
        return super().retry(*args, exc=exc, **kwargs)


class JobLost(Exception):
    """The job is no longer this run's: restarted, cancelled or taken over by another run."""


def job_claim(model: type[J], job_id: int, *, select: Sequence[str] = ()) -> J | None:
    """Take the job ``job_id`` for this run: a queued job, or a running one that stalled (``select``:
    relations to load with it). Returns it running (``attempts`` + 1, progress reset), or None when
    there is nothing to do."""
    with transaction.atomic():
        job = model.objects.select_for_update(of=("self",)).select_related(*select).filter(pk=job_id).first()
        if job is None:
            return None
        stale = job.status == Job.Status.RUNNING and job.heartbeat_at < stalled_before()
        if job.status != Job.Status.QUEUED and not stale:
            return None
        if stale:
            logger.warning("%s %s stalled (no progress since %s): running it again", model.__name__, job.pk,
                           job.heartbeat_at)
        job.status, job.attempts, job.done, job.error = Job.Status.RUNNING, job.attempts + 1, 0, ""
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "attempts", "done", "error", "heartbeat_at"])
    return job


def job_beat(job: Job, **fields) -> None:
    """Record progress (``done``, ``total``, ``stage``…) and the heartbeat; ``JobLost`` when the job is
    no longer this run's."""
    for name, value in fields.items():
        setattr(job, name, value)
    job.heartbeat_at = timezone.now()
    mine = type(job).objects.filter(pk=job.pk, attempts=job.attempts, status__in=[Job.Status.RUNNING, Job.Status.DONE])
    if not db_retrying(lambda: mine.update(heartbeat_at=job.heartbeat_at, **fields)):
        raise JobLost(f"{type(job).__name__} {job.pk} was restarted or cancelled")


def job_end(job: J, status: str, **fields) -> J:
    """Write the job's end (``status`` and ``fields``, ``finished_at`` now) if it is still this run's;
    survives a dropped connection (``db_retrying``)."""
    job.status, job.finished_at = status, timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    mine = type(job).objects.filter(pk=job.pk, attempts=job.attempts)
    written = db_retrying(lambda: mine.update(status=status, finished_at=job.finished_at,
                                              heartbeat_at=job.finished_at, **fields))
    if not written:
        logger.info("%s %s ended elsewhere; this run's end (%s) is dropped", type(job).__name__, job.pk, status)
    return job


@transaction.atomic
def job_restart(model: type[J], job_id: int, *, enqueue: Callable[[int], object]) -> J:
    """Queue the job again from the start (the teacher's "Make again", or the sweep): any run still
    going stops at its next heartbeat. ``enqueue(job_id)`` sends the task once this commits."""
    job = model.objects.select_for_update(of=("self",)).get(pk=job_id)
    job.status, job.attempts, job.done, job.error = Job.Status.QUEUED, job.attempts + 1, 0, ""
    job.heartbeat_at, job.finished_at = timezone.now(), None
    job.save(update_fields=["status", "attempts", "done", "error", "heartbeat_at", "finished_at"])
    transaction.on_commit(lambda: enqueue(job.pk))
    return job


@transaction.atomic
def job_cancel(model: type[J], job_id: int) -> J:
    """Cancel a job that has not finished (a finished one is returned as it is)."""
    job = model.objects.select_for_update(of=("self",)).get(pk=job_id)
    if job.finished:
        return job
    job.status, job.attempts, job.finished_at = Job.Status.CANCELLED, job.attempts + 1, timezone.now()
    job.error = "Cancelled."
    job.save(update_fields=["status", "attempts", "finished_at", "error"])
    return job
