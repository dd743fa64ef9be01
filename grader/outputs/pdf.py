"""Printable PDFs, rendered from HTML with WeasyPrint: a student's scored script and the Good / Average /
Weak sample report for department heads.

A scored script is a summary page (scores per question, total, the teacher's comment) followed by every
page of the student's script as a full A4 image, each answer box outlined in red with its score written
beside it, as a teacher's pen would. Both documents render one script through the same template partial,
``outputs/pdf/_script.html``.

Geometry: scan pages are 150 dpi JPEGs; answer crops are ``[x1, y1, x2, y2]`` in that page's pixels.
A page image is fitted within A4 (210 x 297 mm), centred, so one scale (mm per pixel) places both
the image and its overlays. Page images are linked by ``file://`` URL: the JPEG goes into the PDF as
is, never decoded and re-encoded.

Every render goes through ``ExamFileFetcher``: WeasyPrint reads only the stored files of the exam being
rendered and the app's static files, so nothing in a document (an SVG posing as a page image, a link
in a template) can pull another exam's pages or any network address into a PDF.
"""

from __future__ import annotations

import logging
import math
import mimetypes
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import cv2
import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.template.loader import render_to_string
from django.utils import timezone
from PIL import Image
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from grader.models import Exam, ScanPage
from grader.outputs.selectors import ScriptResult, script_results
from grader.rubrics import selectors as rubric_selectors
from ml.score_stats import BANDS, BandsRefused, histogram, sample_bands, summary
from ml.scoring import figure_text, marks_text

__all__ = ["BandsRefused", "ExamFileFetcher", "html_pdf", "script_pdf", "sample_report_pdf", "scripts_html"]

logger = logging.getLogger(__name__)

A4_MM = (210.0, 297.0)
# Printers leave about 4 mm at each edge unprinted: score labels keep clear of it.
SAFE_MM = 6.0
# Score labels: 18 pt Humor Sans (print.css); a character is at most ~0.62 em wide ("." and "/" are narrower).
LABEL_FONT_MM = 18 * 25.4 / 72
LABEL_HEIGHT_MM = LABEL_FONT_MM * 1.3
LABEL_GAP_MM = 2.0
HISTOGRAM_BINS = 10


@dataclass(frozen=True)
class _Box:
    """An answer box and its score label on a printed page, in mm from the page's top-left corner."""

    left: float
    top: float
    width: float
    height: float
    text: str
    label_left: float
    label_top: float


@dataclass(frozen=True)
class _Page:
    """A scan page fitted within A4: the image's offset and size in mm, and its answer boxes."""

    url: str
    left: float
    top: float
    width: float
    height: float
    boxes: list[_Box]


# A label's place counts as clear of print and handwriting when at most this share of the scan under it
# is ink (a pixel darker than INK_LEVEL of 255, not on a ruled line): paper grain and JPEG noise stay
# below it, a printed "[2]" or a stroke of handwriting does not.
INK_LEVEL = 140
CLEAR_INK = 0.002
# ...and that much around it: a label does not touch the tip of a bracket or a descender either.
CLEAR_MM = 1.0
# Straight dark runs at least this long (mm) are ruled lines and box borders: a label may sit on them.
RULE_MM = 12.0
# Places along a row of candidates are tried this far apart (mm).
LABEL_STEP_MM = 3.0


