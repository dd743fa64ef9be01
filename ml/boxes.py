"""Answer boxes on template pages: geometry, validation and the three interchange formats.

Coordinates
    A box is ``[x1, y1, x2, y2]`` with x2/y2 exclusive (width = x2 - x1), in one of two spaces:

    * template pixels: pixels of a template page rendered at 150 dpi (an A4 page is 1240x1754).
      ``AnswerBox.bbox``, ``annotations.json`` and the region list use them.
    * the 0-1000 grid: each axis cut into 1000 units of that page's width or height, so
      ``[0, 0, 1000, 1000]`` is the whole page whatever its size. HG-Bench files use it.

    Pages are 0-based in ``AnswerBox`` and in ``annotations.json`` keys, 1-based in HG-Bench files.
    Problem messages number pages, boxes, regions, items and steps from 1, as a teacher counts them.

Formats (every loader takes the template's page sizes, ``(width, height)`` in pixels per page)
    ``annotations.json`` (seed 001)
        ``{"0": [{"x": 266, "y": 354, "width": 649, "height": 77, "label": "NAME"}, ...], "1": [...]}``:
        keys are 0-based page indexes, values pixels. Steps have no place in this form: the dump
        writes parent boxes only and the load gives boxes without steps. Other keys are ignored,
        since annotation tools add their own.
    region list (seed 000), one page at a time
        ``[{"index": 1, "bbox": [x1, y1, x2, y2]}, ...]`` in pixels. On load, index n becomes the
        label ``labels[n]`` when the caller gives one, else ``Q{n}``. The dump lists the page's
        question boxes only, in reading order (rows top to bottom, left to right within a row),
        numbered from 1: identity boxes (NAME, ID, CLASS) are left out because they are matched
        against the roster, not marked, and steps are left out. ``region_list_labels`` gives the
        index -> label mapping of a dump, so a dump loads back to the same boxes.
    HG-Bench (seed 004)
        ``[{"type": "complete_answer_box", "page": 1, "box_2d": [x1, y1, x2, y2],
        "steps": [{"step_id": 1, "box_2d": [...]}, ...]}, ...]`` on the 0-1000 grid, pages 1-based,
        steps ordered by ``step_id`` (1-based writing order). The paper's schema has no question
        label, so we add an optional ``"label"`` to items and steps: the dump always writes it; on
        load an item without one is labelled ``Q{n}`` by its 1-based position in the file and a
        step without one by its ``step_id`` (``"1"``, ``"2"``...). ``type`` may be left out.

Validation and clipping (``boxes_validate``, run by every loader)
    A box needs four finite numbers with x1 < x2 and y1 < y2, an existing page, and a label of 1
    to ``MAX_LABEL_LENGTH`` characters, unique (case-sensitive) among the exam's boxes; step labels may repeat.
    Each edge may overflow the page by up to ``PAGE_TOLERANCE_PX`` (a teacher's drag past the edge)
    and the loaders then clip it to the page; a box further out is rejected, since it usually means
    a file made for other page sizes or another dpi. A step must be on its box's page and inside
    it to within ``STEP_TOLERANCE_PX``, and is clipped to it. Identity boxes cannot have steps and
    steps cannot have steps. A file with any problem is rejected whole, listing every problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

RESERVED_LABELS = frozenset({"NAME", "ID", "CLASS"})
MAX_LABEL_LENGTH = 32
PAGE_TOLERANCE_PX = 6  # about 1 mm at 150 dpi
STEP_TOLERANCE_PX = 2

Number = TypeVar("Number", int, float)
PageSizes = Sequence[tuple[int, int]]


# --------------------------------------------------------------------------------------------
# Geometry, in whichever space the boxes share


def box_area(box: Sequence[float]) -> float:
    """Area of ``[x1, y1, x2, y2]`` in square units of its space; 0 when it has no width or height."""
    x1, y1, x2, y2 = box
    return max(0, x2 - x1) * max(0, y2 - y1)


def box_clip(box: Sequence[Number], *, bounds: Sequence[Number]) -> tuple[Number, Number, Number, Number]:
    """``box`` cut to the part inside ``bounds`` (both ``[x1, y1, x2, y2]`` in one space).

    Boxes that do not overlap give a box with x1 >= x2 or y1 >= y2, whose ``box_area`` is 0.
    """
    return (max(box[0], bounds[0]), max(box[1], bounds[1]), min(box[2], bounds[2]), min(box[3], bounds[3]))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes in one space, in [0, 1]; 0 if both are empty."""
    intersection = box_area(box_clip(a, bounds=b))
    union = box_area(a) + box_area(b) - intersection
    return intersection / union if union > 0 else 0.0


