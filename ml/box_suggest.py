"""Suggesting answer boxes on a template from where students actually wrote.

Each filled scan is resampled into its template page's frame, the blank template's print is taken
away, and what is left dark is handwriting. Ink from several scripts is pooled, so a suggested box
covers what different students wrote, and merged into answer-sized regions. Where the template has a
printed frame around the ink, the frame itself is suggested, since that is the box a teacher would draw.

Coordinates: boxes are ``(x1, y1, x2, y2)`` in template px (pixels of the template page at the app's
150 dpi), with ``x2``/``y2`` exclusive; pages are 0-based template page indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from ml.alignment import Alignment, scan_rectify
from ml.boxes import box_area, box_clip

Box = tuple[int, int, int, int]

# Thicker than any answer frame's line (0.3 mm is 2 px at 150 dpi, a heavy 1 mm line 6 px).
_FRAME_STROKE_PX = 8


@dataclass(frozen=True)
class SuggestConfig:
    """How ``boxes_suggest`` finds answer regions; lengths are template px at 150 dpi.

    ``max_scripts``: scripts pooled per page (the first ones whose page aligned); more cover more ways of
    answering but cost time. ``ink_level``: a pixel is dark (print or ink) when below this fraction of the
    page's paper brightness. ``print_margin_px``: printed strokes are widened by this much before being
    taken away, so their blurred, slightly misplaced edges on a scan do not count as ink. ``speck_px``:
    smaller specks of ink on one script are noise and dropped. ``close_px``: ``(width, height)`` of the
    closing that joins letters into words, words into answers and the lines of one answer; it must stay
    below the gap between neighbouring answers. ``min_area_px``: smaller merged regions are dropped.
    ``pad_px``: room added around an ink region, as a teacher leaves. ``edge_margin``: fraction of each
    page side ignored, where scanners leave dark edges. ``min_support``: fraction of the pooled scripts
    that must have ink in a region for it to be suggested. ``frames``: suggest printed frames that hold
    ink (off: only regions around the ink, for templates whose frames are decoration). ``frame_min_px``:
    ``(width, height)`` below which a printed rectangle is a glyph or a tick box rather than an answer
    frame; ``frame_max_area``: fraction of the page above which it is a page border.
    """

    max_scripts: int = 10
    ink_level: float = 0.7
    print_margin_px: int = 4
    speck_px: int = 30
    close_px: tuple[int, int] = (41, 21)
    min_area_px: int = 400
    pad_px: int = 8
    edge_margin: float = 0.03
    min_support: float = 0.2
    frames: bool = True
    frame_min_px: tuple[int, int] = (60, 30)
    frame_max_area: float = 0.6


@dataclass(frozen=True)
class SuggestedBox:
    """A suggested answer box: 0-based template ``page``, ``bbox`` ``(x1, y1, x2, y2)`` in template px
    (x2/y2 exclusive), ``score`` the fraction (0-1) of pooled scripts with ink in it, and ``source``:
    "frame" for a printed frame the ink lies in, "ink" for the region around the ink itself."""

    page: int
    bbox: Box
    score: float
    source: Literal["frame", "ink"]


def boxes_suggest(
    *,
    template_pages: Sequence[Image.Image],
    scripts: Sequence[Sequence[tuple[Image.Image, Alignment]]],
    config: SuggestConfig = SuggestConfig(),
) -> list[SuggestedBox]:
    """Suggest answer boxes on ``template_pages`` from filled ``scripts``.

    ``scripts`` holds one sequence per script whose item ``i`` is the scanned page of template page ``i``
    with its alignment to it (``ml.alignment.page_align``); pages that did not align are skipped, and a
    script may have fewer pages than the template. Ink counts for the innermost printed frame around it;
    ink outside every frame becomes an "ink" box, unless it touches a suggested frame (an answer spilling
    over its edge). Returns non-overlapping boxes in reading order (page, then top to bottom, then left to
    right); overlapping ones are merged, so a frame holding ink and a frame inside it holding ink give the
    outer frame.
    """
    suggestions: list[SuggestedBox] = []
    for index, template in enumerate(template_pages):
        pages = [script[index] for script in scripts if len(script) > index and script[index][1].ok]
        if not pages:
            continue
        suggestions += _page_suggest(
            page=index, template=template, scans=pages[: config.max_scripts], config=config
        )
    return suggestions


def _dark(gray: np.ndarray, *, config: SuggestConfig) -> np.ndarray:
    """Pixels darker than ``config.ink_level`` of the paper (the 90th percentile of a sample of the page)."""
    paper = float(np.percentile(gray[::4, ::4], 90))
    return gray < config.ink_level * paper


def _page_suggest(
    *, page: int, template: Image.Image, scans: Sequence[tuple[Image.Image, Alignment]], config: SuggestConfig
) -> list[SuggestedBox]:
    template_gray = np.asarray(template.convert("L"))
    height, width = template_gray.shape
    size = 2 * config.print_margin_px + 1
    printed = cv2.dilate(
        _dark(template_gray, config=config).astype(np.uint8),
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)),
    ).astype(bool)
    inside = np.zeros_like(printed)
    dy, dx = round(height * config.edge_margin), round(width * config.edge_margin)
    inside[dy : height - dy, dx : width - dx] = True

    inks = [_ink(scan=scan, alignment=alignment, keep=inside & ~printed, config=config) for scan, alignment in scans]
    frames = _frames(template_gray, config=config) if config.frames else []
    # Each pixel belongs to the innermost frame around it (0: none), so ink in a small frame inside a larger
    # one suggests the small frame only.
    owner = np.zeros((height, width), np.int32)
    for number, (x1, y1, x2, y2) in sorted(enumerate(frames, 1), key=lambda item: -box_area(item[1])):
        owner[y1:y2, x1:x2] = number
    written = np.zeros(len(frames) + 1)
    for ink in inks:
        written += np.bincount(owner[ink], minlength=len(frames) + 1) >= config.speck_px
    candidates = [
        SuggestedBox(page=page, bbox=frame, score=float(written[number] / len(inks)), source="frame")
        for number, frame in enumerate(frames, 1)
        if written[number] and written[number] / len(inks) >= config.min_support
    ]

    # Ink outside every frame is merged into answer-sized regions.
    loose = (np.logical_or.reduce(inks) & (owner == 0)).astype(np.uint8)
    closed = cv2.morphologyEx(loose, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, config.close_px))
    _, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    framed = [candidate.bbox for candidate in candidates]
    for x, y, w, h, area in stats[1:].tolist():
        region = (x, y, x + w, y + h)
        # Writing that strays over a suggested frame's edge belongs to that frame's answer.
        if area < config.min_area_px or any(box_area(box_clip(region, bounds=f)) for f in framed):
            continue
        pad = config.pad_px
        box = (max(x - pad, 0), max(y - pad, 0), min(x + w + pad, width), min(y + h + pad, height))
        score = _support(box=box, inks=inks, config=config)
        if score >= config.min_support:
            candidates.append(SuggestedBox(page=page, bbox=box, score=score, source="ink"))
    return _reading_order(_overlaps_merge(candidates))


def _ink(*, scan: Image.Image, alignment: Alignment, keep: np.ndarray, config: SuggestConfig) -> np.ndarray:
    """Boolean template-frame mask of one scan's handwriting: dark, where ``keep`` allows, without specks."""
    warped = np.asarray(scan_rectify(scan=scan.convert("L"), alignment=alignment))
    ink = (_dark(warped, config=config) & keep).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= config.speck_px
    big[0] = False  # the background
    return big[labels]


