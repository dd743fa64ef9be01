"""HG-Bench evaluation of answer-region grounding (seed 004): page-aware matching, F_A, F_S, parse success
and the composite score, as a library and as ``python -m ml.grounding_eval --gold G --pred P [--json]``.

Boxes are ``[x1, y1, x2, y2]`` on the 0-1000 grid of their page (HG-Bench lists, ``ml.boxes``), pages 1-based.

Matching (paper, Sec. 5.1)
    "Within each page, we perform greedy one-to-one matching between ground-truth boxes G and
    predicted boxes P ... we filter out all candidate pairs (g, p) with IoU(g, p) < 0.5. The
    remaining pairs are sorted in descending order of IoU and assigned greedily, so that each box
    participates in at most one match." A pair at exactly 0.5 is kept; equal IoUs are taken in gold
    then prediction list order. Question boxes are matched with question boxes; step boxes with
    step boxes of the same page, all of the page's steps together and whichever parent they
    belong to, since the paper matches per page and never within matched parents. Per page,
    TP = matches, FP = predictions - TP, FN = gold - TP, F1 = 2 TP / (2 TP + FP + FN).

Metrics (Sec. 5.2 and App. D), fractions in [0, 1] here; the paper prints them x100
    F_A  "F1 score per page ... average within each multi-page sample, and report the macro-average
         across all successfully evaluated samples": F_A = mean over parsed samples s of the mean
         over pages m in M_s of F1_A(s, m). The paper leaves M_s ("the set of pages within sample
         s") to the page images, which these files do not list, so M_s here is every page with a
         gold or a predicted question box: a box put on a page without gold boxes makes that page
         score 0. A sample with no box in gold or prediction scores 1.
    F_S micro  "accumulate step-level TP, FP, and FN counts globally across all pages whose ground
         truth contains at least one step box and compute a single unified F1": step boxes
         predicted on pages without gold steps are not counted.
    F_S macro  "Restricted to the subset of samples that contain at least one step box in ground
         truth, we compute the per-sample step F1 (averaging per-page step F1 within each sample)
         and then take the unweighted mean over all such samples": the per-page average runs over
         the sample's step-bearing pages, the pages F_S micro counts.
    Both F_S figures, like F_A, cover parsed samples only. The paper does not say so for F_S, but
    its Table 2 implies it: the snapshot that parsed 49.4% of samples scores a higher F_S than the
    one that parsed 99.8%, which counting failures as misses could not give.
    Parse success  "The fraction of the N samples on which the model's response ... yields a
         structurally valid JSON array conforming to the prescribed schema": a prediction parses
         when it is a box list, or text from which ``hgbench_parse_lenient`` recovers one, and the
         list passes ``ml.boxes.hgbench_read`` (page, box_2d of four numbers, steps with step_id).
         One bad item fails the sample. A sample absent from the predictions is a failure.
    Composite S  "the average of the per-sample composite (a weighted combination of question-level
         and step-level page F1 ...) over all 500 samples", failed samples counting 0. The paper
         gives no weights; here a page's composite is F1_A on pages without gold steps and
         (1 - w) F1_A + w F1_S on step-bearing pages, w = ``step_weight`` (0.5 by default), and a
         sample's is the mean over M_s (1 when M_s is empty).
    A metric whose set is empty (no parsed sample, no step-bearing page or sample) is None.

Not implemented from the paper: the retry after a parse failure (the app's caller owns the model),
yxyx auto-detection and polygon boxes (``box_2d`` must be four numbers in x1, y1, x2, y2 order).

Files for the command line (``samples_load``): a JSON object ``{"<sample id>": value}`` or a list
``[{"id": ..., "boxes": value}]`` (ids compared as text). In GOLD a value is an HG-Bench box list; in
PRED it may also be the model's raw reply as a string. Predictions for ids not in GOLD are ignored.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml.boxes import BoxFormatError, HGBenchBox, box_iou, hgbench_read

MIN_IOU = 0.5
COMPOSITE_STEP_WEIGHT = 0.5

# Where a list of objects may open: "[{" or "[]", spaces allowed. Brackets in prose ("[0, 1000]")
# and coordinate lists do not qualify.
_ARRAY_START = re.compile(r"\[\s*[{\]]")

Counts = tuple[int, int, int]  # TP, FP, FN


@dataclass(frozen=True)
class GroundingScores:
    """HG-Bench scores as fractions in [0, 1] (None when undefined, see the module docstring) and their counts.

    ``answer_f1`` is F_A, ``step_f1_micro`` F_S micro, ``step_f1_macro`` F_S macro, ``parse_success``
    Succ and ``composite`` the unified score S. ``samples`` counts gold samples, ``parsed`` those whose
    prediction parsed, ``missing`` those with no prediction. TP/FP/FN are summed over parsed samples:
    question boxes on every page, step boxes on the ``step_pages`` step-bearing pages of the
    ``step_samples`` step-bearing samples.
    """

    answer_f1: float | None
    step_f1_micro: float | None
    step_f1_macro: float | None
    parse_success: float
    composite: float
    samples: int
    parsed: int
    missing: int
    answer_tp: int
    answer_fp: int
    answer_fn: int
    step_pages: int
    step_samples: int
    step_tp: int
    step_fp: int
    step_fn: int


@dataclass(frozen=True)
class _SampleScore:
    answer_f1: float
    composite: float
    answer_counts: Counts
    step_counts: tuple[Counts, ...]  # one per step-bearing page


def boxes_match(*, gold: Sequence[Sequence[float]], pred: Sequence[Sequence[float]],
                min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of boxes of one page (one space): ``(gold index, pred index)`` pairs.

    Pairs with IoU >= ``min_iou`` are taken in descending IoU, ties in gold then prediction order,
    skipping pairs whose gold or prediction is already matched.
    """
    pairs = sorted((-box_iou(g, p), i, j) for i, g in enumerate(gold) for j, p in enumerate(pred))
    gold_used: set[int] = set()
    pred_used: set[int] = set()
    matches = []
    for negative_iou, i, j in pairs:
        if -negative_iou < min_iou:
            break
        if i not in gold_used and j not in pred_used:
            gold_used.add(i)
            pred_used.add(j)
            matches.append((i, j))
    return matches


