"""The outputs page: scored scripts, the spreadsheet, the sample report and backups, each made by a job."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from grader import selectors as grader_selectors
from grader.grading.selectors import exam_status

from . import services
from .models import ExportJob
from .selectors import script_results


def _jobs_visible(request: HttpRequest, exam) -> list[ExportJob]:
    return [
        job for job in exam.export_jobs.select_related("created_by")[:30]
        if services.export_kind_allowed(user=request.user, exam=exam, kind=job.kind)
    ]


@login_required
@require_GET
def outputs(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    results = script_results(exam=exam)
    jobs = _jobs_visible(request, exam)
    context = {
        "exam": exam,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "status": exam_status(exam_id=exam.pk),
        "results": results,
        "suggested_only": sum(1 for result in results for row in result.rows if row.source == "suggested"),
        "unscored": sum(result.unscored for result in results),
        "jobs": jobs,
        "working": any(not job.finished for job in jobs),
        "Kind": ExportJob.Kind,
    }
    return render(request, "outputs/outputs.html", context)


@login_required
@require_POST
def export_create(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    try:
        job = services.export_create(exam=exam, kind=request.POST.get("kind", ""), params=request.POST.dict(),
                                     user=request.user)
    except PermissionError as error:
        raise PermissionDenied(str(error)) from error
    except services.ExportRefused as refused:
        messages.error(request, str(refused))
        return redirect("outputs", exam_id=exam.pk)
    messages.info(request, f"Making the file “{job.get_kind_display()}”: it appears under Files when ready.")
    return redirect(reverse("outputs", args=[exam.pk]) + f"#job-{job.pk}")


def _job_get(request: HttpRequest, exam_id: int, job_id: int) -> ExportJob:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    job = get_object_or_404(ExportJob.objects.select_related("created_by"), exam=exam, pk=job_id)
    if not services.export_kind_allowed(user=request.user, exam=exam, kind=job.kind):
        raise Http404("No such file.")
    return job


@login_required
@require_GET
def export_progress(request: HttpRequest, exam_id: int, job_id: int) -> HttpResponse:
    job = _job_get(request, exam_id, job_id)
    if not request.htmx:
        return redirect(reverse("outputs", args=[exam_id]) + f"#job-{job.pk}")
    response = render(request, "outputs/outputs.html#job-row", {"exam": job.exam, "job": job})
    if job.finished:
        response.status_code = HTMX_STOP_POLLING
        trigger_client_event(response, "exportFinished", {"job": job.pk, "status": job.status})
    return response


def _job_row(request: HttpRequest, job: ExportJob) -> HttpResponse:
    """The job's row for htmx, else the outputs page at the job."""
    if not request.htmx:
        return redirect(reverse("outputs", args=[job.exam_id]) + f"#job-{job.pk}")
    return render(request, "outputs/outputs.html#job-row", {"exam": job.exam, "job": job})


@login_required
@require_POST
def export_restart(request: HttpRequest, exam_id: int, job_id: int) -> HttpResponse:
    """"Make again": a stalled, failed or cancelled file is made from the start."""
    job = _job_get(request, exam_id, job_id)
    if job.status != ExportJob.Status.DONE and (job.finished or job.stalled):
        job = services.export_restart(job=job)
    return _job_row(request, job)


@login_required
@require_POST
def export_cancel(request: HttpRequest, exam_id: int, job_id: int) -> HttpResponse:
    job = services.export_cancel(job=_job_get(request, exam_id, job_id))
    return _job_row(request, job)


@login_required
@require_GET
def export_download(request: HttpRequest, exam_id: int, job_id: int) -> FileResponse:
    job = _job_get(request, exam_id, job_id)
    if job.status != ExportJob.Status.DONE or not job.file:
        raise Http404("That file is not ready.")
    return FileResponse(job.file.open("rb"), as_attachment=True, filename=job.filename)
