"""Upload size limits, enforced while a request's body is read rather than after it was spooled.

A view takes one file of at most ``MAX_UPLOAD_MB``, or, marked with ``upload_limit(many=True)``,
``DATA_UPLOAD_MAX_NUMBER_FILES`` such files at once. ``UploadLimitMiddleware`` refuses a multipart
upload whose Content-Length is beyond that (with room for the form's other fields) with a 413 before
any of its body is read; otherwise it reads the form itself, through ``UploadLimitHandler``, which
counts the bytes actually received: a file over the limit, or more than the view takes in all (a
body longer than it declared, which an ASGI server passes on), stops the upload at once with a 413,
and the partly written temporary file is deleted. The view never runs, so nothing is stored.

An upload without a Content-Length (sent chunked) is refused with a 411 before it is read: Django
reads none of such a body, so the view would only see an empty form. Browsers always send one.

Views exempt from CSRF checks (the reading API) are left alone: nothing reads their body before
they do, and they refuse an upload by its Content-Length, and a malformed form, in their own format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.http import url_has_allowed_host_and_scheme

from .inputs import whole_number_parse

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
# Room for the form's other fields and the multipart boundaries on top of its files.
FORM_OVERHEAD_BYTES = _MB

Refused = Callable[[HttpRequest, str, int], HttpResponse]  # (request, message, status)


class UploadTooLarge(MultiPartParserError):
    """An upload went beyond its limit; the message says which, in words for a teacher."""


def upload_limit(*, many: bool = False, refused: Refused | None = None) -> Callable:
    """Mark a view that takes ``many`` files at once (else one), and answers a refused upload with
    ``refused(request, message, status)`` in its own style (else a page with that status)."""
    def mark(view: Callable) -> Callable:
        view.upload_many = many
        view.upload_refused = refused
        return view
    return mark


def _file_limit() -> int:
    return settings.MAX_UPLOAD_MB * _MB


def _total_limit(view: Callable) -> int:
    files = settings.DATA_UPLOAD_MAX_NUMBER_FILES if getattr(view, "upload_many", False) else 1
    return max(1, files) * _file_limit()


def _too_much(view: Callable, size: int | None) -> str:
    """Why an upload of ``size`` bytes (``None``: not known) is more than ``view`` takes."""
    upload = "The upload is" if size is None else f"The upload is {filesizeformat(size)},"
    if not getattr(view, "upload_many", False):
        return f"{upload} over the {settings.MAX_UPLOAD_MB} MB limit for one file. Nothing was stored."
    return (
        f"{upload} more than the {filesizeformat(_total_limit(view))} markdesk accepts at once "
        f"({settings.MAX_UPLOAD_MB} MB a file). Upload the files in smaller groups. Nothing was stored."
    )


class UploadLimitHandler(FileUploadHandler):
    """Counts the file bytes the multipart parser receives, and stops the upload beyond the limits."""

    def __init__(self, request: HttpRequest, *, view: Callable) -> None:
        super().__init__(request)
        self.view = view
        self.received = 0
        self.file_received = 0

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.file_received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.file_received += len(raw_data)
        self.received += len(raw_data)
        if self.file_received > _file_limit():
            self._refuse(f"{self.file_name} is over the {settings.MAX_UPLOAD_MB} MB limit for one file. "
                         "Nothing was stored.")
        if self.received > _total_limit(self.view):
            self._refuse(_too_much(self.view, None))
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers store the file

    def _refuse(self, message: str) -> None:
        # The parser closes only the files it completed; the one being written goes now.
        for handler in self.request.upload_handlers:
            if handler is not self and hasattr(handler, "file"):
                handler.file.close()
        raise UploadTooLarge(message)


def _refusal(request: HttpRequest, view: Callable, message: str, *, status: int = 413) -> HttpResponse:
    refused = getattr(view, "upload_refused", None)
    if refused is not None and request.user.is_authenticated:
        return refused(request, message, status)
    if "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse({"error": message}, status=status)
    back = request.headers.get("Referer", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = ""
    return render(request, "upload_refused.html", {"message": message, "back": back}, status=status)


class UploadLimitMiddleware:
    """Refuses uploads beyond their limits before their body is read or while it is (module docstring).

    Listed before ``CsrfViewMiddleware``, whose check would otherwise read the whole body first.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable, args, kwargs) -> HttpResponse | None:
        if (request.method != "POST" or request.content_type != "multipart/form-data"
                or getattr(view, "csrf_exempt", False)):
            return None
        declared = whole_number_parse(request.META.get("CONTENT_LENGTH"))
        if declared is None:
            message = ("The upload did not say how large it is (no Content-Length: it was sent in chunks), so it "
                       "was not read. Upload the file from the page's form. Nothing was stored.")
            return _refusal(request, view, message, status=411)
        if declared > _total_limit(view) + FORM_OVERHEAD_BYTES:
            return _refusal(request, view, _too_much(view, declared))
        request.upload_handlers.insert(0, UploadLimitHandler(request, view=view))
        try:
            request.POST  # noqa: B018 -- reads the form now, counted, rather than in CSRF's check
        except UploadTooLarge as error:
            return _refusal(request, view, str(error))
        except UnreadablePostError:
            pass  # the client went away; the view or CSRF's check answers the empty form as they do
        return None


def upload_form_read(request: HttpRequest, form_class):
    """Bind an upload form: ``(form, None)``, or ``(form or None, message)`` when there is nothing to take.

    An interrupted or malformed upload becomes a message, not a crash. Uploads over their size limit
    never get here (``UploadLimitMiddleware``)."""
    try:
        form = form_class(request.POST, request.FILES)
        valid = form.is_valid()
    except Exception as error:  # MultiPartParserError, UnreadablePostError: the upload broke off
        logger.warning("Upload could not be read: %s", error)
        return None, "The upload was interrupted or damaged before it finished. Nothing was stored; please try again."
    if not valid:
        return form, "Choose a file to upload."
    return form, None