def _counts(gold: Sequence[Sequence[float]], pred: Sequence[Sequence[float]]) -> Counts:
    tp = len(boxes_match(gold=gold, pred=pred))
    return tp, len(pred) - tp, len(gold) - tp


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn)


def _summed(counts: Sequence[Counts]) -> Counts:
    return sum(c[0] for c in counts), sum(c[1] for c in counts), sum(c[2] for c in counts)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pages(items: Sequence[HGBenchBox]) -> dict[int, tuple[list[Sequence[float]], list[Sequence[float]]]]:
    """Question boxes and step boxes of each page."""
    pages: dict[int, tuple[list[Sequence[float]], list[Sequence[float]]]] = {}
    for item in items:
        answers, steps = pages.setdefault(item.page, ([], []))
        answers.append(item.box_2d)
        steps.extend(step.box_2d for step in item.steps)
    return pages


def _sample_score(gold: Sequence[HGBenchBox], pred: Sequence[HGBenchBox], *, step_weight: float) -> _SampleScore:
    gold_pages, pred_pages = _pages(gold), _pages(pred)
    answer_f1s, composites, answer_counts, step_counts = [], [], [], []
    for page in sorted(gold_pages.keys() | pred_pages.keys()):
        gold_answers, gold_steps = gold_pages.get(page, ([], []))
        pred_answers, pred_steps = pred_pages.get(page, ([], []))
        answer_counts.append(_counts(gold_answers, pred_answers))
        answer_f1 = _f1(*answer_counts[-1])
        answer_f1s.append(answer_f1)
        if gold_steps:
            step_counts.append(_counts(gold_steps, pred_steps))
            composites.append((1 - step_weight) * answer_f1 + step_weight * _f1(*step_counts[-1]))
        else:
            composites.append(answer_f1)
    return _SampleScore(answer_f1=_mean(answer_f1s) if answer_f1s else 1.0,
                        composite=_mean(composites) if composites else 1.0,
                        answer_counts=_summed(answer_counts), step_counts=tuple(step_counts))


