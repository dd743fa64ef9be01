"""The "Learn from my corrections and re-read the rest" card of the grading index: start and progress."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from grader import selectors as grader_selectors

from . import services
from .models import LearningJob


@login_required
@require_POST
def learning_start(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    try:
        job = services.reader_learn_start(exam=exam, user=request.user)
    except services.LearningRefused as refused:
        if request.htmx:
            response = render(request, "learning/_card.html",
                              {"exam": exam, "job": None, "refused": str(refused), "can_change": True}, status=409)
            trigger_client_event(response, "learningRefused", {"message": str(refused)})
            return response
        messages.error(request, str(refused))
        return redirect("grading_index", exam_id=exam.pk)
    if request.htmx:
        return render(request, "learning/_card.html", {"exam": exam, "job": job, "can_change": True})
    messages.success(request, "The reader is learning from your corrections; the exam is read again when it is done.")
    return redirect("grading_index", exam_id=exam.pk)


@login_required
@require_GET
def learning_progress(request: HttpRequest, exam_id: int, job_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    job = get_object_or_404(LearningJob, exam=exam, pk=job_id)
    if not request.htmx:
        return redirect("grading_index", exam_id=exam.pk)
    context = {"exam": exam, "job": job, "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam)}
    response = render(request, "learning/_card.html", context)
    if job.finished:
        response.status_code = HTMX_STOP_POLLING
        trigger_client_event(response, "learningFinished", {"job": job.pk, "status": job.status})
    return response


@login_required
@require_POST
def learning_job_action(request: HttpRequest, exam_id: int, job_id: int, action: str) -> HttpResponse:
    """"Learn again" (``again``) or "Cancel" (``cancel``) on a job that stalled."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    job = get_object_or_404(LearningJob, exam=exam, pk=job_id)
    if action not in ("again", "cancel"):
        raise Http404("No such action.")
    if action == "cancel":
        job = services.reader_learn_cancel(job=job)
    elif job.stalled:
        job = services.reader_learn_restart(job=job)
    if request.htmx:
        return render(request, "learning/_card.html", {"exam": exam, "job": job, "can_change": True})
    return redirect("grading_index", exam_id=exam.pk)
