"""Turning uploaded documents (PDF or image files) into page rasters, and measuring pages.

Every page comes out as an RGB ``PIL.Image`` at ``dpi`` dots per inch (150 in the app; an A4 page is
then 1240x1754 pixels). Nothing here imports Django: the web app, the workers and the headless
``grade_folder`` command share it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pikepdf
import pypdfium2 as pdfium
from PIL import Image, ImageSequence, UnidentifiedImageError

DocumentKind = Literal["pdf", "image"]

# Long enough to find "%PDF-" after the junk some scanners write before it.
_SNIFF_BYTES = 1024


class DocumentError(ValueError):
    """A document that cannot be used; the message is written for the teacher."""


@dataclass(frozen=True)
class DocumentInfo:
    kind: DocumentKind
    page_count: int


@contextmanager
def _pillow_limit(max_pixels: int) -> Iterator[None]:
    """Make Pillow refuse images above ``max_pixels`` (a warning turned into an error)."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels // 2  # Pillow raises outright above twice this, warns above it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _content_kind(path: Path) -> DocumentKind | None:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"%PDF-" in head:
        return "pdf"
    try:
        with Image.open(path) as image:
            image.format  # noqa: B018 - opening is the test; the format is read lazily
        return "image"
    except (UnidentifiedImageError, OSError):
        return None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "image"


