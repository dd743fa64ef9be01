"""The template box editor, its JSON API, import/export, and per-script box adjustment.

Every JSON payload states its unit: ``"unit": "px@150dpi"`` with boxes as ``[x1, y1, x2, y2]``;
template boxes are in template-page pixels, script boxes in that script's scan-page pixels.
A change that places a box (new or moved) asks ``grader.reading`` to read it again, explicitly here.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from grader import selectors as grader_selectors
from grader.inputs import MalformedInput, json_parse, whole_number_parse
from grader.wording import counted
from grader.reading import services as reading_services

from . import selectors, services
from .models import AnswerBox, SuggestedBox

logger = logging.getLogger(__name__)

UNIT = "px@150dpi"
_FORMATS = {
    "annotations": ("annotations.json", "seed-001 annotations.json (pixels)"),
    "regions": ("regions-page-{page}.json", "region list of one page (pixels)"),
    "hgbench": ("hgbench.json", "HG-Bench boxes (0-1000, pages from 1)"),
}


def _json_body(request: HttpRequest) -> dict:
    try:
        body = json_parse(request.body or b"{}")
    except MalformedInput as error:
        raise services.BoxRejected([f"The request is {error}."]) from error
    if not isinstance(body, dict):
        raise services.BoxRejected(["The request must be a JSON object."])
    return body


def _box_number(body: dict, key: str) -> int | None:
    """The box that ``key`` (``id`` or ``parent``) names, None when it names none."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise services.BoxRejected([f"{key} must be a box number."])
    return value


def _bbox(value) -> list[float]:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value)):
        raise services.BoxRejected(["bbox must be [x1, y1, x2, y2] in pixels."])
    return value


def _problems(error: services.BoxRejected, status: int = 400) -> JsonResponse:
    if isinstance(error, services.BoxNeedsConfirmation):
        # The editor asks the teacher, then sends the same change again with the confirmation.
        return JsonResponse({"problems": error.problems, "confirm": True}, status=409)
    return JsonResponse({"problems": error.problems}, status=status)