def _support(*, box: Box, inks: Sequence[np.ndarray], config: SuggestConfig) -> float:
    """Fraction of scripts with more than a speck of ink inside ``box``."""
    x1, y1, x2, y2 = box
    written = sum(int(ink[y1:y2, x1:x2].sum()) >= config.speck_px for ink in inks)
    return written / len(inks)


def _frames(gray: np.ndarray, *, config: SuggestConfig) -> list[Box]:
    """Printed rectangular frames on a blank template page, as their outer edges, smallest first."""
    height, width = gray.shape
    dark = _dark(gray, config=config).astype(np.uint8)
    contours, _ = cv2.findContours(dark, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[Box] = []
    min_width, min_height = config.frame_min_px
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w < min_width or h < min_height or w * h > config.frame_max_area * width * height:
            continue
        corners = cv2.approxPolyDP(contour, 0.02 * cv2.arcLength(contour, True), True)
        # Four corners filling their bounding box: an upright rectangle, not a circle, tilted shape or glyph.
        if len(corners) == 4 and cv2.contourArea(contour) >= 0.9 * (w - 1) * (h - 1):
            found.append((x, y, x + w, y + h))
    # A printed frame has an outer and an inner outline, a stroke's width apart; keep the outer one.
    stroke = _FRAME_STROKE_PX
    outer = [
        box
        for box in found
        if not any(
            other != box
            and other[0] <= box[0] <= other[0] + stroke
            and other[1] <= box[1] <= other[1] + stroke
            and other[2] - stroke <= box[2] <= other[2]
            and other[3] - stroke <= box[3] <= other[3]
            for other in found
        )
    ]
    return sorted(set(outer), key=box_area)


def _overlaps_merge(boxes: list[SuggestedBox]) -> list[SuggestedBox]:
    """Replace overlapping boxes by their union until none overlap.

    A union stays a "frame" only when it is one of the frames (the rest lay inside it); the score of a
    union is the best of its parts.
    """
    merged = list(boxes)
    while True:
        pair = next(
            (
                (i, j)
                for i in range(len(merged))
                for j in range(i + 1, len(merged))
                if box_area(box_clip(merged[i].bbox, bounds=merged[j].bbox))
            ),
            None,
        )
        if pair is None:
            return merged
        a, b = merged[pair[0]], merged[pair[1]]
        union = (
            min(a.bbox[0], b.bbox[0]), min(a.bbox[1], b.bbox[1]), max(a.bbox[2], b.bbox[2]), max(a.bbox[3], b.bbox[3])
        )
        frame = any(part.source == "frame" and part.bbox == union for part in (a, b))
        merged[pair[0]] = SuggestedBox(
            page=a.page, bbox=union, score=max(a.score, b.score), source="frame" if frame else "ink"
        )
        del merged[pair[1]]


def _reading_order(boxes: list[SuggestedBox]) -> list[SuggestedBox]:
    """Top to bottom in lines, left to right within a line; a box joins a line when its middle lies
    within the vertical extent of the line's first box."""
    ordered: list[SuggestedBox] = []
    remaining = sorted(boxes, key=lambda box: (box.bbox[1], box.bbox[0]))
    while remaining:
        first = remaining[0]
        line = [box for box in remaining if first.bbox[1] <= (box.bbox[1] + box.bbox[3]) / 2 < first.bbox[3]]
        ordered += sorted(line, key=lambda box: box.bbox[0])
        remaining = [box for box in remaining if box not in line]
    return ordered
