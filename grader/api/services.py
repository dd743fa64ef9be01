"""API tokens and the one-page reading service behind ``POST /api/v1/read``.

Tokens look like ``mdk_`` followed by 43 URL-safe characters. Only their SHA-256 (hex) is stored, with
the first :data:`PREFIX_LENGTH` characters in clear (``prefix``) to tell tokens apart and revoke one.

:func:`page_read` is the whole reading request: it checks the form (lang, engine, regions), sniffs the
file's content (never its name or content type), renders it at ``settings.PAGE_DPI`` with ``ml.pages``,
checks every box against the page and runs the engine in this process. Every refusal is an
:class:`ApiRequestRefused` carrying the HTTP status and a message for the caller.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from PIL import Image

from grader.inputs import MalformedInput, json_parse
from grader.models import User
from grader.reading import services as reading
from ml import pages as page_tools
from ml.recognition.base import Lang, Region, RegionKind
from ml.recognition.ocr import ink_crop

from .models import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "mdk_"
PREFIX_LENGTH = 12  # "mdk_" and 8 random characters
MAX_REGIONS = 200
LANGS: tuple[str, ...] = get_args(Lang)
KINDS: tuple[str, ...] = get_args(RegionKind)
# One reading at a time per process: the engines are shared, and on a small CPU two readings at once
# are slower than one after the other.
_read_lock = threading.Lock()


class ApiAuthFailed(Exception):
    """No usable token; the message says why (sent with status 401)."""


class ApiTokenError(ValueError):
    """A token command cannot be carried out; the message says why."""


class ApiRequestRefused(Exception):
    """A request the API does not carry out: ``status`` (400, 413, 500) and a message for the caller."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- tokens


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``: the stored record and the plain token, which is not kept anywhere."""
    name = " ".join(name.split())
    if not name:
        raise ApiTokenError("Give the token a name (what it is for).")
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ApiTokenError("The name is longer than 100 characters.")
    for _ in range(5):  # the prefix is unique: draw again on the rare clash
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                record = ApiToken.objects.create(
                    user=user, name=name, key_hash=_token_hash(token), prefix=token[:PREFIX_LENGTH]
                )
        except IntegrityError:
            continue
        logger.info("API token %s (%s) created for %s", record.prefix, record.name, user.username)
        return record, token
    raise ApiTokenError("Could not draw a unique token; try again.")


def api_token_revoke(*, prefix: str, user: User | None = None) -> ApiToken:
    """Revoke the token whose prefix starts with ``prefix`` (a whole token is accepted too)."""
    prefix = prefix.strip()[:PREFIX_LENGTH]
    if len(prefix) < len(TOKEN_PREFIX) + 4:
        raise ApiTokenError(f"Give at least the first {len(TOKEN_PREFIX) + 4} characters of the token.")
    tokens = ApiToken.objects.filter(prefix__startswith=prefix)
    if user is not None:
        tokens = tokens.filter(user=user)
    found = list(tokens[:2])
    if not found:
        raise ApiTokenError(f"There is no token starting with {prefix}.")
    if len(found) > 1:
        raise ApiTokenError(f"More than one token starts with {prefix}; give more characters.")
    token = found[0]
    if not token.revoked:
        token.revoked, token.revoked_at = True, timezone.now()
        token.save(update_fields=["revoked", "revoked_at"])
        logger.info("API token %s (%s) of %s revoked", token.prefix, token.name, token.user.username)
    return token


def api_tokens_revoke(*, tokens) -> int:
    """Revoke every token of a queryset (the admin action); returns how many were still active."""
    return tokens.filter(revoked=False).update(revoked=True, revoked_at=timezone.now())


def api_token_authenticate(*, header: str | None) -> ApiToken:
    """The active token named by an ``Authorization: Bearer <token>`` header; records its use."""
    if not header:
        raise ApiAuthFailed("Send the token in an 'Authorization: Bearer <token>' header.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiAuthFailed("Send the token in an 'Authorization: Bearer <token>' header.")
    record = ApiToken.objects.select_related("user").filter(key_hash=_token_hash(token)).first()
    if record is None:
        raise ApiAuthFailed("The token is not valid.")
    if record.revoked:
        raise ApiAuthFailed("The token has been revoked.")
    if not record.user.is_active:
        raise ApiAuthFailed("The token's user account is disabled.")
    now = timezone.now()
    ApiToken.objects.filter(pk=record.pk).update(last_used=now)
    record.last_used = now
    return record


# ---------------------------------------------------------------- reading one page


@dataclass(frozen=True)
class ReadRequest:
    lang: str
    engine: str
    regions: list[Region]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def regions_parse(raw: str | None) -> list[Region]:
    """The ``regions`` form field: a JSON list of ``{"index": int, "bbox": [x1, y1, x2, y2], "kind"?}``.

    Checks the form only; :func:`regions_check_page` checks the boxes against the page.
    """
    if raw is None or not raw.strip():
        raise ApiRequestRefused("The 'regions' field is missing: send a JSON list of {\"index\", \"bbox\"}.")
    try:
        decoded = json_parse(raw)
    except MalformedInput as error:
        raise ApiRequestRefused(f"'regions' is {error}.") from error
    if not isinstance(decoded, list):
        raise ApiRequestRefused("'regions' must be a JSON list of {\"index\", \"bbox\"} objects.")
    if not decoded:
        raise ApiRequestRefused("'regions' is empty: give at least one region.")
    if len(decoded) > MAX_REGIONS:
        raise ApiRequestRefused(f"Too many regions ({len(decoded)}): at most {MAX_REGIONS} per request.")
    regions: list[Region] = []
    seen: set[int] = set()
    for number, entry in enumerate(decoded):
        place = f"regions[{number}]"
        if not isinstance(entry, dict):
            raise ApiRequestRefused(f"{place} must be an object with 'index' and 'bbox'.")
        unknown = sorted(set(entry) - {"index", "bbox", "kind"})
        if unknown:
            raise ApiRequestRefused(f"{place} has unknown field(s): {', '.join(unknown)}.")
        index = entry.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ApiRequestRefused(f"{place}: 'index' must be a whole number.")
        if index in seen:
            raise ApiRequestRefused(f"{place}: index {index} is used twice.")
        seen.add(index)
        bbox = entry.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise ApiRequestRefused(f"{place} (index {index}): 'bbox' must be four numbers [x1, y1, x2, y2].")
        x1, y1, x2, y2 = (int(round(v)) for v in bbox)
        if x2 <= x1 or y2 <= y1:
            raise ApiRequestRefused(f"{place} (index {index}): 'bbox' needs x1 < x2 and y1 < y2, got {bbox}.")
        kind = entry.get("kind", "text")
        if kind not in KINDS:
            raise ApiRequestRefused(f"{place} (index {index}): 'kind' must be one of {', '.join(KINDS)}.")
        regions.append(Region(index=index, bbox=(x1, y1, x2, y2), kind=kind))
    return regions


def regions_check_page(*, regions: Sequence[Region], size: tuple[int, int]) -> None:
    width, height = size
    for number, region in enumerate(regions):
        x1, y1, x2, y2 = region.bbox
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise ApiRequestRefused(
                f"regions[{number}] (index {region.index}): bbox {list(region.bbox)} lies outside the page, "
                f"which is {width}x{height} pixels at {settings.PAGE_DPI} dpi."
            )


def read_request_parse(*, lang: str | None, engine: str | None, regions: str | None) -> ReadRequest:
    lang = (lang or "en").strip()
    if lang not in LANGS:
        raise ApiRequestRefused(f"Unknown lang {lang!r}: use one of {', '.join(LANGS)}.")
    engine = (engine or reading.OCR).strip()
    available = reading.engine_names()
    if engine == reading.VLM and engine not in available:
        raise ApiRequestRefused("The vlm engine is not configured on this server (VLM_MODEL_PATH is not set).")
    if engine not in available:
        raise ApiRequestRefused(f"Unknown engine {engine!r}: use one of {', '.join(available)}.")
    return ReadRequest(lang=lang, engine=engine, regions=regions_parse(regions))


def file_size_check(*, size: int | None) -> None:
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    if size is not None and size > limit:
        raise ApiRequestRefused(
            f"The file is {filesizeformat(size)}, over the {settings.MAX_UPLOAD_MB} MB limit.", status=413
        )


def page_load(*, file: UploadedFile) -> Image.Image:
    """The one page of an uploaded image or 1-page PDF, as an RGB image at ``settings.PAGE_DPI``.

    PDFs are rendered at that resolution; images are rescaled from the resolution they record, and
    taken as they are when they record none.
    """
    file_size_check(size=file.size)
    name = Path(file.name or "file").name[:100] or "file"
    handle = tempfile.NamedTemporaryFile(prefix="markdesk-api-", delete=False)
    path = Path(handle.name)
    try:
        with handle:
            for chunk in file.chunks():
                handle.write(chunk)
        file_size_check(size=path.stat().st_size)
        try:
            info = page_tools.document_inspect(
                path=path, name=name, max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI
            )
            if info.page_count != 1:
                raise ApiRequestRefused(f"{name} has {info.page_count} pages; send one page per request.")
            pages = page_tools.document_pages(
                path=path, kind=info.kind, max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI, name=name
            )
            try:
                image = next(iter(pages))
            finally:
                pages.close()
        except page_tools.DocumentError as error:
            raise ApiRequestRefused(str(error)) from error
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ApiRequestRefused(f"{name} is too large an image once rendered.") from error
        except OSError as error:
            raise ApiRequestRefused(f"{name} could not be read as an image ({error}).") from error
        if image.width * image.height > settings.MAX_IMAGE_PIXELS:
            raise ApiRequestRefused(f"{name} is too large an image once rendered at {settings.PAGE_DPI} dpi.")
        return image
    finally:
        path.unlink(missing_ok=True)


def _engine_read(*, name: str, image: Image.Image, regions: Sequence[Region], lang: str) -> dict[int, tuple]:
    """``index -> (text, confidence)``. Boxes without ink are answered "" by every engine (EasyOCR finds
    them itself; the others are not asked)."""
    found: dict[int, tuple] = {}
    to_read = list(regions)
    if name != reading.OCR:
        to_read = []
        for region in regions:
            if ink_crop(page=image, bbox=region.bbox) is None:
                found[region.index] = ("", 1.0)
            else:
                to_read.append(region)
    if to_read:
        with _read_lock:
            readings = reading.engine_get(name).read_page(page=image, regions=to_read, lang=lang)
        for result in readings:
            found[result.index] = (result.text, result.confidence)
    return found


def page_read(
    *, user: User, file: UploadedFile | None, regions: str | None, lang: str | None = None, engine: str | None = None
) -> list[dict]:
    """Read the regions of one page: ``[{"index", "text", "confidence"}]`` in the order the regions came.

    ``text`` is ``None`` when the engine did not read the region (for example EasyOCR with ``lang="ch"``),
    ``""`` when the region holds no writing. ``confidence`` is in [0, 1] or ``None``.
    """
    started = time.perf_counter()
    if file is None:
        raise ApiRequestRefused("The 'file' field is missing: send the page as an image or a one-page PDF.")
    file_size_check(size=file.size)
    request = read_request_parse(lang=lang, engine=engine, regions=regions)
    image = page_load(file=file)
    regions_check_page(regions=request.regions, size=image.size)
    try:
        found = _engine_read(name=request.engine, image=image, regions=request.regions, lang=request.lang)
    except Exception as error:
        logger.exception("API read for %s failed in engine %s", user.username, request.engine)
        raise ApiRequestRefused(f"The {request.engine} engine failed to read the page.", status=500) from error
    results = []
    for region in request.regions:
        text, confidence = found.get(region.index, (None, None))
        results.append(
            {"index": region.index, "text": text, "confidence": None if confidence is None else round(float(confidence), 4)}
        )
    logger.info(
        "API read by %s: %d regions (%d unread), engine %s, lang %s, %dx%d page, %d ms",
        user.username,
        len(results),
        sum(result["text"] is None for result in results),
        request.engine,
        request.lang,
        image.width,
        image.height,
        round((time.perf_counter() - started) * 1000),
    )
    return results