class _Ink:
    """Where a scan page has print or handwriting, asked of rectangles in mm on the A4 sheet: a
    summed-area table of its dark pixels less ruled lines, so each question costs four lookups."""

    def __init__(self, page: ScanPage, *, scale: float, offset_x: float, offset_y: float):
        with Image.open(page.image.path) as image:
            grey = np.asarray(image.convert("L"))
        dark = (grey < INK_LEVEL).astype(np.uint8)
        run = max(3, round(RULE_MM / scale))
        # A rule tilted by a degree steps a pixel every ~60 px: thickened across first, it stays one run.
        rules = (cv2.morphologyEx(cv2.dilate(dark, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
                 | cv2.morphologyEx(cv2.dilate(dark, np.ones((1, 3), np.uint8)), cv2.MORPH_OPEN, np.ones((run, 1), np.uint8)))
        # Solid print (a shaded block, a logo) is not a rule: runs that are thick as well as long stay ink.
        solid = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
        ink = dark & (1 - (cv2.dilate(rules, np.ones((3, 3), np.uint8)) & (1 - solid)))
        self.sums = cv2.integral(ink)  # (h + 1) x (w + 1), a zero first row and column
        self.scale, self.offset_x, self.offset_y = scale, offset_x, offset_y

    def share(self, left: float, top: float, right: float, bottom: float) -> float:
        """The share of the rectangle's scan pixels that are ink (0 where it lies off the image)."""
        rows, cols = self.sums.shape[0] - 1, self.sums.shape[1] - 1
        x1, x2 = (int(np.clip(round((v - self.offset_x) / self.scale), 0, cols)) for v in (left, right))
        y1, y2 = (int(np.clip(round((v - self.offset_y) / self.scale), 0, rows)) for v in (top, bottom))
        area = (x2 - x1) * (y2 - y1)
        if area <= 0:
            return 0.0
        s = self.sums
        return float(s[y2, x2] - s[y1, x2] - s[y2, x1] + s[y1, x1]) / area


def _label_width(text: str) -> float:
    """A score label's width in mm: its characters and 1 mm padding each side (print.css)."""
    return len(text) * LABEL_FONT_MM * 0.62 + 2


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_candidates(*, box: tuple[float, float, float, float], width: float) -> Iterable[tuple[float, float]]:
    """Top-left corners (mm) a score label of ``width`` may take for ``box`` (left, top, right, bottom),
    best first: beside the box (right, then left), above it, below it, then inside it, along each row
    from the box's right end leftwards; a teacher's pen writes the score beside the answer, never on it."""
    left, top, right, bottom = box
    height, gap, inset = LABEL_HEIGHT_MM, LABEL_GAP_MM, 1.5  # inside, clear of the printed border
    yield right + gap, top
    yield left - gap - width, top
    rows = ((top - gap - height, left, right), (bottom + gap, left, right),
            (top + inset, left + inset, right - inset), (bottom - inset - height, left + inset, right - inset))
    for label_top, row_left, row_right in rows:
        x = row_right - width
        while x >= row_left - 1e-6:
            yield x, label_top
            x -= LABEL_STEP_MM


def _label_place(*, box: tuple[float, float, float, float], text: str, ink: _Ink | None,
                 taken: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    """Where the score label ``text`` of ``box`` (left, top, right, bottom in mm) goes (its left and top
    in mm): the first candidate place on the printable paper that covers no other box or label in
    ``taken`` and no ink of the scan (``ink``), so it hides neither print (a printed "[2]") nor
    handwriting. With no such place, the one with the least ink under it."""
    width = _label_width(text)
    fallback: tuple[float, tuple[float, float]] | None = None
    for label_left, label_top in _label_candidates(box=box, width=width):
        rect = (label_left, label_top, label_left + width, label_top + LABEL_HEIGHT_MM)
        on_paper = (rect[0] >= SAFE_MM and rect[1] >= SAFE_MM
                    and rect[2] <= A4_MM[0] - SAFE_MM and rect[3] <= A4_MM[1] - SAFE_MM)
        if not on_paper or any(_overlaps(rect, other) for other in taken):
            continue
        share = ink.share(rect[0] - CLEAR_MM, rect[1] - CLEAR_MM, rect[2] + CLEAR_MM, rect[3] + CLEAR_MM) if ink else 0.0
        if share <= CLEAR_INK:
            return label_left, label_top
        if fallback is None or share < fallback[0]:
            fallback = (share, (label_left, label_top))
    if fallback:
        return fallback[1]
    left, top, right, _ = box  # a box filling the sheet: its top-right corner, inside it
    return max(SAFE_MM, min(right, A4_MM[0] - SAFE_MM) - width - 1), max(SAFE_MM, top + 1)


def _page_layout(page: ScanPage, boxes: Iterable[tuple[list[float], str]]) -> _Page:
    """``page`` fitted within A4 with ``boxes`` (crop in the page's px, score text) placed on it, each
    score where ``_label_place`` finds the paper clear."""
    width_px = page.width or page.image.width
    height_px = page.height or page.image.height
    scale = min(A4_MM[0] / width_px, A4_MM[1] / height_px)
    offset_x = (A4_MM[0] - width_px * scale) / 2
    offset_y = (A4_MM[1] - height_px * scale) / 2
    boxes = [
        ((offset_x + x1 * scale, offset_y + y1 * scale, offset_x + x2 * scale, offset_y + y2 * scale), text)
        for (x1, y1, x2, y2), text in boxes
    ]
    ink = None
    if boxes:
        try:
            ink = _Ink(page, scale=scale, offset_x=offset_x, offset_y=offset_y)
        except (OSError, ValueError, Image.DecompressionBombError):
            # A page image Pillow cannot read (WeasyPrint decides what to show of it): labels go by
            # the geometry alone.
            logger.warning("PDF rendering: page %s is not a readable image; score labels placed without it", page.pk)
    placed = []
    for index, (box, text) in enumerate(boxes):
        # Other boxes and the labels placed so far are kept clear; the box's own inside is not.
        taken = [other for at, (other, _) in enumerate(boxes) if at != index]
        taken += [(b.label_left, b.label_top, b.label_left + _label_width(b.text), b.label_top + LABEL_HEIGHT_MM)
                  for b in placed]
        label_left, label_top = _label_place(box=box, text=text, ink=ink, taken=taken)
        left, top, right, bottom = box
        placed.append(_Box(left=left, top=top, width=right - left, height=bottom - top, text=text,
                           label_left=label_left, label_top=label_top))
    return _Page(url=Path(page.image.path).as_uri(), left=offset_x, top=offset_y,
                 width=width_px * scale, height=height_px * scale, boxes=placed)


def _pages_by_script(results: Iterable[ScriptResult]) -> dict[int, list[ScanPage]]:
    """The kept pages of each script, in script order: what the student handed in."""
    pages: dict[int, list[ScanPage]] = defaultdict(list)
    script_ids = [result.script.pk for result in results]
    for page in ScanPage.objects.filter(script_id__in=script_ids, discarded=False).order_by("script_id", "position"):
        pages[page.script_id].append(page)
    return pages


def _script_context(result: ScriptResult, pages: list[ScanPage]) -> dict:
    """What ``outputs/pdf/_script.html`` shows of one script: summary rows and laid-out pages."""
    rows = []
    boxes: dict[int, list[tuple[list[float], str]]] = defaultdict(list)
    # Rubric questions also show their dimension scores and the written feedback.
    rubric = rubric_selectors.answers_rubric_results(answer_ids=[row.answer.pk for row in result.rows if row.answer])
    for row in result.rows:
        score = "—" if row.score is None else marks_text(row.score)
        found = rubric.get(row.answer.pk) if row.answer else None
        rows.append({"label": row.question.label, "score": score, "max": marks_text(row.max_score), "blank": row.blank,
                     "rubric": found})
        label = f"{score}/{marks_text(row.max_score)}"
        if found:  # beside the box too, the dimensions' points in the rubric's order: "7.5/10 (3+2.5+2)"
            label += " (" + "+".join("–" if d.points is None else marks_text(d.points) for d in found.dimensions) + ")"
        if row.answer and row.answer.page_id and row.answer.crop:
            boxes[row.answer.page_id].append((row.answer.crop, label))
    return {
        "result": result,
        "student": result.student,
        "rows": rows,
        "total": marks_text(result.total),
        "max_total": marks_text(result.max_total),
        "percent": figure_text(result.percent, 1),
        "comment": result.script.comment.strip(),
        "pages": [_page_layout(page, boxes.get(page.pk, ())) for page in pages],
    }


class ExamFileFetcher(URLFetcher):
    """WeasyPrint's only way to read a resource while rendering a document of ``exam``: ``file://``
    URLs of that exam's stored files (``exams/<pk>/`` in storage) or of the app's static files.

    Any other scheme, host or path (another exam's pages, ``/etc``, ``http://127.0.0.1``) is refused
    and left out of the PDF: WeasyPrint renders an "image" that Pillow cannot open as SVG and follows
    its links, so a crafted page image would otherwise copy other files into the PDF (or make the
    server send requests for it).
    """

    def __init__(self, *, exam: Exam) -> None:
        super().__init__()
        roots = (default_storage.path(f"exams/{exam.pk}"), settings.STATIC_ROOT, *settings.STATICFILES_DIRS)
        self.roots = tuple(Path(root).resolve() for root in roots)

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        # resolve() follows links and "..", so a path is judged by where it really leads.
        path = Path(url2pathname(parts.path)).resolve() if parts.scheme.lower() == "file" else None
        if (path is None or parts.netloc not in ("", "localhost")
                or not any(path.is_relative_to(root) for root in self.roots) or not path.is_file()):
            logger.warning("PDF rendering: refused to fetch %.200s", url)
            raise ValueError(f"markdesk does not fetch {url[:200]} into a PDF")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(path.as_uri(), body=path.open("rb"), headers={"Content-Type": content_type})


def html_pdf(*, html: str, exam: Exam) -> bytes:
    """Print ``html``, a document of ``exam``, as PDF bytes; it may use only the files ``ExamFileFetcher``
    serves. No base_url is needed: page images are absolute file:// URLs and the stylesheet is inlined."""
    return HTML(string=html, url_fetcher=ExamFileFetcher(exam=exam)).write_pdf()


def scripts_html(*, exam: Exam, results: list[ScriptResult]) -> str:
    """A printable HTML document of scored scripts (summary page and scored scan pages each), in the
    given order; ``script_pdf`` prints it."""
    pages = _pages_by_script(results)
    scripts = [_script_context(result, pages[result.script.pk]) for result in results]
    return render_to_string("outputs/pdf/scripts.html", {"exam": exam, "scripts": scripts})


def script_pdf(*, result: ScriptResult) -> bytes:
    """One student's scored script as A4 PDF bytes: a summary page, then each scan page with its scores
    in red. ``result`` comes from ``grader.outputs.selectors.script_results``."""
    exam = result.script.exam
    return html_pdf(html=scripts_html(exam=exam, results=[result]), exam=exam)


def _histogram_bins(max_total: float) -> tuple[int, float]:
    """``(bins, top of the axis)`` for totals out of ``max_total``: whole-mark bins when the maximum is
    whole (one per mark up to 15 marks, then 2, 3… marks wide), a teacher reading "7" as "7 to 8
    marks"; otherwise ``HISTOGRAM_BINS`` equal bins."""
    if max_total != int(max_total):
        return HISTOGRAM_BINS, max_total
    width = max(1, math.ceil(max_total / 15))
    bins = math.ceil(max_total / width)
    return bins, float(bins * width)


def _histogram_svg(totals: list[float], *, max_total: float, pass_mark: float | None) -> dict | None:
    """Bars, axis ticks and labels of a histogram of ``totals`` (marks) over 0..``max_total``, in the
    SVG's user units (1 unit = 1 px at 96 dpi), for ``outputs/pdf/_histogram.svg``."""
    if max_total <= 0:
        return None
    bins, high = _histogram_bins(max_total)
    counts = histogram(totals, low=0, high=high, bins=bins)
    width, height = 600, 280
    left, right, top, bottom = 48, 16, 36, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    step = max(1, -(-max(counts) // 5))  # at most ~5 gridlines, whole scripts
    y_max = max(step, -(-max(counts) // step) * step)
    bin_w = plot_w / bins
    bars = [
        {"x": left + i * bin_w + 2, "y": top + plot_h - count / y_max * plot_h, "width": bin_w - 4,
         "height": count / y_max * plot_h, "count": count, "label_y": top + plot_h - count / y_max * plot_h - 4,
         "label_x": left + (i + 0.5) * bin_w}
        for i, count in enumerate(counts)
    ]
    x_ticks = [{"x": left + i * bin_w, "label": figure_text(high * i / bins)} for i in range(bins + 1)]
    y_ticks = [{"y": top + plot_h - value / y_max * plot_h, "label": value} for value in range(0, y_max + 1, step)]
    pass_x = left + pass_mark / high * plot_w if pass_mark is not None and 0 <= pass_mark <= max_total else None
    return {
        "width": width, "height": height, "left": left, "right": width - right, "top": top,
        "bottom": top + plot_h, "middle_x": left + plot_w / 2, "middle_y": top + plot_h / 2,
        "bars": bars, "x_ticks": x_ticks, "y_ticks": y_ticks, "pass_x": pass_x,
        "x_title": f"Total (marks out of {marks_text(max_total)})",
        "pass_label": None if pass_x is None else f"pass mark {marks_text(pass_mark)}",
    }


def _cover_stats(totals: list[float], *, max_total: float, pass_mark: float | None) -> dict:
    """The cover's figures, each in marks and as a percentage of ``max_total``, formatted."""
    figures = summary(totals)

    def marks_and_percent(value: float) -> dict:
        return {"marks": figure_text(value), "percent": figure_text(100 * value / max_total, 1) if max_total else "—"}

    stats = {
        "n": figures.n, "max_total": marks_text(max_total), "mean": marks_and_percent(figures.mean),
        "median": marks_and_percent(figures.median), "std": marks_and_percent(figures.std),
        "high": marks_and_percent(figures.high), "low": marks_and_percent(figures.low),
    }
    if pass_mark is not None:
        passing = sum(1 for total in totals if total >= pass_mark)
        stats.update(pass_mark=marks_and_percent(pass_mark), passing=passing,
                     pass_rate=figure_text(100 * passing / figures.n, 1))
    return stats


def _band_heading(band: str, *, n: int, passing: bool) -> str:
    """"top 3 scripts by total" and the like: how ``sample_bands`` drew the band."""
    scripts = ("passing " if passing else "") + ("script" if n == 1 else "scripts")
    return {"Good": f"top {n} {scripts} by total", "Average": f"{n} {scripts} around the median",
            "Weak": f"bottom {n} {scripts} by total"}[band]


def sample_report_pdf(
    *,
    exam: Exam,
    n: int = 3,
    pass_mark: Decimal | float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """The Good / Average / Weak sample report as A4 PDF bytes: a cover with the exam's statistics and a
    histogram of totals, then per band a page naming its ``n`` scripts and those scored scripts.

    Only scripts with at least one score count, in the statistics and the bands: a script nobody read
    is not a zero, and ranking it as one would push real weak scripts out of the Weak band. With
    ``pass_mark`` (marks), the bands are drawn from scripts whose total reaches it only; the statistics
    still cover every scored script and add the pass rate. ``progress(done, total)`` is called as each
    of the ``3 * n`` scripts is prepared (laying out and writing the PDF follows, about 0.1 s a script).
    Raises ``BandsRefused`` with too few (passing) scripts.
    """
    results = script_results(exam=exam)
    scored = [result for result in results if any(row.score is not None for row in result.rows)]
    pass_value = None if pass_mark is None else float(pass_mark)
    bands = sample_bands([(result, float(result.total)) for result in scored], n=n, pass_mark=pass_value)
    chosen = [result for band in BANDS for result in bands[band]]
    pages = _pages_by_script(chosen)
    contexts: dict[int, dict] = {}
    for done, result in enumerate(chosen, start=1):
        contexts[result.script.pk] = _script_context(result, pages[result.script.pk])
        if progress:
            progress(done, len(chosen))

    totals = [float(result.total) for result in scored]
    max_total = float(scored[0].max_total)  # every script answers the same questions
    stats = _cover_stats(totals, max_total=max_total, pass_mark=pass_value)
    stats["left_out"] = len(results) - len(scored)
    return html_pdf(exam=exam, html=render_to_string("outputs/pdf/sample_report.html", {
        "exam": exam,
        "generated": timezone.localdate(),
        "n": n,
        "stats": stats,
        "histogram": _histogram_svg(totals, max_total=max_total, pass_mark=pass_value),
        "bands": [
            {"name": band, "heading": _band_heading(band, n=n, passing=pass_value is not None),
             "scripts": [contexts[result.script.pk] for result in bands[band]]}
            for band in BANDS
        ],
    }))
