"""HTTP API for other systems. Thin views: parse the request, call ``services``, answer JSON.

``POST /api/v1/read`` (multipart/form-data), authenticated by ``Authorization: Bearer <token>``
(tokens: ``manage.py api_token`` or the admin). CSRF does not apply: no cookie is used.

Form fields:

``file`` (required)
    One page: an image (PNG, JPEG, TIFF... the content decides, not the name) or a one-page PDF.
    At most ``MAX_UPLOAD_MB`` megabytes and ``MAX_IMAGE_PIXELS`` pixels. PDFs are rendered at 150 dpi
    (an A4 page is 1240x1754 pixels); images are rescaled to 150 dpi from the resolution they record,
    and used as they are when they record none.
``regions`` (required)
    A JSON list, at most 200 entries: ``[{"index": 1, "bbox": [x1, y1, x2, y2], "kind": "text"}]``.
    ``index`` is any whole number, unique in the list, echoed in the answer. ``bbox`` is in pixels of
    the page as rasterised at 150 dpi (as above), x2/y2 exclusive, and must lie on the page. ``kind``
    is optional: ``text`` (default), ``digits``, ``number`` or ``name``; it narrows the characters read.
    Sent as a form field (or as a file part holding the JSON). The JSON may nest at most 32 levels,
    and every number in it must be finite and at most 10^15 in size (``grader.inputs``).
``lang``
    ``en`` (default) or ``ch``. EasyOCR reads English only: with ``ch`` it returns ``null`` texts.
``engine``
    ``easyocr`` (default), or ``vlm`` where a vision-language model is configured (``VLM_MODEL_PATH``).

Answers: 200 with ``[{"index": 1, "text": "Na", "confidence": 0.93}]`` in the order of ``regions``
(``text`` ``""`` = no writing in the box, ``null`` = not read; ``confidence`` in [0, 1] or ``null``);
400 ``{"error": "..."}`` for a bad request; 401 for a missing, unknown or revoked token; 405 for any
method but POST; 413 for a file over the size limit; 500 when the engine fails. The engine runs in
the web process, so the request waits for the reading (about a second for a page of boxes on a CPU).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from grader.inputs import whole_number_parse

from . import services

logger = logging.getLogger(__name__)

# Room for the form's other fields and multipart boundaries on top of the file size limit.
_FORM_OVERHEAD_BYTES = 1024 * 1024


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
def read(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _error("Use POST with a multipart form (file, regions, lang, engine).", 405)
        response["Allow"] = "POST"
        return response
    try:
        token = services.api_token_authenticate(header=request.headers.get("Authorization"))
    except services.ApiAuthFailed as error:
        response = _error(str(error), 401)
        response["WWW-Authenticate"] = 'Bearer realm="markdesk"'
        return response
    length = whole_number_parse(request.META.get("CONTENT_LENGTH")) or 0
    if length > settings.MAX_UPLOAD_MB * 1024 * 1024 + _FORM_OVERHEAD_BYTES:
        return _refused(token, services.ApiRequestRefused(
            f"The request is over the {settings.MAX_UPLOAD_MB} MB limit for one file.", status=413))
    try:
        file = request.FILES.get("file")
        fields = request.POST
    except RequestDataTooBig:
        return _refused(token, services.ApiRequestRefused("The form fields are too large.", status=413))
    except (TooManyFilesSent, MultiPartParserError) as error:
        return _refused(token, services.ApiRequestRefused(f"The multipart form could not be read ({error})."))
    regions = fields.get("regions")
    if regions is None and "regions" in request.FILES:  # some clients send the JSON as a file part
        regions = request.FILES["regions"].read(_FORM_OVERHEAD_BYTES).decode("utf-8", errors="replace")
    try:
        results = services.page_read(
            user=token.user,
            file=file,
            regions=regions,
            lang=fields.get("lang"),
            engine=fields.get("engine"),
        )
    except services.ApiRequestRefused as error:
        return _refused(token, error)
    return JsonResponse(results, safe=False)


def _refused(token, error: services.ApiRequestRefused) -> JsonResponse:
    logger.info("API read by %s (token %s) refused with %d: %s", token.user.username, token.prefix, error.status, error)
    return _error(str(error), error.status)