@login_required
@require_GET
def box_editor(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    context = {
        "exam": exam,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "pages": exam.template_pages.all(),
        "state": selectors.editor_state(exam=exam),
        "formats": {key: label for key, (_, label) in _FORMATS.items()},
    }
    return render(request, "annotations/editor.html", context)


@login_required
@require_GET
def box_list(request: HttpRequest, exam_id: int) -> JsonResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    return JsonResponse(selectors.editor_state(exam=exam))


@login_required
@require_POST
def box_save(request: HttpRequest, exam_id: int) -> JsonResponse:
    """Create (no ``id``) or update a box: ``{"id"?, "page", "bbox", "label", "parent"?, "add_question"?}``;
    a label the answer key lacks answers 409 ``{"problems", "confirm": true}`` until ``add_question`` is true."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    try:
        body = _json_body(request)
        box_id = _box_number(body, "id")
        box = get_object_or_404(AnswerBox, exam=exam, pk=box_id) if box_id else None
        parent_id = _box_number(body, "parent") or (box.parent_id if box else None)
        parent = get_object_or_404(AnswerBox, exam=exam, pk=parent_id, parent=None) if parent_id else None
        page = body.get("page", box.page if box else 0)
        if not isinstance(page, int) or isinstance(page, bool):
            raise services.BoxRejected(["page must be a 0-based page number."])
        place_before = selectors.box_place(box) if box else None
        saved = services.box_save(
            exam=exam,
            page=page,
            bbox=_bbox(body.get("bbox")),
            label=str(body.get("label") or (box.label if box else "")),
            user=request.user,
            box=box,
            parent=parent,
            add_question=body.get("add_question") is True,
        )
    except services.BoxRejected as error:
        return _problems(error)
    if selectors.box_place(saved) != place_before:
        reading_services.box_read_enqueue(box=saved)
    return JsonResponse({"unit": UNIT, "box": selectors.box_as_dict(saved)})


@login_required
@require_POST
def box_delete(request: HttpRequest, exam_id: int, box_id: int) -> JsonResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    box = get_object_or_404(AnswerBox, exam=exam, pk=box_id)
    try:
        body = _json_body(request) if request.content_type == "application/json" else request.POST
        services.box_delete(box=box, confirm=bool(body.get("confirm")))
    except services.BoxNeedsConfirmation as error:
        return JsonResponse({"problems": error.problems, "confirm": True}, status=409)
    except services.BoxRejected as error:
        return _problems(error)
    return JsonResponse({"deleted": box_id})


@login_required
@require_POST
def boxes_import(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    fmt = request.POST.get("format", "")
    upload = request.FILES.get("file")
    editor = reverse("box_editor", args=[exam.pk])
    if fmt not in _FORMATS or upload is None:
        messages.error(request, "Choose a file and its format.")
        return redirect(editor)
    if upload.size > 5 * 1024 * 1024:
        messages.error(request, f"{upload.name} is too large for a box file (over 5 MB).")
        return redirect(editor)
    page = whole_number_parse(request.POST.get("page") or "1")
    if not page:
        messages.error(request, "Give the page as a number from 1.")
        return redirect(editor)
    try:
        result = services.boxes_import(exam=exam, fmt=fmt, data=upload.read(), user=request.user, page=page - 1)
    except services.BoxRejected as error:
        problems = error.problems
        logger.info("Refused box import for exam %s: %s", exam.pk, problems)
        for problem in problems[:20]:
            messages.error(request, f"{upload.name}: {problem}")
        messages.error(request, "Nothing was imported; the boxes are as they were.")
        return redirect(editor)
    for box in AnswerBox.objects.filter(pk__in=result["placed"]):
        reading_services.box_read_enqueue(box=box)
    messages.success(request, f"Imported {counted(result['imported'], 'box', 'boxes')} from {upload.name}; "
                              f"{result['removed']} removed.")
    return redirect(editor)


@login_required
@require_GET
def boxes_export(request: HttpRequest, exam_id: int, fmt: str) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    if fmt not in _FORMATS:
        return HttpResponse("Unknown format.", status=404)
    page = whole_number_parse(request.GET.get("page", "1"))
    if not page:
        return HttpResponseBadRequest("page must be a page number from 1.", content_type="text/plain")
    try:
        data = services.boxes_export(exam=exam, fmt=fmt, page=page - 1)
    except services.BoxRejected as error:
        return HttpResponse(" ".join(error.problems), status=409, content_type="text/plain")
    response = HttpResponse(data, content_type="application/json")
    filename = _FORMATS[fmt][0].format(page=page)
    response["Content-Disposition"] = f'attachment; filename="exam-{exam.pk}-{filename}"'
    return response


# ---------------------------------------------------------------- one script


@login_required
@require_GET
def script_boxes(request: HttpRequest, exam_id: int, number: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id)
    script = grader_selectors.script_get(exam=exam, number=number)
    context = {
        "exam": exam,
        "script": script,
        "can_change": grader_selectors.exam_can_change(user=request.user, exam=exam),
        "state": selectors.script_state(script=script),
    }
    return render(request, "annotations/script_boxes.html", context)


@login_required
@require_POST
def script_box_adjust(request: HttpRequest, exam_id: int, number: int, box_id: int) -> JsonResponse:
    """Move one script's box: ``{"bbox": [x1, y1, x2, y2]}`` in scan pixels, or ``{"reset": true}``."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    script = grader_selectors.script_get(exam=exam, number=number)
    box = get_object_or_404(AnswerBox, exam=exam, pk=box_id, parent=None)
    try:
        body = _json_body(request)
        if body.get("reset"):
            services.adjustment_reset(script=script, box=box)
        else:
            services.adjustment_save(script=script, box=box, bbox=_bbox(body.get("bbox")), user=request.user)
    except services.BoxRejected as error:
        return _problems(error)
    reading_services.script_box_read_enqueue(script=script, box=box)
    return JsonResponse(selectors.script_box_as_dict(script=script, box=box))


# ---------------------------------------------------------------- suggestions


@login_required
@require_POST
def suggestions_start(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    services.box_suggestions_enqueue(exam=exam)
    messages.info(request, "Looking for handwriting on the scripts; suggested boxes appear here in a moment.")
    return redirect("box_editor", exam_id=exam.pk)


@login_required
@require_POST
def suggestion_decide(request: HttpRequest, exam_id: int, suggestion_id: int) -> JsonResponse:
    """Accept (``{"accept": true, "label": "Q3", "bbox"?: [...]}``) or reject a suggested box; an accepted
    one answers with the box and the step boxes made with it."""
    exam = grader_selectors.exam_get_for_user(user=request.user, exam_id=exam_id, change=True)
    suggestion = get_object_or_404(SuggestedBox, exam=exam, pk=suggestion_id, status=SuggestedBox.Status.PENDING)
    try:
        body = _json_body(request)
        box = services.box_suggestion_decide(
            suggestion=suggestion,
            accept=bool(body.get("accept")),
            label=str(body.get("label") or ""),
            bbox=_bbox(body["bbox"]) if body.get("bbox") else None,
            user=request.user,
            add_question=body.get("add_question") is True,
        )
    except services.BoxRejected as error:
        return _problems(error)
    if box is not None:
        reading_services.box_read_enqueue(box=box)
    steps = box.steps.order_by("order") if box else []
    return JsonResponse({"unit": UNIT, "box": selectors.box_as_dict(box) if box else None,
                         "steps": [selectors.box_as_dict(step) for step in steps]})
