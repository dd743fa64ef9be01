"""Views for scan intake: upload scans, watch their progress, see and rearrange pages and scripts."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from grader import selectors
from grader.documents import thumbnail_jpeg
from grader.forms import PageMoveForm, ScanUploadForm
from grader.models import ScanUpload
from grader.uploads import upload_form_read, upload_limit
from grader.wording import counted

from . import services

logger = logging.getLogger(__name__)


@upload_limit(many=True)
@login_required
@require_POST
def scans_upload(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    form, problem = upload_form_read(request, ScanUploadForm)
    if problem:
        messages.error(request, problem)
        return redirect(exam)
    intake = services.scan_files_accept(exam=exam, files=form.cleaned_data["files"], user=request.user)
    for upload in intake.accepted:
        services.scan_upload_enqueue(upload=upload)
        messages.success(request, f"{upload.original_name}: {counted(upload.pages_total, 'page')} queued for processing.")
    for text in intake.duplicates:
        messages.warning(request, text)
    for text in intake.rejected:
        messages.error(request, text)
    # The top of the page: the messages, and "What's next" focused (it links to the progress meanwhile).
    return redirect(exam)


@login_required
@require_GET
def upload_progress(request: HttpRequest, exam_id: int, upload_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    upload = get_object_or_404(ScanUpload, exam=exam, pk=upload_id)
    context = {"exam": exam, "upload": upload, "can_change": selectors.exam_can_change(user=request.user, exam=exam)}
    response = render(request, "scans/_upload_row.html", context)
    if upload.finished:
        response.status_code = HTMX_STOP_POLLING
        trigger_client_event(response, "uploadFinished", {"upload": upload.pk, "status": upload.status})
    return response


@login_required
@require_POST
def upload_restart(request: HttpRequest, exam_id: int, upload_id: int) -> HttpResponse:
    """"Process again": a stalled or failed upload is processed from its file."""
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    upload = services.scan_upload_restart(upload=get_object_or_404(ScanUpload, exam=exam, pk=upload_id))
    if not request.htmx:
        return redirect(f"{exam.get_absolute_url()}#upload-{upload.pk}")
    return render(request, "scans/_upload_row.html", {"exam": exam, "upload": upload, "can_change": True})


@login_required
@require_POST
def upload_cancel(request: HttpRequest, exam_id: int, upload_id: int) -> HttpResponse:
    """"Cancel": a stalled or failed upload goes, with the pages and scripts it made."""
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    upload = get_object_or_404(ScanUpload, exam=exam, pk=upload_id)
    try:
        services.scan_upload_cancel(upload=upload)
    except services.UploadCancelRefused as refused:
        if request.htmx:
            upload.notes = [str(refused)]
            response = render(request, "scans/_upload_row.html", {"exam": exam, "upload": upload, "can_change": True},
                              status=409)
            trigger_client_event(response, "uploadRefused", {"message": str(refused)})
            return response
        messages.error(request, str(refused))
        return redirect(f"{exam.get_absolute_url()}#upload-{upload.pk}")
    notice = f"Cancelled {upload.original_name}: its pages and the scripts made only from them are gone."
    if request.htmx:
        response = HttpResponse("")
        trigger_client_event(response, "uploadCancelled", {"message": notice})
        return response
    messages.success(request, notice)
    return redirect(exam)


def image_response(field, *, thumb: bool) -> HttpResponse:
    """A stored page image (scan or template), or a small greyscale thumbnail of it."""
    if not thumb:
        response = FileResponse(field.open("rb"), content_type="image/jpeg" if field.name.endswith(".jpg") else "image/png")
    else:
        with field.open("rb") as handle:
            response = HttpResponse(thumbnail_jpeg(handle), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def page_image(request: HttpRequest, exam_id: int, page_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    page = selectors.page_get(exam=exam, page_id=page_id)
    return image_response(page.image, thumb="thumb" in request.GET)


# ---------------------------------------------------------------- scripts and pages


@login_required
def script_detail(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    script = selectors.script_get(exam=exam, number=number)
    context = {
        "exam": exam,
        "script": script,
        "pages": selectors.page_list_for_script(script=script),
        "can_change": selectors.exam_can_change(user=request.user, exam=exam),
        "script_numbers": list(exam.scripts.values_list("number", flat=True)),
        "previous": exam.scripts.filter(number__lt=number).order_by("-number").first(),
        "next": exam.scripts.filter(number__gt=number).order_by("number").first(),
    }
    return render(request, "scans/script_detail.html", context)


@login_required
@require_POST
def script_new(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    script = services.script_create(exam=exam)
    messages.success(request, f"Created empty script {script.number}: move pages into it from the tray.")
    return redirect(script)


@login_required
@require_POST
def script_delete(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    script = selectors.script_get(exam=exam, number=number)
    if services.script_delete_if_empty(script=script):
        messages.success(request, f"Deleted empty script {number}.")
        return redirect(exam)
    messages.error(request, f"Script {number} still has pages; move or remove them first.")
    return redirect(script)


@login_required
@require_POST
def page_action(request: HttpRequest, exam_id: int, page_id: int, action: str) -> HttpResponse:
    """Reorder, move, remove or restore one page. Answers with a redirect back to where it was used."""
    exam = selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    page = selectors.page_get(exam=exam, page_id=page_id)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("exam_detail", args=[exam.pk])
    if action in ("up", "down") and page.script is not None:
        step = -1 if action == "up" else 1
        services.page_move(page=page, script=page.script, position=max(0, page.position + step))
    elif action == "move":
        form = PageMoveForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give a script number and, optionally, a page position (1 or more).")
            return redirect(back)
        number, position = form.cleaned_data["script"], form.cleaned_data["position"]
        target = selectors.script_get(exam=exam, number=number) if number else None
        services.page_move(page=page, script=target, position=position - 1 if position else None)
        where = f"script {number}" if target else "the unassigned tray"
        messages.success(request, f"Moved {page.label} to {where}.")
    elif action == "remove":
        services.page_discard(page=page, reason="Removed by a teacher")
        messages.success(request, f"Removed {page.label}; it is listed under removed pages and can be restored.")
    elif action == "restore":
        services.page_move(page=page, script=None)
        messages.success(request, f"Restored {page.label} to the unassigned tray.")
    else:
        return HttpResponseBadRequest("Unknown page action.")
    return redirect(back)
