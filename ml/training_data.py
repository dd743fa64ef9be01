"""Training data from the teacher's corrections: the files ``manage.py training_data_export`` writes and
the trainers read (``ml.ocr_train`` for the CPU reader, ``ml.train`` for the VLM).

A data folder holds::

    dataset_info.json          LLaMA-Factory's dataset table: markdesk_train / markdesk_val / markdesk_test
    train.json, val.json, test.json
                               page records (seed 000): [{"messages": [
                                   {"role": "user", "content": "<image>" + the VLM engine's own prompt},
                                   {"role": "assistant", "content": "[{\\"index\\": 1, \\"text\\": \\"Na\\"}]"}],
                                 "images": ["pages/e3-s12-p0.png"]}]
    pages/*.png                page images already resized to the VLM's input frame; the prompt's boxes
                               are [x1, y1, x2, y2] pixels of that image (exactly what inference sends)
    crops/train.jsonl, crops/val.jsonl, crops/test.jsonl
                               one answer a line: {"image": "crops/train/a123.png", "text": "Na",
                                 "kind": "text|number|digits|name", "question": "Q1", "script": "e3-s12",
                                 "read": "Nz", "score": 1.0, "max_score": 1.0, "key": ["Na"]}
    crops/*/*.png              the box as placed on the scan (pixels at 150 dpi), frame included: the
                               CPU reader finds the ink in it exactly as when reading

Splits are by script (no script's pages or answers in two splits), seeded. Paths in records are
relative to the folder. Nothing here imports Django.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ml.recognition.base import Region
from ml.recognition.vlm import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    bbox_to_model_frame,
    model_input_size,
    prompt_build,
)

SPLITS = ("train", "val", "test")
DATASET_NAMES = {split: f"markdesk_{split}" for split in SPLITS}


@dataclass(frozen=True)
class LabelledRegion:
    """A box on a page with the text a teacher confirmed for it (``""``: blank)."""

    index: int
    bbox: tuple[int, int, int, int]  # pixels of the page image, [x1, y1, x2, y2]
    text: str


@dataclass(frozen=True)
class CropRecord:
    """One answer for the CPU reader; see the module docstring for the fields."""

    image: str
    text: str
    kind: str
    question: str
    script: str
    read: str = ""
    score: float | None = None
    max_score: float | None = None
    key: tuple[str, ...] = ()


def splits_assign(*, scripts: Sequence[str], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> dict[str, str]:
    """Script -> "train" | "val" | "test", shuffled with ``seed`` in the given proportions (they are
    normalised). With few scripts the validation set gets one before the test set does, since the
    trainers need it to pick their best checkpoint."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three numbers >= 0 with a positive sum, got {ratios}")
    order = sorted(scripts)
    random.Random(seed).shuffle(order)
    total = sum(ratios)
    count = len(order)
    val = round(count * ratios[1] / total)
    test = round(count * ratios[2] / total)
    if ratios[1] > 0 and count >= 2 and val == 0:
        val = 1
    train = max(0, count - val - test)
    result = {}
    for position, script in enumerate(order):
        result[script] = "train" if position < train else ("val" if position < train + val else "test")
    return result


def page_record(*, page: Image.Image, regions: Sequence[LabelledRegion], image_path: str,
                min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[dict, Image.Image]:
    """Seed 000's record for one page and the page image to store at ``image_path``: the image is
    resized to the VLM's input frame (``VlmConfig``'s pixel bounds) and the prompt is built exactly as
    the engine builds it."""
    size = model_input_size(page_size=page.size, min_pixels=min_pixels, max_pixels=max_pixels)
    image = page.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    framed = [Region(index=r.index, bbox=bbox_to_model_frame(bbox=r.bbox, page_size=page.size, resized_size=size))
              for r in regions]
    answer = json.dumps([{"index": r.index, "text": r.text} for r in regions], ensure_ascii=False)
    record = {
        "messages": [
            {"role": "user", "content": "<image>" + prompt_build(regions=framed)},
            {"role": "assistant", "content": answer},
        ],
        "images": [image_path],
    }
    return record, image


def dataset_info() -> dict:
    """LLaMA-Factory's ``dataset_info.json`` entries for the three splits (sharegpt format)."""
    return {
        name: {
            "file_name": f"{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
        for split, name in DATASET_NAMES.items()
    }


def page_records_load(*, folder: Path, split: str) -> list[dict]:
    """The page records of one split (``[]`` when the split has none)."""
    path = Path(folder) / f"{split}.json"
    return json.loads(path.read_text()) if path.exists() else []


def crop_records_load(*, folder: Path, split: str) -> Iterator[CropRecord]:
    """The answers of one split, as :class:`CropRecord` (image paths relative to ``folder``)."""
    path = Path(folder) / "crops" / f"{split}.jsonl"
    if not path.exists():
        return
    with path.open() as handle:
        for line in handle:
            if line.strip():
                data = json.loads(line)
                yield CropRecord(**{**data, "key": tuple(data.get("key", ()))})


def crop_record_line(record: CropRecord) -> str:
    return json.dumps({**record.__dict__, "key": list(record.key)}, ensure_ascii=False)

