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

from django.conf import settings
from django.core.files.storage import default_storage
from django.template.loader import render_to_string
from django.utils import timezone
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from grader.models import Exam, ScanPage
from grader.outputs.selectors import ScriptResult, script_results
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


def _label_place(*, left: float, top: float, right: float, text: str) -> tuple[float, float]:
    """Where a score label goes (its left and top in mm): right of the box where the paper has room,
    else above the box's right end, else inside its top-right corner."""
    width = len(text) * LABEL_FONT_MM * 0.62 + 2  # and 1 mm padding each side (print.css)
    if right + LABEL_GAP_MM + width <= A4_MM[0] - SAFE_MM:
        return right + LABEL_GAP_MM, max(SAFE_MM, top)
    label_left = max(SAFE_MM, min(right, A4_MM[0] - SAFE_MM) - width)
    if top - LABEL_GAP_MM - LABEL_HEIGHT_MM >= SAFE_MM:
        return label_left, top - LABEL_GAP_MM - LABEL_HEIGHT_MM
    return max(left, label_left - 1), max(SAFE_MM, top + 1)


def _page_layout(page: ScanPage, boxes: Iterable[tuple[list[float], str]]) -> _Page:
    """``page`` fitted within A4 with ``boxes`` (crop in the page's px, score text) placed on it."""
    width_px = page.width or page.image.width
    height_px = page.height or page.image.height
    scale = min(A4_MM[0] / width_px, A4_MM[1] / height_px)
    offset_x = (A4_MM[0] - width_px * scale) / 2
    offset_y = (A4_MM[1] - height_px * scale) / 2
    placed = []
    for (x1, y1, x2, y2), text in boxes:
        left, top = offset_x + x1 * scale, offset_y + y1 * scale
        right, bottom = offset_x + x2 * scale, offset_y + y2 * scale
        label_left, label_top = _label_place(left=left, top=top, right=right, text=text)
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
    for row in result.rows:
        score = "—" if row.score is None else marks_text(row.score)
        rows.append({"label": row.question.label, "score": score, "max": marks_text(row.max_score), "blank": row.blank})
        if row.answer and row.answer.page_id and row.answer.crop:
            boxes[row.answer.page_id].append((row.answer.crop, f"{score}/{marks_text(row.max_score)}"))
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
