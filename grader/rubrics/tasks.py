from __future__ import annotations

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import suggest


@shared_task(base=WorkTask)
def rubric_suggest_task(question_id: int) -> int:
    return suggest.question_rubric_suggest(question_id=question_id)