def _describe_content(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        return "it looks like a ZIP or Office file"
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML")):
        return "it looks like a web page"
    try:
        head.decode("utf-8")
        return "it looks like a text file"
    except UnicodeDecodeError:
        return "its content is not recognised"


def document_inspect(*, path: Path, name: str, max_pixels: int, dpi: int = 150) -> DocumentInfo:
    """Check that ``path`` is a usable PDF or image and count its pages, without rendering them.

    The content decides the kind, never the file name. Raises ``DocumentError`` for content that is
    neither, password-protected or damaged PDFs, documents without pages, and pages that would exceed
    ``max_pixels`` once rendered at ``dpi``.
    """
    kind = _content_kind(path)
    if kind is None:
        expected = "a PDF" if name.lower().endswith(".pdf") else "a PDF or an image"
        raise DocumentError(f"{name} is not {expected}: {_describe_content(path)}.")
    if kind == "pdf":
        return DocumentInfo(kind="pdf", page_count=_pdf_inspect(path=path, name=name, max_pixels=max_pixels, dpi=dpi))
    return DocumentInfo(kind="image", page_count=_image_inspect(path=path, name=name, max_pixels=max_pixels))


def _pdf_open(path: Path, name: str) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        # pdfium refuses a well-formed PDF whose page tree is empty, and its error code is global state
        # that may still hold an earlier failure (a password asked for by another file), so qpdf is asked
        # first whether the document is simply empty.
        if _pdf_page_count_qpdf(path) == 0:
            raise DocumentError(f"{name} has no pages.") from error
        if "password" in str(error).lower():
            raise DocumentError(f"{name} is password-protected. Save it without a password and upload it again.") from error
        raise DocumentError(f"{name} is damaged and cannot be read as a PDF.") from error


def _pdf_page_count_qpdf(path: Path) -> int | None:
    try:
        with pikepdf.open(path) as pdf:
            return len(pdf.pages)
    except (pikepdf.PdfError, pikepdf.PasswordError, OSError, ValueError):
        return None


def _pdf_inspect(*, path: Path, name: str, max_pixels: int, dpi: int) -> int:
    pdf = _pdf_open(path, name)
    try:
        count = len(pdf)
        if count == 0:
            raise DocumentError(f"{name} has no pages.")
        for index in range(count):
            width_pt, height_pt = pdf.get_page_size(index)
            pixels = (width_pt / 72 * dpi) * (height_pt / 72 * dpi)
            if pixels > max_pixels:
                raise DocumentError(
                    f"{name}: page {index + 1} is too large to render "
                    f"({width_pt / 72:.0f}x{height_pt / 72:.0f} inches)."
                )
        return count
    finally:
        pdf.close()


def _image_inspect(*, path: Path, name: str, max_pixels: int) -> int:
    try:
        with _pillow_limit(max_pixels), Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            image.verify()
            return count
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DocumentError(
            f"{name} is too large an image (more than {max_pixels / 1e6:.0f} megapixels); "
            "scan at 150-300 dpi and upload again."
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise DocumentError(f"{name} is a damaged image ({error}).") from error


def document_pages(
    *,
    path: Path,
    kind: DocumentKind,
    max_pixels: int,
    dpi: int = 150,
    fallback_width: int | None = None,
    name: str | None = None,
) -> Iterator[Image.Image]:
    """Yield every page of the document as an RGB image at ``dpi``; ``name`` is the file's name in messages.

    PDF pages are rendered at ``dpi``. Images are rescaled from the resolution they record; an image
    that records none is scaled to ``fallback_width`` pixels wide (the template page's width) when given.
    """
    if kind == "pdf":
        pdf = _pdf_open(path, name or path.name)
        try:
            for index in range(len(pdf)):
                page = pdf[index]
                try:
                    image = page.render(scale=dpi / 72).to_pil().convert("RGB")
                finally:
                    page.close()
                # pdfium rounds the raster size up; an A4 page must come out exactly 1240x1754 at 150 dpi.
                width_pt, height_pt = pdf.get_page_size(index)
                yield image.crop((0, 0, round(width_pt / 72 * dpi), round(height_pt / 72 * dpi)))
        finally:
            pdf.close()
        return
    with _pillow_limit(max_pixels), Image.open(path) as image:
        recorded = image.info.get("dpi")
        for frame in ImageSequence.Iterator(image):
            page = frame.convert("RGB")
            if recorded and recorded[0] > 1:
                scale = dpi / float(recorded[0])
            elif fallback_width:
                scale = fallback_width / page.width
            else:
                scale = 1.0
            if abs(scale - 1.0) > 0.01:
                page = page.resize((round(page.width * scale), round(page.height * scale)), Image.Resampling.LANCZOS)
            yield page


def ink_fraction(image: Image.Image, *, margin: float = 0.04) -> float:
    """Fraction (0-1) of dark pixels on the page, ignoring a ``margin`` (fraction of each side).

    The page is averaged over 2x2 pixel cells first, so single noise pixels and faint bleed-through
    from the other side of the paper do not count, while thin printed lines still do. The margin
    skips the dark edges a scanner lid leaves.
    """
    pixels = np.asarray(image.convert("L").reduce(2), dtype=np.uint8)
    height, width = pixels.shape
    dy, dx = int(height * margin), int(width * margin)
    inner = pixels[dy : height - dy, dx : width - dx]
    return float((inner < 140).mean()) if inner.size else 0.0


# Features are found on a half-size page: fast, and still sharp enough to place a page within a pixel.
_FEATURE_SCALE = 0.5


@dataclass(frozen=True)
class PageFeatures:
    """ORB keypoints of a page at half resolution, for ``page_match``. Points are in half-scale pixels."""

    points: np.ndarray  # float32, shape (n, 2)
    descriptors: np.ndarray | None  # uint8, shape (n, 32)


def page_features(image: Image.Image, *, count: int = 1500) -> PageFeatures:
    gray = np.asarray(image.convert("L"))
    small = cv2.resize(gray, None, fx=_FEATURE_SCALE, fy=_FEATURE_SCALE, interpolation=cv2.INTER_AREA)
    keypoints, descriptors = cv2.ORB_create(nfeatures=count).detectAndCompute(small, None)
    return PageFeatures(points=np.float32([point.pt for point in keypoints]).reshape(-1, 2), descriptors=descriptors)


@dataclass(frozen=True)
class FeatureFit:
    """The similarity transform most matched features of two pages agree on.

    ``matrix`` is a 2x3 affine (float64) mapping full-resolution pixels of the first page to full-resolution
    pixels of the second, or None when no transform was found; ``inliers`` counts the features that agree.
    """

    matrix: np.ndarray | None
    inliers: int


def features_fit(*, source: PageFeatures, target: PageFeatures, threshold: float = 6.0) -> FeatureFit:
    """RANSAC fit of a similarity transform (shift, rotation, uniform scale) from ``source`` to ``target``.

    ``threshold`` is the largest distance, in full-resolution pixels of the second page, at which a matched
    feature still agrees.
    """
    if source.descriptors is None or target.descriptors is None:
        return FeatureFit(matrix=None, inliers=0)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(source.descriptors, target.descriptors)
    if len(matches) < 6:
        return FeatureFit(matrix=None, inliers=0)
    start = source.points[[match.queryIdx for match in matches]]
    end = target.points[[match.trainIdx for match in matches]]
    matrix, inliers = cv2.estimateAffinePartial2D(
        start, end, method=cv2.RANSAC, ransacReprojThreshold=threshold * _FEATURE_SCALE
    )
    if matrix is None or inliers is None:
        return FeatureFit(matrix=None, inliers=0)
    # Half-scale pixel centre x lies at full-scale (x + 0.5) / scale - 0.5; conjugating by that map keeps the
    # linear part and rescales the shift.
    offset = 0.5 / _FEATURE_SCALE - 0.5
    matrix[:, 2] = matrix[:, 2] / _FEATURE_SCALE + offset - matrix[:, :2] @ np.full(2, offset)
    return FeatureFit(matrix=matrix, inliers=int(inliers.sum()))


def page_match(a: PageFeatures, b: PageFeatures) -> int:
    """How many features of two pages agree on one rigid placement (RANSAC inliers of a similarity transform).

    Scans of the same printed page typically share 30 to several hundred; different layouts share
    fewer than 15, because the features they have in common do not line up under one transform.
    """
    return features_fit(source=a, target=b).inliers


def ink_beyond_print(
    *, scan_crop: Image.Image, template_crop: Image.Image, tolerance_px: int = 3, min_area: int = 20
) -> bool:
    """Whether a scanned box holds writing that the blank template does not print there.

    Both crops show the same box in the template's frame (the scan rectified by its alignment),
    pixels at 150 dpi. Printed strokes are widened by ``tolerance_px`` so the remaining
    misalignment of a pixel or two does not count as ink; blobs smaller than ``min_area`` pixels are
    specks, not writing.
    """
    scan = np.asarray(scan_crop.convert("L")) < 140
    printed = np.asarray(template_crop.convert("L")) < 170
    size = 2 * tolerance_px + 1
    printed = cv2.dilate(printed.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    extra = (scan & ~printed).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(extra, connectivity=8)
    return any(stats[label, cv2.CC_STAT_AREA] >= min_area for label in range(1, count))
