"""Uploaded documents (the blank exam, scans): size check, a private hashed copy, inspection, page encoding.

Shared by the template upload (``grader.services``) and scan intake (``grader.scans``), which both
take a PDF or image from a teacher and store its pages rasterised at ``settings.PAGE_DPI``.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from PIL import Image

from ml import pages as page_tools

_THUMB_WIDTH = 320
# Scan pages are stored as high-quality JPEG: PNG of a noisy scan is ten times larger for no gain in reading.
_SCAN_JPEG_QUALITY = 92


class UploadRejected(ValueError):
    """An uploaded file was refused; the message is written for the teacher. Nothing was stored."""


@dataclass
class StoredUpload:
    path: Path
    sha256: str
    info: page_tools.DocumentInfo


def file_size_check(*, file: UploadedFile) -> None:
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    if file.size is not None and file.size > limit:
        raise UploadRejected(
            f"{file.name} is {filesizeformat(file.size)}, over the {settings.MAX_UPLOAD_MB} MB limit for one file."
        )


def _upload_spool(*, file: UploadedFile) -> tuple[Path, str]:
    """Copy an upload to a private temporary file, hashing it on the way."""
    file_size_check(file=file)
    digest = hashlib.sha256()
    handle = tempfile.NamedTemporaryFile(prefix="markdesk-upload-", delete=False)
    with handle:
        for chunk in file.chunks():
            digest.update(chunk)
            handle.write(chunk)
    return Path(handle.name), digest.hexdigest()


def upload_inspect(*, file: UploadedFile) -> StoredUpload:
    """A private copy of ``file`` with its hash and what it holds; the caller deletes ``path``.

    Raises ``UploadRejected`` for a file that is too large or not a readable PDF or image.
    """
    path, sha256 = _upload_spool(file=file)
    try:
        info = page_tools.document_inspect(
            path=path, name=file.name, max_pixels=settings.MAX_IMAGE_PIXELS, dpi=settings.PAGE_DPI
        )
    except page_tools.DocumentError as error:
        path.unlink(missing_ok=True)
        raise UploadRejected(str(error)) from error
    return StoredUpload(path=path, sha256=sha256, info=info)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_SCAN_JPEG_QUALITY, dpi=(settings.PAGE_DPI, settings.PAGE_DPI))
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(settings.PAGE_DPI, settings.PAGE_DPI))
    return buffer.getvalue()


def thumbnail_jpeg(handle: IO[bytes]) -> bytes:
    """A small greyscale JPEG of a page image, for lists of pages."""
    with Image.open(handle) as image:
        image = image.convert("L")
        image.thumbnail((_THUMB_WIDTH, _THUMB_WIDTH * 2))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