def _gold_items(sample_id: str, value: object) -> list[HGBenchBox]:
    try:
        return hgbench_read(value=value)
    except BoxFormatError as error:
        raise ValueError(f"gold sample {sample_id!r}: {'; '.join(error.problems)}") from error


def _pred_items(value: object) -> list[HGBenchBox] | None:
    """The predicted boxes, or None when the prediction does not parse."""
    if isinstance(value, str):
        value = hgbench_parse_lenient(text=value)
    try:
        return hgbench_read(value=value)
    except BoxFormatError:
        return None


def grounding_scores(*, gold: Mapping[str, list[dict]], pred: Mapping[str, list[dict] | str],
                     step_weight: float = COMPOSITE_STEP_WEIGHT) -> GroundingScores:
    """Score predictions against gold, both ``{sample id: HG-Bench box list}`` (0-1000 grid, 1-based pages).

    A prediction may also be a model's raw reply (a string), parsed by ``hgbench_parse_lenient``.
    ``step_weight`` is the step share of a step-bearing page's composite. Raises ``ValueError`` for
    an empty or malformed gold. See the module docstring for every definition.
    """
    if not gold:
        raise ValueError("gold has no samples")
    scored: list[_SampleScore] = []
    missing = 0
    for sample_id, gold_value in gold.items():
        gold_items = _gold_items(sample_id, gold_value)
        if sample_id not in pred:
            missing += 1
            continue
        pred_items = _pred_items(pred[sample_id])
        if pred_items is not None:
            scored.append(_sample_score(gold_items, pred_items, step_weight=step_weight))
    step_pages = [counts for score in scored for counts in score.step_counts]
    step_tp, step_fp, step_fn = _summed(step_pages)
    answer_tp, answer_fp, answer_fn = _summed([score.answer_counts for score in scored])
    step_samples = [score for score in scored if score.step_counts]
    return GroundingScores(
        answer_f1=_mean([score.answer_f1 for score in scored]),
        step_f1_micro=_f1(step_tp, step_fp, step_fn) if step_pages else None,
        step_f1_macro=_mean([sum(_f1(*counts) for counts in score.step_counts) / len(score.step_counts)
                             for score in step_samples]),
        parse_success=len(scored) / len(gold),
        composite=sum(score.composite for score in scored) / len(gold),
        samples=len(gold), parsed=len(scored), missing=missing,
        answer_tp=answer_tp, answer_fp=answer_fp, answer_fn=answer_fn,
        step_pages=len(step_pages), step_samples=len(step_samples),
        step_tp=step_tp, step_fp=step_fp, step_fn=step_fn,
    )


# --------------------------------------------------------------------------------------------
# Lenient parsing of model replies


def hgbench_parse_lenient(*, text: str) -> list[dict] | None:
    """The JSON array of objects in a model's reply, repaired where models break it; None when there is none.

    The array is the first ``[{`` or ``[]`` (spaces allowed) that parses after these repairs, so code
    fences and prose before and after it do no harm: single-quoted strings become double-quoted,
    trailing commas are dropped, and a reply cut off inside the array keeps the items completed
    before the cut (a cut before the first item ends gives None). The schema is not checked here
    (``ml.boxes.hgbench_read`` does that).
    """
    start = 0
    while (opening := _ARRAY_START.search(text, start)) is not None:
        repaired, start = _repaired(text, opening.start())
        try:
            value = json.loads(repaired, strict=False) if repaired is not None else None
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
    return None


