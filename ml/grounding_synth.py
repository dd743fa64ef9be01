"""Seeded synthetic HG-Bench sets, and a check that ``ml.grounding_eval`` scores them as the official evaluator does.

The official ``evaluate.py`` (public repository hg-bench/hg-bench.github.io) carries no licence, so it is
not shipped here; given a clone, ``python -m ml.grounding_synth --evaluate PATH/evaluate.py`` loads it and
compares every result key on ``--seeds`` seeded sets, in the combined and the split (GT + predictions)
file forms, under several settings (IoU threshold, step weight, yxyx, pixel coordinates). ``--out DIR``
also writes the sets as JSONL for running both command lines by hand.

A set holds multi-page samples with question and step boxes (pages of random sizes, 0-1000 grid) and
predictions made from the gold by jitter around IoU 0.5, missed, extra and duplicated boxes, wrong and
missing pages, pages as text or out of range, foreign or missing types, polygons, zero-area and
malformed boxes, bad steps, and replies fenced, prefixed with thinking, cut off, wrapped in prose or
special tokens, empty, ``[]``, an object instead of a list, or the fail sentinel.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from ml.grounding_eval import EvalConfig, dataset_scores, jsonl_read, samples_combined, samples_merge

SETTINGS: tuple[dict, ...] = (
    {}, {"iou_thr": 0.3}, {"iou_thr": 0.75, "step_weight": 0.3}, {"pred_box_yxyx": True},
    {"gt_box_yxyx": True, "pred_box_yxyx": True}, {"coord_format": "pixel"}, {"iou_thr": 0.0},
)


def _box(rng: random.Random) -> list[int]:
    x, y = rng.randint(0, 800), rng.randint(0, 800)
    return [x, y, min(1000, x + rng.randint(20, 200)), min(1000, y + rng.randint(10, 150))]


def _jittered(rng: random.Random, box: list[int]) -> list[int]:
    """The box shifted by a share of its size chosen so that IoUs fall on both sides of 0.5 (1/3 gives 0.5)."""
    width, height = box[2] - box[0], box[3] - box[1]
    share = rng.choice([0, 0.1, 0.2, 0.3, 1 / 3, 0.34, 0.5])
    dx = round(width * share) * rng.choice([1, -1]) if rng.random() < 0.7 else 0
    dy = round(height * share) * rng.choice([1, -1]) if rng.random() < 0.5 else 0
    return [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy]


def _gold(rng: random.Random) -> tuple[list[dict], int]:
    pages = rng.choice([1, 1, 2, 3])
    items = []
    for page in range(1, pages + 1):
        for _ in range(rng.randint(0, 4)):
            item = {"type": "complete_answer_box", "page": page, "box_2d": _box(rng)}
            if rng.random() < 0.5:
                item["steps"] = [{"step_id": k, "box_2d": _box(rng)} for k in range(1, rng.randint(1, 4))]
            items.append(item)
    return items, pages


def _polygon(box: list) -> list:
    """The four corners of a box, as models that answer with polygons write them."""
    return [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]


def _damaged(rng: random.Random, item: dict, pages: int) -> dict:
    """One predicted item from a gold one, with the faults a model makes."""
    pred = {"type": "complete_answer_box", "page": item["page"], "box_2d": _jittered(rng, item["box_2d"])}
    if "steps" in item and rng.random() < 0.8:
        pred["steps"] = [{"step_id": step["step_id"], "box_2d": _jittered(rng, step["box_2d"])}
                         for step in item["steps"] if rng.random() < 0.85]
    faults = [
        (0.10, lambda: pred.update(steps=[{"step_id": 1, "box_2d": _box(rng)}])),
        (0.08, lambda: pred.pop("page")),
        (0.05, lambda: pred.update(page=str(pred.get("page", 1)))),
        (0.05, lambda: pred.update(page=rng.choice([0, pages + 1, "x", 1.7, None, -1]))),
        (0.05, lambda: pred.update(type=rng.choice(["answer", "step_box", None]))),
        (0.05, lambda: (pred.pop("type", None), pred.update(type_2d="complete_answer_box"))),
        (0.04, lambda: pred.update(box_2d=_polygon(pred["box_2d"]))),
        (0.04, lambda: pred.update(box_2d=[*pred["box_2d"][:2], pred["box_2d"][0], pred["box_2d"][3]])),
        (0.03, lambda: pred.update(box_2d=pred["box_2d"][:3])),
        (0.03, lambda: pred.update(box_2d=[str(value) for value in pred["box_2d"]])),
        (0.03, lambda: pred["steps"][0].pop("step_id") if pred.get("steps") else None),
        (0.03, lambda: pred.update(steps="none")),
    ]
    for chance, fault in faults:
        if rng.random() < chance:
            fault()
    return pred


def _reply(rng: random.Random, items: list[dict]) -> str:
    text = json.dumps(items, indent=rng.choice([None, 2]))
    forms = [
        (0.08, lambda t: "```json\n" + t + "\n```"), (0.04, lambda t: "reasoning [1, 2] </think>" + t),
        (0.04, lambda t: t[: rng.randint(1, len(t))]), (0.03, lambda t: "FAIL_STR"), (0.02, lambda t: ""),
        (0.02, lambda t: "Here: " + t), (0.02, lambda t: "<|begin_of_box|>" + t + "<|end_of_box|>"),
        (0.02, lambda t: "[]"), (0.02, lambda t: json.dumps({"boxes": items})),
    ]
    draw = rng.random()
    for chance, form in forms:
        if draw < chance:
            return form(text)
        draw -= chance
    return text


def synthetic_records(*, seed: int, samples: int) -> list[dict]:
    """Combined-format records (``uuid``, ``metadata`` with ``answer``/``media_size``/``media_map``, ``predict``)."""
    rng = random.Random(seed)
    records = []
    for number in range(samples):
        gold, pages = _gold(rng)
        pred = []
        for item in gold:
            if rng.random() < 0.15:
                continue
            pred.append(_damaged(rng, item, pages))
            if rng.random() < 0.08:
                pred.append(json.loads(json.dumps(pred[-1])))
        pred += [{"type": "complete_answer_box", "page": rng.randint(1, pages + 1), "box_2d": _box(rng)}
                 for _ in range(rng.choice([0, 0, 1, 2]))]
        if rng.random() < 0.1:  # repeated boxes make equal IoUs, where tie order matters
            pred += [dict(item) for item in pred[:2]]
        sizes = {f"img{page}": [rng.randint(800, 4000), rng.randint(600, 3000)] for page in range(1, pages + 1)}
        metadata = {"media_size": sizes, "media_map": {key: ["id", "file.jpg"] for key in sizes},
                    "answer": json.dumps(gold)}
        if rng.random() < 0.1:
            del metadata["media_map"]
        records.append({"uuid": f"s{seed}-{number}", "metadata": metadata, "predict": _reply(rng, pred)})
    return records


def jsonl_write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def official_load(path: Path) -> ModuleType:
    """The official evaluate.py as a module (``load_combined``, ``merge_gt_pred``, ``evaluate_dataset``)."""
    spec = importlib.util.spec_from_file_location("hgbench_official_evaluate", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parity_check(*, official: ModuleType, seeds: range, samples: int, folder: Path) -> list[str]:
    """Every difference between the official results and ours on the seeded sets, one line each (none: parity).

    Each set is written to ``folder`` in the combined form and split into GT and predictions, with every
    seventh sample left out of the predictions (outside N in both).
    """
    differences = []
    for seed in seeds:
        records = synthetic_records(seed=seed, samples=samples)
        combined, gt, pred = (folder / f"{seed}-{name}.jsonl" for name in ("combined", "gt", "pred"))
        jsonl_write(combined, records)
        jsonl_write(gt, [{"uuid": r["uuid"], "metadata": r["metadata"]} for r in records])
        jsonl_write(pred, [{"uuid": r["uuid"], "predict": r["predict"]} for n, r in enumerate(records) if n % 7])
        for setting in SETTINGS:
            config = EvalConfig(**setting)
            pairs = [
                ("combined", official.load_combined(combined),
                 samples_combined(records=jsonl_read(data=combined.read_bytes()))),
                ("gt+pred", official.merge_gt_pred(official._read_jsonl(gt), official._read_jsonl(pred)),
                 samples_merge(gt=jsonl_read(data=gt.read_bytes()), pred=jsonl_read(data=pred.read_bytes()))[0]),
            ]
            for form, theirs, ours in pairs:
                expected = official.evaluate_dataset(theirs, **setting)
                got = dataset_scores(samples=ours, config=config)
                if expected != got:
                    differences.append(f"seed {seed} {form} {setting}: official {expected}, ours {got}")
    return differences


def main(argv: list[str] | None = None) -> int:
    """Command line (``--help``); exit status 1 when any result differs from the official one."""
    parser = argparse.ArgumentParser(prog="python -m ml.grounding_synth", description=__doc__.splitlines()[0])
    parser.add_argument("--evaluate", type=Path,
                        help="the official evaluate.py (from a clone of hg-bench/hg-bench.github.io)")
    parser.add_argument("--seeds", type=int, default=40, help="how many seeded sets (default 40)")
    parser.add_argument("--samples", type=int, default=360, help="samples per set (default 360)")
    parser.add_argument("--out", type=Path, help="keep the sets (JSONL: combined, gt, pred per seed) in this folder")
    args = parser.parse_args(argv)
    if args.evaluate is None and args.out is None:
        parser.error("give --evaluate to compare with the official evaluator, --out to write the sets, or both")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if args.evaluate is None:
            for seed in range(args.seeds):
                records = synthetic_records(seed=seed, samples=args.samples)
                jsonl_write(folder / f"{seed}-combined.jsonl", records)
            print(f"wrote {args.seeds} sets of {args.samples} samples to {folder}")
            return 0
        try:
            official = official_load(args.evaluate)
        except (OSError, ValueError, SyntaxError) as error:
            parser.error(f"cannot load {args.evaluate}: {error}")
        differences = parity_check(official=official, seeds=range(args.seeds), samples=args.samples, folder=folder)
    checks = args.seeds * len(SETTINGS) * 2
    print("\n".join(differences) if differences else
          f"all {checks} results equal the official evaluator's ({args.seeds} sets of {args.samples} samples, "
          f"{len(SETTINGS)} settings, combined and gt+pred files)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