def box_contains(outer: Sequence[float], inner: Sequence[float], *, tolerance: float = 0) -> bool:
    """Whether ``inner`` lies inside ``outer``, each edge allowed ``tolerance`` units past it (one space)."""
    return (inner[0] >= outer[0] - tolerance and inner[1] >= outer[1] - tolerance
            and inner[2] <= outer[2] + tolerance and inner[3] <= outer[3] + tolerance)


def box_to_1000(box: Sequence[float], *, page_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A pixel box on a page of ``page_size`` (width, height) px, on the 0-1000 grid.

    Each edge is rounded to the nearest grid unit (Python's ``round``, ties to even). On pages under
    3000 px a side, pixels -> grid -> pixels moves an edge by at most 1 px, and a second round trip
    changes nothing.
    """
    width, height = page_size
    x1, y1, x2, y2 = box
    return round(x1 * 1000 / width), round(y1 * 1000 / height), round(x2 * 1000 / width), round(y2 * 1000 / height)


def box_from_1000(box: Sequence[float], *, page_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A 0-1000 grid box as pixels of a page of ``page_size`` (width, height) px, edges rounded to the nearest pixel."""
    width, height = page_size
    x1, y1, x2, y2 = box
    return round(x1 * width / 1000), round(y1 * height / 1000), round(x2 * width / 1000), round(y2 * height / 1000)


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class AnswerBox:
    """A box drawn on the exam template.

    ``label`` is NAME, ID or CLASS for identity fields and a question label (Q1, 3b...) otherwise;
    ``page`` is the 0-based template page; ``bbox`` is ``(x1, y1, x2, y2)`` in template pixels at
    150 dpi, x2/y2 exclusive. ``steps`` are the answer's step boxes in writing order, each on the
    same page and inside this box; a step's label names it within its box ("1", "2"...).
    """

    label: str
    page: int
    bbox: tuple[int, int, int, int]
    steps: tuple[AnswerBox, ...] = ()


@dataclass(frozen=True)
class HGBenchBox:
    """One box of an HG-Bench list as written: ``page`` 1-based, ``box_2d`` ``(x1, y1, x2, y2)`` on the
    0-1000 grid, unrounded. ``step_id`` (1-based writing order) is set on steps only; ``label`` is our
    optional extension (None when absent). Steps share their item's page."""

    page: int
    box_2d: tuple[float, float, float, float]
    label: str | None = None
    step_id: int | None = None
    steps: tuple[HGBenchBox, ...] = ()


class BoxFormatError(ValueError):
    """A box file or layout that cannot be used. ``problems`` lists every problem found, each starting
    with its place (for example "page 1, box 3: width must be positive")."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------------------------
# Validation


def boxes_validate(*, boxes: Sequence[AnswerBox], page_sizes: PageSizes) -> list[str]:
    """Every problem of an exam's boxes (see the module docstring for the rules); empty when they are usable.

    ``page_sizes`` are the template pages' (width, height) in pixels. Each message starts with the
    box's place, "page P, box N (LABEL)", P and N counted from 1 (N among the boxes of page P in
    the order given), then ", step K" for steps. Slight overflow past the page is allowed here;
    the loaders clip it away.
    """
    numbers: dict[int, int] = {}
    places = []
    for box in boxes:
        numbers[box.page] = numbers.get(box.page, 0) + 1
        named = f" ({box.label})" if isinstance(box.label, str) and box.label.strip() else ""
        places.append(f"page {box.page + 1}, box {numbers[box.page]}{named}")
    return _problems(boxes, places=places, page_sizes=page_sizes)


def _problems(boxes: Sequence[AnswerBox], *, places: Sequence[str], page_sizes: PageSizes) -> list[str]:
    problems: list[str] = []
    owners: dict[str, str] = {}
    for box, place in zip(boxes, places, strict=True):
        problems += _box_problems(box, place=place, page_sizes=page_sizes, parent=None)
        for number, step in enumerate(box.steps, 1):
            problems += _box_problems(step, place=f"{place}, step {number}", page_sizes=page_sizes, parent=box)
        if isinstance(box.label, str) and box.label.strip():
            if box.label in owners:
                problems.append(f'{place}: label "{box.label}" is already used by {owners[box.label]}')
            else:
                owners[box.label] = place
    return problems


def _box_problems(box: AnswerBox, *, place: str, page_sizes: PageSizes, parent: AnswerBox | None) -> list[str]:
    found = []
    if not isinstance(box.label, str):
        found.append("label must be text")
    elif not box.label.strip():
        found.append("label is empty")
    elif len(box.label) > MAX_LABEL_LENGTH:
        found.append(f"label is longer than {MAX_LABEL_LENGTH} characters")
    if parent is None and isinstance(box.label, str) and box.label in RESERVED_LABELS and box.steps:
        found.append(f"{box.label} is an identity field and cannot have steps")
    if parent is not None and box.steps:
        found.append("a step cannot have steps of its own")
    page_exists = 0 <= box.page < len(page_sizes)
    if not page_exists:
        found.append(_no_page(box.page + 1, page_sizes))
    elif parent is not None and box.page != parent.page:
        found.append(f"is on page {box.page + 1}, not on its box's page {parent.page + 1}")
    if not _is_bbox(box.bbox):
        found.append("coordinates must be four numbers")
        return [f"{place}: {problem}" for problem in found]
    x1, y1, x2, y2 = box.bbox
    if x2 <= x1:
        found.append("width must be positive")
    if y2 <= y1:
        found.append("height must be positive")
    if x1 < x2 and y1 < y2 and page_exists:
        width, height = page_sizes[box.page]
        page_box = (0, 0, width, height)
        if not box_contains(page_box, box.bbox, tolerance=PAGE_TOLERANCE_PX) or not box_area(
                box_clip(box.bbox, bounds=page_box)):
            found.append(f"lies outside the {width}x{height} px page (more than {PAGE_TOLERANCE_PX} px past an edge)")
    if parent is not None and _is_bbox(parent.bbox) and not box_contains(
            parent.bbox, box.bbox, tolerance=STEP_TOLERANCE_PX):
        found.append(f"is not inside its box (more than {STEP_TOLERANCE_PX} px past an edge)")
    return [f"{place}: {problem}" for problem in found]


def _is_number(value: object) -> bool:
    # bool is an int to Python but never a coordinate; NaN and infinities are not positions.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_bbox(value: object) -> bool:
    return isinstance(value, tuple | list) and len(value) == 4 and all(_is_number(v) for v in value)


def _no_page(page: int, page_sizes: PageSizes) -> str:
    """The message for a page that does not exist; ``page`` as the teacher counts it (1-based)."""
    return f"page {page} does not exist (the exam has {len(page_sizes)} pages)"


def _clipped(box: AnswerBox, *, page_sizes: PageSizes) -> AnswerBox:
    width, height = page_sizes[box.page]
    bbox = box_clip(box.bbox, bounds=(0, 0, width, height))
    steps = tuple(replace(step, bbox=box_clip(step.bbox, bounds=bbox)) for step in box.steps)
    return replace(box, bbox=bbox, steps=steps)


def _checked(boxes: Sequence[AnswerBox], *, places: Sequence[str], page_sizes: PageSizes,
             problems: Sequence[str]) -> list[AnswerBox]:
    """The loaded boxes clipped to their pages, or ``BoxFormatError`` with the parse ``problems`` and
    every validation problem."""
    problems = [*problems, *_problems(boxes, places=places, page_sizes=page_sizes)]
    if problems:
        raise BoxFormatError(problems)
    return [_clipped(box, page_sizes=page_sizes) for box in boxes]


# --------------------------------------------------------------------------------------------
# Reading JSON


def _decoded(data: str | bytes) -> object:
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise BoxFormatError([f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"]) from error
    except UnicodeDecodeError as error:
        raise BoxFormatError(["not valid JSON: the file is not UTF-8 text"]) from error


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return {str: "text", list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _fields(entry: object, *, place: str, required: Iterable[str], problems: list[str]) -> dict | None:
    """``entry`` if it is an object with every ``required`` key; else None, with the reason in ``problems``."""
    if not isinstance(entry, dict):
        problems.append(f"{place}: must be an object, not {_kind(entry)}")
        return None
    missing = [key for key in required if key not in entry]
    if missing:
        problems.append(f"{place}: missing {', '.join(missing)}")
        return None
    return entry


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _label(value: object, *, default: str) -> object:
    # A label that is not text is kept as it is so validation reports it.
    return value.strip() if isinstance(value, str) else default if value is None else value


# --------------------------------------------------------------------------------------------
# annotations.json (seed 001)


def annotations_load(*, data: str | bytes, page_sizes: PageSizes) -> list[AnswerBox]:
    """Boxes of an ``annotations.json`` (pixels, 0-based page keys; see the module docstring), by page then
    file order, without steps. Fractional pixels are rounded to the nearest pixel per edge.

    Raises ``BoxFormatError`` listing every problem; nothing is returned from a file with any.
    """
    decoded = _decoded(data)
    if not isinstance(decoded, dict):
        raise BoxFormatError([f"the file must be an object of pages ({{\"0\": [boxes]}}), not {_kind(decoded)}"])
    problems: list[str] = []
    pages: list[tuple[int, list]] = []
    for key, entries in decoded.items():
        if not (key.isascii() and key.isdigit()):
            problems.append(f'page key "{key}": must be a 0-based page index such as "0"')
        elif not isinstance(entries, list):
            problems.append(f"page {int(key) + 1}: must be a list of boxes, not {_kind(entries)}")
        else:
            pages.append((int(key), entries))
    boxes, places = [], []
    for page, entries in sorted(pages, key=lambda pair: pair[0]):
        for number, entry in enumerate(entries, 1):
            place = f"page {page + 1}, box {number}"
            fields = _fields(entry, place=place, required=("x", "y", "width", "height", "label"), problems=problems)
            if fields is None:
                continue
            bad = [key for key in ("x", "y", "width", "height") if not _is_number(fields[key])]
            if bad:
                problems.append(f"{place}: {', '.join(bad)} must be {'a number' if len(bad) == 1 else 'numbers'}")
                continue
            x, y = fields["x"], fields["y"]
            bbox = (round(x), round(y), round(x + fields["width"]), round(y + fields["height"]))
            boxes.append(AnswerBox(label=_label(fields["label"], default=""), page=page, bbox=bbox))
            places.append(place)
    return _checked(boxes, places=places, page_sizes=page_sizes, problems=problems)


def annotations_dump(*, boxes: Sequence[AnswerBox]) -> str:
    """``boxes`` as an ``annotations.json`` text: pages in order, boxes in the order given, steps left out."""
    pages: dict[str, list[dict[str, int | str]]] = {}
    for box in sorted(boxes, key=lambda box: box.page):
        x1, y1, x2, y2 = box.bbox
        pages.setdefault(str(box.page), []).append(
            {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "label": box.label})
    return json.dumps(pages, indent=2)


# --------------------------------------------------------------------------------------------
# Region list (seed 000)


def region_list_load(*, data: str | bytes, page: int, page_sizes: PageSizes,
                     labels: Mapping[int, str] | None = None) -> list[AnswerBox]:
    """Boxes of a region list for the 0-based template ``page`` (pixels), in file order, without steps.

    Region ``index`` n (a whole number from 1) is labelled ``labels[n]`` when given, else ``Q{n}``.
    Raises ``BoxFormatError`` listing every problem; nothing is returned from a file with any.
    """
    decoded = _decoded(data)
    if not isinstance(decoded, list):
        raise BoxFormatError([f"the file must be a list of regions, not {_kind(decoded)}"])
    problems: list[str] = []
    boxes, places = [], []
    for number, entry in enumerate(decoded, 1):
        place = f"region {number}"
        fields = _fields(entry, place=place, required=("index", "bbox"), problems=problems)
        if fields is None:
            continue
        index, bbox = fields["index"], fields["bbox"]
        if not _whole(index):
            problems.append(f"{place}: index must be a whole number from 1")
        elif not _is_bbox(bbox):
            problems.append(f"{place}: bbox must be four numbers [x1, y1, x2, y2]")
        else:
            label = (labels or {}).get(index, f"Q{index}")
            boxes.append(AnswerBox(label=label, page=page, bbox=tuple(round(v) for v in bbox)))
            places.append(place)
    return _checked(boxes, places=places, page_sizes=page_sizes, problems=problems)


def _page_questions(boxes: Sequence[AnswerBox], *, page: int) -> list[AnswerBox]:
    """The question boxes of ``page`` in reading order.

    A box joins the current row when its vertical centre is above the bottom of the row's first
    (topmost) box, so side-by-side boxes a few pixels apart in height stay in one row.
    """
    rows: list[list[AnswerBox]] = []
    questions = [box for box in boxes if box.page == page and box.label not in RESERVED_LABELS]
    for box in sorted(questions, key=lambda box: (box.bbox[1], box.bbox[0])):
        if rows and (box.bbox[1] + box.bbox[3]) / 2 < rows[-1][0].bbox[3]:
            rows[-1].append(box)
        else:
            rows.append([box])
    return [box for row in rows for box in sorted(row, key=lambda box: (box.bbox[0], box.bbox[1]))]


def region_list_dump(*, boxes: Sequence[AnswerBox], page: int) -> str:
    """The question boxes of the 0-based ``page`` as a region list: reading order, ``index`` from 1, pixel
    ``bbox``; identity boxes and steps left out."""
    return json.dumps([{"index": index, "bbox": list(box.bbox)}
                       for index, box in enumerate(_page_questions(boxes, page=page), 1)])


def region_list_labels(*, boxes: Sequence[AnswerBox], page: int) -> dict[int, str]:
    """The ``index -> label`` mapping of ``region_list_dump`` for the same boxes and page."""
    return {index: box.label for index, box in enumerate(_page_questions(boxes, page=page), 1)}


# --------------------------------------------------------------------------------------------
# HG-Bench (seed 004)


def hgbench_read(*, value: object) -> list[HGBenchBox]:
    """Check a decoded HG-Bench box list against the schema (module docstring) and return its items.

    Items keep the file's order; steps are sorted by ``step_id``. Coordinates are not checked
    against the page here. Raises ``BoxFormatError`` listing every problem.
    """
    items, problems = _hgbench_items(value)
    if problems:
        raise BoxFormatError(problems)
    return [item for _, item in items]


def _hgbench_items(value: object) -> tuple[list[tuple[int, HGBenchBox]], list[str]]:
    """The well-formed items with their 1-based positions in the list, and the problems of the others."""
    if not isinstance(value, list):
        return [], [f"the file must be a list of boxes, not {_kind(value)}"]
    problems: list[str] = []
    items = []
    for number, entry in enumerate(value, 1):
        place = f"item {number}"
        fields = _fields(entry, place=place, required=("page", "box_2d"), problems=problems)
        if fields is None:
            continue
        count = len(problems)
        if fields.get("type", "complete_answer_box") != "complete_answer_box":
            problems.append(f'{place}: type must be "complete_answer_box"')
        if not _whole(fields["page"]):
            problems.append(f"{place}: page must be a whole number from 1")
        if not _is_bbox(fields["box_2d"]):
            problems.append(f"{place}: box_2d must be four numbers [x1, y1, x2, y2]")
        if not isinstance(fields.get("label", ""), str):
            problems.append(f"{place}: label must be text")
        steps = _hgbench_steps(fields.get("steps"), page=fields["page"], place=place, problems=problems)
        if len(problems) == count:
            items.append((number, HGBenchBox(page=fields["page"], box_2d=tuple(fields["box_2d"]),
                                             label=fields.get("label"), steps=steps)))
    return items, problems


def _hgbench_steps(value: object, *, page: int, place: str, problems: list[str]) -> tuple[HGBenchBox, ...]:
    """The steps of the item at ``place`` sorted by ``step_id``; the problems of bad ones go to ``problems``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"{place}: steps must be a list, not {_kind(value)}")
        return ()
    steps = []
    for number, entry in enumerate(value, 1):
        step_place = f"{place}, step {number}"
        fields = _fields(entry, place=step_place, required=("step_id", "box_2d"), problems=problems)
        if fields is None:
            continue
        if not _whole(fields["step_id"]):
            problems.append(f"{step_place}: step_id must be a whole number from 1")
        elif not _is_bbox(fields["box_2d"]):
            problems.append(f"{step_place}: box_2d must be four numbers [x1, y1, x2, y2]")
        elif not isinstance(fields.get("label", ""), str):
            problems.append(f"{step_place}: label must be text")
        else:
            steps.append(HGBenchBox(page=page, box_2d=tuple(fields["box_2d"]), label=fields.get("label"),
                                    step_id=fields["step_id"]))
    ids = [step.step_id for step in steps]
    if len(set(ids)) != len(ids):
        problems.append(f"{place}: step_id values must differ")
    return tuple(sorted(steps, key=lambda step: step.step_id))


