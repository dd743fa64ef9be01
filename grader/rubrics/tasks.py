from __future__ import annotations

from celery import shared_task

from grader.recovery.jobs import WorkTask

from . import suggest


@shared_task(base=WorkTask)
def exam_rubric_suggest_task(exam_id: int, question_ids: list[int] | None = None, again: bool = False) -> int:
    return suggest.exam_rubric_suggest(exam_id=exam_id, question_ids=question_ids, again=again)
