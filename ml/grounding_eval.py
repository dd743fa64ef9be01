"""HG-Bench answer-region grounding metrics (seed 004), scored as the benchmark's official ``evaluate.py`` does.

``python -m ml.grounding_eval --gt GT.jsonl --pred PRED.jsonl`` (or ``--combined FILE.jsonl``) takes the
official files and flags and prints, or writes with ``--out``, the official keys in the official units:
``title_f1`` (F_A), ``step_f1_micro_gt_step_pages`` (F_S^mu), ``step_f1_macro_gt_step_samples`` (F_S^M),
``report_all`` (S-bar) and ``report`` as percentages rounded to 2 decimals, ``success_rate`` as a fraction
rounded to 4, ``num_total`` and ``num_success``. The rules below are the official code's (public repository
hg-bench/hg-bench.github.io, ``evaluate.py``), re-implemented here; where its code departs from the paper's
wording the code wins by default and the wording is an opt-in flag (``EvalConfig``).

Files (JSON Lines, one object a line)
    GT: ``{"uuid", "metadata": {"answer": "<box list as JSON text>", "media_size": {"<media id>": [H, W]},
    "media_map": {"<media id>": ...}}}``; ``media_map``'s key order numbers the pages from 1, and
    ``media_size`` gives each page's height and width in pixels (``media_*`` may also sit at the top
    level, ``answer`` too). PRED: ``{"uuid", "predict": "<raw reply>"}`` (or ``model_response``); one
    sample per prediction line whose uuid is in GT (GT samples without a prediction are outside N, a
    prediction line repeated counts twice). Combined: both ``answer`` and ``predict`` on each line.

Box lists: ``[{"type": "complete_answer_box", "page": 1, "box_2d": [x1, y1, x2, y2], "steps":
    [{"step_id": 1, "box_2d": [...]}]}]`` on the 0-1000 grid of the page (``coord_format="pixel"``: page
    pixels), ``[y1, x1, y2, x2]`` with the ``*_box_yxyx`` flags.

Rules (the official code's)
    1. Parsing (``reply_parse``) never fails a sample: only a reply equal to ``fail_str`` after stripping
       does. Code fences, chat special tokens and text before a ``</think>`` marker are dropped, a
       reply cut off inside the array keeps the objects before the last ``}``, and whatever is not a
       list of objects gives no boxes. Of the items, only those with ``type`` (or, without ``type``,
       ``type_2d``) equal to ``complete_answer_box`` count; ``page`` defaults to 1 (also when 0, empty
       or text that is not an integer); a box is four numbers or a polygon (its envelope); an item whose
       box cannot be read loses its steps too; steps need only a ``box_2d`` (``step_id`` is not read).
    2. Boxes are turned into pixels of their page (``x / 1000 * width``) before IoU.
    3. A sample's pages are those with any box kept, gold or predicted; its title F1 and step F1 are
       means over all of them (a page without steps on either side has step F1 0). F_A is the mean
       title F1 over parsed samples; F_S^M the mean step F1 over parsed samples with a gold step;
       F_S^mu the F1 of step TP/FP/FN summed over pages with gold steps only.
    4. A page's composite is (1 - w) title F1 + w step F1, or its title F1 alone when its step
       TP + FP + FN is 0; a sample's is the mean over its pages.
    5. A sample with no box on any page scores 0 everywhere (and still counts as parsed).
    6. Per page, pairs with IoU >= ``iou_thr`` are matched greedily by IoU descending; equal IoUs are
       taken from the highest gold index, then the highest prediction index.
    7. Boxes on a page without a size (no such image) are dropped, not false positives; boxes of zero
       or negative area are dropped, a question box's steps staying.
    ``report`` is the mean composite over parsed samples and ``report_all`` (S-bar) over all N, failures
    counting 0.

Where the official code would stop with an exception (a ``page`` that is a list or NaN, a coordinate
such as ``"abc"``, a ``steps`` that is a number, a non-text reply, a line that is not an object) this
module drops the item, step or page concerned, takes a reply that is a list as already parsed, and
refuses files it cannot read with a ``ValueError`` (exit status 2 on the command line).

Opt-in, stricter (the paper's wording where the code departs from it)
    ``strict_schema``  parse success as "a structurally valid JSON array conforming to the prescribed
        schema": a reply fails when no array is found or any item fails ``ml.boxes.hgbench_read``.
    ``honour_success``  a prediction line with ``"success": false`` fails, as the official README says
        (its code ignores the field).
    ``missing_as_failure``  GT samples without a prediction line count in N as failures ("over all N").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.boxes import BoxFormatError, hgbench_read

DEFAULT_FAIL_STR = "FAIL_STR"
ANSWER_TYPE = "complete_answer_box"
MIN_IOU = 0.5
COMPOSITE_STEP_WEIGHT = 0.5
COORD_FORMATS = ("auto", "pixel")

PixelBox = tuple[float, float, float, float]
PageSizes = Mapping[int, tuple[float, float]]  # 1-based page -> (width, height) pixels

_CHAT_TOKENS = ("<|begin_of_box|>", "<|end_of_box|>", "<|user|>", "<|assistant|>", "<|system|>")
_THINK_END = re.compile(r"`</redacted_thinking>`|</redacted_thinking>|</think>", re.IGNORECASE)


@dataclass(frozen=True)
class EvalConfig:
    """How to score. ``iou_thr``: a match needs IoU >= it; ``step_weight``: the step share of a page's
    composite; ``coord_format``: "auto" (0-1000 grid) or "pixel"; ``gt_box_yxyx``/``pred_box_yxyx``:
    boxes written ``[y1, x1, y2, x2]``; ``fail_str``: the reply that marks a failed sample. The last
    three are the opt-in stricter rules of the module docstring."""

    iou_thr: float = MIN_IOU
    step_weight: float = COMPOSITE_STEP_WEIGHT
    coord_format: str = "auto"
    gt_box_yxyx: bool = False
    pred_box_yxyx: bool = False
    fail_str: str = DEFAULT_FAIL_STR
    strict_schema: bool = False
    honour_success: bool = False
    missing_as_failure: bool = False

    def __post_init__(self) -> None:
        if self.coord_format not in COORD_FORMATS:
            raise ValueError(f"coord_format must be one of {', '.join(COORD_FORMATS)}")


@dataclass(frozen=True)
class Sample:
    """One sample to score: gold and prediction as raw text or as decoded box lists, and the page sizes.

    ``success`` False (a prediction line's ``"success": false``) fails it only with ``honour_success``;
    ``present`` False marks a gold sample without a prediction line, counted only with
    ``missing_as_failure``.
    """

    gt: str | list
    pred: str | list
    page_sizes: PageSizes
    uuid: str = ""
    success: bool = True
    present: bool = True


@dataclass(frozen=True)
class SampleScore:
    """A sample's scores as fractions in [0, 1]: ``composite`` (judge score), ``title_f1`` and ``step_f1``
    (means over its pages), and its step TP/FP/FN on pages with gold steps."""

    success: bool
    composite: float = 0.0
    title_f1: float = 0.0
    step_f1: float = 0.0
    step_counts: tuple[int, int, int] = (0, 0, 0)
    has_gold_step: bool = False


# --------------------------------------------------------------------------------------------
# Parsing replies


def reply_parse(*, text: str) -> list[dict]:
    """The objects of the JSON array in a model's reply, as the official evaluator recovers them (rule 1).

    Empty when there is no array of objects; never raises.
    """
    return reply_array(text=text) or []


def reply_array(*, text: str) -> list[dict] | None:
    """Like ``reply_parse``, but None when no non-empty array of objects is found (strict mode tells a
    reply of ``[]`` from one with no array)."""
    cleaned = _reply_cleaned(text)
    segments = [cleaned]
    if _THINK_END.search(cleaned):
        segments = list(dict.fromkeys(part.strip() for part in _THINK_END.split(cleaned) if part.strip()))
    for segment in segments:
        items = _json_objects(segment)
        if items:
            return items
    items = _json_objects(cleaned)
    return items if items else ([] if _is_empty_array(cleaned) else None)


def _reply_cleaned(text: str) -> str:
    cleaned = (text or "").strip()
    cleaned = cleaned.removeprefix("```json")
    cleaned = cleaned.removeprefix("```")
    cleaned = cleaned.removesuffix("```")
    for token in _CHAT_TOKENS:
        cleaned = cleaned.replace(token, "")
    return cleaned.strip()


def _is_empty_array(text: str) -> bool:
    try:
        return json.loads(text) == []
    except (ValueError, RecursionError):
        return False


def _json_objects(text: str) -> list[dict]:
    """The dicts of ``text`` read as a JSON list; if that fails and it opens with "[", of the text cut
    after its last "}" and closed again (a reply cut off by the token limit)."""
    attempts = [text]
    last_brace = text.rfind("}")
    if text.startswith("[") and last_brace > 0:
        attempts.append(text[: last_brace + 1].rstrip().rstrip(",") + "]")
    for attempt in attempts:
        try:
            value = json.loads(attempt)
        except (ValueError, RecursionError):
            continue
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
    return []


# --------------------------------------------------------------------------------------------
# Boxes per page


def page_sizes_read(*, metadata: Mapping) -> dict[int, tuple[float, float]]:
    """1-based page -> (width, height) pixels from an HG-Bench ``metadata``: ``media_map``'s key order with
    ``media_size`` ``[H, W]``; without any, the first usable ``media_size`` or ``imgsize_wh`` ``[W, H]``
    as page 1."""
    sizes = metadata.get("media_size") if isinstance(metadata.get("media_size"), Mapping) else {}
    order = metadata.get("media_map") if isinstance(metadata.get("media_map"), Mapping) else {}
    pages: dict[int, tuple[float, float]] = {}
    for page, media_id in enumerate(order, 1):
        size = _height_width(sizes.get(media_id))
        if size is not None:
            pages[page] = (size[1], size[0])
    if pages:
        return pages
    for value in sizes.values():
        size = _height_width(value)
        if size is not None:
            return {1: (size[1], size[0])}
    width_height = metadata.get("imgsize_wh")
    if isinstance(width_height, list) and len(width_height) >= 2:
        numbers = _floats(width_height[:2])
        if numbers is not None:
            return {1: (numbers[0], numbers[1])}
    return {}


def _height_width(value: object) -> tuple[float, float] | None:
    if not value or not isinstance(value, (list, tuple)) or len(value) < 2:
        return None
    numbers = _floats(value[:2])
    return None if numbers is None else (numbers[0], numbers[1])


def _floats(values: Iterable[object]) -> list[float] | None:
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError, OverflowError):
        return None


def _page_number(value: object) -> int | None:
    """The item's 1-based page (rule 1); None where the official code would raise."""
    try:
        if value is None:
            return 1
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                return 1
        return int(value) if value else 1
    except (TypeError, ValueError, OverflowError):
        return None


def _xyxy(value: object, *, yxyx: bool) -> tuple[float, float, float, float] | None:
    """``[x1, y1, x2, y2]`` (``[y1, x1, y2, x2]`` when ``yxyx``) or a polygon's envelope; None if neither."""
    if not value or not isinstance(value, list):
        return None
    if len(value) >= 2 and all(isinstance(point, (list, tuple)) and len(point) >= 2 for point in value):
        xs, ys = _floats(point[0] for point in value), _floats(point[1] for point in value)
        return None if xs is None or ys is None else (min(xs), min(ys), max(xs), max(ys))
    if len(value) == 4 and all(isinstance(number, (int, float)) for number in value):
        numbers = _floats(value)
        if numbers is None:
            return None
        return (numbers[1], numbers[0], numbers[3], numbers[2]) if yxyx else tuple(numbers)
    return None


def _to_pixels(box: Sequence[float], *, size: tuple[float, float], coord_format: str) -> PixelBox:
    if coord_format == "pixel":
        return box[0], box[1], box[2], box[3]
    width, height = size
    return box[0] / 1000 * width, box[1] / 1000 * height, box[2] / 1000 * width, box[3] / 1000 * height


def _has_area(box: PixelBox) -> bool:
    return box[2] > box[0] and box[3] > box[1]


def boxes_by_page(*, items: Sequence[object], page_sizes: PageSizes, coord_format: str = "auto",
                  yxyx: bool = False) -> tuple[dict[int, list[PixelBox]], dict[int, list[PixelBox]]]:
    """Question boxes and step boxes of each 1-based page, in page pixels, kept by rules 1 and 7."""
    titles: dict[int, list[PixelBox]] = {}
    steps_found: dict[int, list[PixelBox]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind is None and isinstance(item.get("type_2d"), str):
            kind = item["type_2d"]
        if kind != ANSWER_TYPE:
            continue
        page = _page_number(item.get("page"))
        size = page_sizes.get(page, (0.0, 0.0)) if page is not None else (0.0, 0.0)
        box = _xyxy(item.get("box_2d"), yxyx=yxyx)
        if size[0] <= 0 or size[1] <= 0 or box is None:
            continue
        title = _to_pixels(box, size=size, coord_format=coord_format)
        if _has_area(title):
            titles.setdefault(page, []).append(title)
        steps = item.get("steps")
        for step in steps if isinstance(steps, list) else []:
            step_box = _xyxy(step.get("box_2d"), yxyx=yxyx) if isinstance(step, dict) else None
            if step_box is not None:
                pixels = _to_pixels(step_box, size=size, coord_format=coord_format)
                if _has_area(pixels):
                    steps_found.setdefault(page, []).append(pixels)
    return titles, steps_found


# --------------------------------------------------------------------------------------------
# Matching and scores


def pixel_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes in the same units (0 without overlap)."""
    overlap = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    if overlap <= 0:
        return 0.0
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


def boxes_match(*, gold: Sequence[Sequence[float]], pred: Sequence[Sequence[float]],
                min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of one page's boxes (same units): ``(gold index, pred index)`` pairs.

    Pairs with IoU >= ``min_iou`` are taken by IoU descending, equal IoUs from the highest gold index
    and then the highest prediction index (rule 6), skipping boxes already matched.
    """
    candidates = []
    for i, g in enumerate(gold):
        for j, p in enumerate(pred):
            iou = pixel_iou(g, p)
            if iou >= min_iou:
                candidates.append((iou, i, j))
    gold_used: set[int] = set()
    pred_used: set[int] = set()
    matches = []
    for _, i, j in sorted(candidates, reverse=True):
        if i not in gold_used and j not in pred_used:
            gold_used.add(i)
            pred_used.add(j)
            matches.append((i, j))
    return matches


def _counts(gold: Sequence[PixelBox], pred: Sequence[PixelBox], min_iou: float) -> tuple[int, int, int]:
    tp = len(boxes_match(gold=gold, pred=pred, min_iou=min_iou))
    return tp, len(pred) - tp, len(gold) - tp


def _f1(tp: int, fp: int, fn: int) -> float:
    # Precision and recall first, as the official code computes it, so that rounding agrees to the last digit.
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _items(value: str | list, *, strict: bool) -> list | None:
    """The items of a gold or predicted value (text is parsed by ``reply_parse``); None when ``strict``
    and the value is not a schema-valid box list."""
    if isinstance(value, list):
        items: list | None = value
    elif isinstance(value, str):
        items = reply_array(text=value) if strict else reply_parse(text=value)
    else:
        items = None if strict else []
    if strict:
        try:
            hgbench_read(value=items)
        except BoxFormatError:
            return None
    return items


def sample_score(*, sample: Sample, config: EvalConfig = EvalConfig()) -> SampleScore:
    """One sample's scores by rules 1-7 (module docstring); ``success`` False for a failed sample."""
    if isinstance(sample.pred, str) and sample.pred.strip() == config.fail_str:
        return SampleScore(success=False)
    if not sample.present or (config.honour_success and not sample.success):
        return SampleScore(success=False)
    pred_items = _items(sample.pred, strict=config.strict_schema)
    if pred_items is None:
        return SampleScore(success=False)
    gold_titles, gold_steps = boxes_by_page(items=_items(sample.gt, strict=False), page_sizes=sample.page_sizes,
                                            coord_format=config.coord_format, yxyx=config.gt_box_yxyx)
    pred_titles, pred_steps = boxes_by_page(items=pred_items, page_sizes=sample.page_sizes,
                                            coord_format=config.coord_format, yxyx=config.pred_box_yxyx)
    pages = sorted(gold_titles.keys() | pred_titles.keys() | gold_steps.keys() | pred_steps.keys())
    if not pages:
        return SampleScore(success=True)
    # Running totals, not sum(): Python 3.12's sum() of floats rounds differently from the official +=.
    title_total = step_total = composite_total = 0.0
    gold_step_counts = (0, 0, 0)
    for page in pages:
        title_f1 = _f1(*_counts(gold_titles.get(page, []), pred_titles.get(page, []), config.iou_thr))
        step_counts = _counts(gold_steps.get(page, []), pred_steps.get(page, []), config.iou_thr)
        step_f1 = _f1(*step_counts)
        weight = config.step_weight
        title_total += title_f1
        step_total += step_f1
        composite_total += title_f1 if sum(step_counts) == 0 else (1.0 - weight) * title_f1 + weight * step_f1
        if gold_steps.get(page):
            gold_step_counts = tuple(total + count for total, count in zip(gold_step_counts, step_counts, strict=True))
    return SampleScore(success=True, composite=composite_total / len(pages), title_f1=title_total / len(pages),
                       step_f1=step_total / len(pages), step_counts=gold_step_counts,
                       has_gold_step=any(gold_steps.get(page) for page in pages))


def dataset_scores(*, samples: Sequence[Sample], config: EvalConfig = EvalConfig()) -> dict[str, float | int]:
    """The official result keys over ``samples`` (module docstring for units); gold samples without a
    prediction (``present`` False) are left out unless ``missing_as_failure``."""
    scored = [sample_score(sample=sample, config=config) for sample in samples
              if sample.present or config.missing_as_failure]
    parsed = [score for score in scored if score.success]
    tp, fp, fn = (sum(score.step_counts[k] for score in parsed) for k in range(3))
    macro = [score.step_f1 for score in parsed if score.has_gold_step]

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    return {
        "report": round(100.0 * mean([score.composite for score in parsed]), 2),
        "title_f1": round(100.0 * mean([score.title_f1 for score in parsed]), 2),
        "step_f1_micro_gt_step_pages": round(100.0 * _f1(tp, fp, fn), 2) if parsed else 0.0,
        "step_f1_macro_gt_step_samples": round(100.0 * mean(macro), 2),
        "success_rate": round(len(parsed) / len(scored), 4) if scored else 0.0,
        "report_all": round(100.0 * sum(score.composite for score in scored) / len(scored), 2) if scored else 0.0,
        "num_total": len(scored),
        "num_success": len(parsed),
    }


# --------------------------------------------------------------------------------------------
# Files


def jsonl_read(*, data: str | bytes, name: str = "file") -> list[dict]:
    """The objects of a JSON Lines text (blank lines skipped). Raises ``ValueError`` naming the line."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{name} line {number}: not JSON ({error})") from error
        if not isinstance(record, dict):
            raise ValueError(f"{name} line {number}: expected an object")
        records.append(record)
    return records


def _metadata(record: dict, *, where: str) -> dict:
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: metadata must be an object")
    metadata = dict(metadata)
    for key in ("media_map", "media_size", "media_type"):
        if key in record and key not in metadata:
            metadata[key] = record[key]
    return metadata


def _reply(record: dict) -> str | list:
    value = record.get("predict", "") or record.get("model_response", "") or ""
    return value if isinstance(value, (str, list)) else ""


def samples_merge(*, gt: Sequence[dict], pred: Sequence[dict]) -> tuple[list[Sample], int]:
    """Samples of GT and PRED records joined by uuid (one per prediction line), gold samples without a
    prediction last (``present`` False), and the number of prediction uuids not in GT."""
    gold: dict[Any, tuple[str | list, dict]] = {}
    for number, record in enumerate(gt, 1):
        uuid = record.get("uuid")
        if not uuid or not isinstance(uuid, (str, int, float)):
            continue
        metadata = _metadata(record, where=f"gt line {number}")
        answer = metadata.get("answer", "") or record.get("answer", "") or ""
        gold[uuid] = (answer if isinstance(answer, (str, list)) else "", page_sizes_read(metadata=metadata))
    samples, unknown, seen = [], 0, set()
    for record in pred:
        uuid = record.get("uuid")
        if not isinstance(uuid, (str, int, float)) or uuid not in gold:
            unknown += 1
            continue
        seen.add(uuid)
        answer, sizes = gold[uuid]
        samples.append(Sample(gt=answer, pred=_reply(record), page_sizes=sizes, uuid=str(uuid),
                              success=record.get("success", True) is not False))
    samples += [Sample(gt=answer, pred="", page_sizes=sizes, uuid=str(uuid), present=False)
                for uuid, (answer, sizes) in gold.items() if uuid not in seen]
    return samples, unknown


def samples_combined(*, records: Sequence[dict]) -> list[Sample]:
    """Samples of a combined file: each record carries ``answer`` (top level or in metadata) and ``predict``."""
    samples = []
    for number, record in enumerate(records, 1):
        metadata = _metadata(record, where=f"line {number}")
        answer = record.get("answer", "") or metadata.get("answer", "") or ""
        samples.append(Sample(gt=answer if isinstance(answer, (str, list)) else "", pred=_reply(record),
                              page_sizes=page_sizes_read(metadata=metadata), uuid=str(record.get("uuid", number)),
                              success=record.get("success", True) is not False))
    return samples


def boxes_sample(*, gold: list[dict], pred: list[dict] | str, page_sizes: Sequence[tuple[int, int]],
                 uuid: str = "") -> Sample:
    """A sample from the app's HG-Bench box lists (``ml.boxes.hgbench_dump``, 0-1000 grid, 1-based pages)
    or a raw reply, with the template's ``page_sizes`` ((width, height) pixels, 0-based list)."""
    return Sample(gt=gold, pred=pred, page_sizes={page: size for page, size in enumerate(page_sizes, 1)}, uuid=uuid)


def scores_report(scores: Mapping[str, float | int]) -> str:
    """The scores as the official evaluator prints them."""
    return "\n".join([
        "HG-Bench evaluation results",
        "=" * 50,
        f"  N (total)              : {scores['num_total']}",
        f"  N (parse-success)      : {scores['num_success']}",
        f"  Succ%                  : {scores['success_rate'] * 100:.2f}",
        "-" * 50,
        f"  F_A   (title_f1)       : {scores['title_f1']:.2f}",
        f"  F_S^mu (micro_gt_pages): {scores['step_f1_micro_gt_step_pages']:.2f}",
        f"  F_S^M  (macro_gt_samples): {scores['step_f1_macro_gt_step_samples']:.2f}",
        f"  S_bar (report_all)     : {scores['report_all']:.2f}",
        f"  report (success-only)  : {scores['report']:.2f}",
        "=" * 50,
    ])


def main(argv: list[str] | None = None) -> int:
    """Command line (``--help``). Exit status 0, 1 when there is no sample, 2 on unreadable files or flags."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.grounding_eval",
        description="HG-Bench grounding metrics, scored as the official evaluate.py does (same files, flags, keys).")
    parser.add_argument("--pred", type=Path, help="predictions JSONL (each line: uuid, predict)")
    parser.add_argument("--gt", type=Path,
                        help="ground-truth JSONL (each line: uuid, metadata.answer/media_size/media_map)")
    parser.add_argument("--combined", type=Path, help="JSONL with both 'answer' (GT) and 'predict' on each line")
    parser.add_argument("--iou-thr", type=float, default=MIN_IOU, help="IoU threshold for a match (default 0.5)")
    parser.add_argument("--step-weight", type=float, default=COMPOSITE_STEP_WEIGHT,
                        help="step F1 share of a page's composite (default 0.5)")
    parser.add_argument("--coord-format", choices=COORD_FORMATS, default="auto",
                        help='"auto": boxes on the 0-1000 grid (default); "pixel": page pixels')
    parser.add_argument("--gt-box-yxyx", action="store_true", help="GT box_2d is [ymin, xmin, ymax, xmax]")
    parser.add_argument("--pred-box-yxyx", action="store_true", help="prediction box_2d is [ymin, xmin, ymax, xmax]")
    parser.add_argument("--fail-str", default=DEFAULT_FAIL_STR, help="reply marking a failed sample (default FAIL_STR)")
    parser.add_argument("--out", type=Path, help="also write the scores as JSON (the official keys) to this file")
    strict = parser.add_argument_group("stricter than the official code (the paper's wording), off by default")
    strict.add_argument("--strict-schema", action="store_true",
                        help="a reply fails unless it is a JSON array of schema-valid boxes (page, box_2d, step_id)")
    strict.add_argument("--honour-success", action="store_true", help='a prediction line with "success": false fails')
    strict.add_argument("--missing-as-failure", action="store_true",
                        help="GT samples without a prediction line count in N as failures")
    args = parser.parse_args(argv)
    config = EvalConfig(iou_thr=args.iou_thr, step_weight=args.step_weight, coord_format=args.coord_format,
                        gt_box_yxyx=args.gt_box_yxyx, pred_box_yxyx=args.pred_box_yxyx, fail_str=args.fail_str,
                        strict_schema=args.strict_schema, honour_success=args.honour_success,
                        missing_as_failure=args.missing_as_failure)
    try:
        if args.combined:
            samples = samples_combined(records=jsonl_read(data=args.combined.read_bytes(), name=str(args.combined)))
        elif args.pred and args.gt:
            samples, unknown = samples_merge(gt=jsonl_read(data=args.gt.read_bytes(), name=str(args.gt)),
                                             pred=jsonl_read(data=args.pred.read_bytes(), name=str(args.pred)))
            if unknown:
                print(f"[warning] {unknown} prediction uuids not found in GT", file=sys.stderr)
        else:
            parser.error("give either --combined, or both --pred and --gt")
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if not any(sample.present for sample in samples) and not (config.missing_as_failure and samples):
        print("No samples to evaluate.", file=sys.stderr)
        return 1
    scores = dataset_scores(samples=samples, config=config)
    print(scores_report(scores))
    if args.out:
        args.out.write_text(json.dumps(scores, indent=2, ensure_ascii=False))
        print(f"Saved scores -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