def hgbench_load(*, data: str | bytes, page_sizes: PageSizes) -> list[AnswerBox]:
    """Boxes of an HG-Bench file (0-1000 grid, 1-based pages; module docstring) as template pixels, in file
    order, with their steps in ``step_id`` order. Labels default to ``Q{position}`` for items and the
    ``step_id`` for steps. Raises ``BoxFormatError`` listing every problem; nothing is returned from a
    file with any.
    """
    items, problems = _hgbench_items(_decoded(data))
    boxes, places = [], []
    for number, item in items:
        place = f"item {number}"
        if not 1 <= item.page <= len(page_sizes):
            problems.append(f"{place}: {_no_page(item.page, page_sizes)}")
            continue
        size = page_sizes[item.page - 1]
        steps = tuple(AnswerBox(label=_label(step.label, default=str(step.step_id)), page=item.page - 1,
                                bbox=box_from_1000(step.box_2d, page_size=size)) for step in item.steps)
        boxes.append(AnswerBox(label=_label(item.label, default=f"Q{number}"),
                               page=item.page - 1, bbox=box_from_1000(item.box_2d, page_size=size), steps=steps))
        places.append(place)
    return _checked(boxes, places=places, page_sizes=page_sizes, problems=problems)


def hgbench_dump(*, boxes: Sequence[AnswerBox], page_sizes: PageSizes) -> str:
    """``boxes`` (valid, see ``boxes_validate``) as an HG-Bench list in the order given: 1-based pages,
    0-1000 grid boxes, each item's ``label``, and ``steps`` (``step_id`` = 1-based position, with
    their labels) on boxes that have steps."""
    items = []
    for box in boxes:
        size = page_sizes[box.page]
        item: dict[str, object] = {"type": "complete_answer_box", "page": box.page + 1, "label": box.label,
                                   "box_2d": list(box_to_1000(box.bbox, page_size=size))}
        if box.steps:
            item["steps"] = [{"step_id": number, "label": step.label,
                              "box_2d": list(box_to_1000(step.bbox, page_size=size))}
                             for number, step in enumerate(box.steps, 1)]
        items.append(item)
    return json.dumps(items, indent=2)