def _repaired(text: str, start: int) -> tuple[str | None, int]:
    """The bracketed value opening at ``text[start]`` rewritten as strict JSON, and the index just past it.

    The text is None when the value is cut off before any of its items is complete. Candidates
    inside a value that failed are never tried, which keeps a broken reply from yielding one of
    its inner ``steps`` lists and keeps the search linear.
    """
    out: list[str] = []
    depth = 0
    quote: str | None = None  # the quote character of the string being read
    item_end: int | None = None  # len(out) after the last complete top-level item
    position = start
    while position < len(text):
        char = text[position]
        position += 1
        if quote is not None:
            if char == "\\" and position < len(text):
                escaped = text[position]
                position += 1
                # JSON has no \' escape: in a single-quoted string it only stood for the quote.
                out.append("'" if escaped == "'" else char + escaped)
            elif char == quote:
                quote = None
                out.append('"')
            else:
                out.append('\\"' if char == '"' else char)  # a bare " is only possible inside '...'
        elif char in "\"'":
            quote = char
            out.append('"')
        elif char in "[{":
            depth += 1
            out.append(char)
        elif char in "]}":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
            out.append(char)
            depth -= 1
            if depth == 0:
                return "".join(out), position
            if depth == 1:
                item_end = len(out)
        else:
            out.append(char)
    return (None if item_end is None else "".join(out[:item_end]) + "]"), position


# --------------------------------------------------------------------------------------------
# Command line


def samples_load(*, data: str | bytes) -> dict[str, Any]:
    """``{sample id: value}`` from a GOLD or PRED file (``{"id": value}`` or ``[{"id": ..., "boxes": value}]``).

    Values are returned unchecked; ``grounding_scores`` checks them. Raises ``ValueError`` for
    invalid JSON, another shape, or a repeated id.
    """
    decoded = json.loads(data)
    if isinstance(decoded, dict):
        return decoded
    if not isinstance(decoded, list):
        raise ValueError('expected {"<id>": boxes} or [{"id": ..., "boxes": ...}]')
    samples: dict[str, Any] = {}
    for number, entry in enumerate(decoded, 1):
        if not isinstance(entry, dict) or "id" not in entry or "boxes" not in entry:
            raise ValueError(f'entry {number}: expected {{"id": ..., "boxes": ...}}')
        sample_id = str(entry["id"])
        if sample_id in samples:
            raise ValueError(f"entry {number}: id {sample_id!r} appears twice")
        samples[sample_id] = entry["boxes"]
    return samples


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:6.2f}"


def scores_report(scores: GroundingScores) -> str:
    """The scores as the paper prints them (x100, two decimals), one per line with what it covers."""
    return "\n".join([
        f"F_A            {_percent(scores.answer_f1)}  answer-region F1, macro over {scores.parsed} parsed samples",
        f"F_S micro      {_percent(scores.step_f1_micro)}  step F1 over {scores.step_pages} step-bearing pages "
        f"(TP {scores.step_tp}, FP {scores.step_fp}, FN {scores.step_fn})",
        f"F_S macro      {_percent(scores.step_f1_macro)}  step F1, macro over {scores.step_samples} "
        "step-bearing samples",
        f"parse success  {_percent(scores.parse_success)}  {scores.parsed} of {scores.samples} samples "
        f"({scores.missing} missing from the predictions)",
        f"composite      {_percent(scores.composite)}  over all {scores.samples} samples, failures as 0",
    ])


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m ml.grounding_eval --gold GOLD.json --pred PRED.json [--json] [--step-weight W]``.

    Prints the scores x100 as text, or with ``--json`` the ``GroundingScores`` fields as a JSON
    object (fractions in [0, 1], null when undefined). Exits with status 2 on unreadable files.
    """
    parser = argparse.ArgumentParser(prog="python -m ml.grounding_eval",
                                     description="Score HG-Bench answer-region predictions against gold boxes.")
    parser.add_argument("--gold", type=Path, required=True, help="gold boxes per sample id")
    parser.add_argument("--pred", type=Path, required=True, help="predicted boxes or raw model replies per sample id")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON fractions with their counts")
    parser.add_argument("--step-weight", type=float, default=COMPOSITE_STEP_WEIGHT,
                        help="step share of a step-bearing page's composite (default %(default)s)")
    args = parser.parse_args(argv)
    samples = {}
    for role, path in (("gold", args.gold), ("pred", args.pred)):
        try:
            samples[role] = samples_load(data=path.read_bytes())
        except (OSError, ValueError) as error:
            parser.error(f"{role} file {path}: {error}")
    try:
        scores = grounding_scores(gold=samples["gold"], pred=samples["pred"], step_weight=args.step_weight)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(asdict(scores), indent=2) if args.json else scores_report(scores))


if __name__ == "__main__":
    main()
