"""Evaluate the reading engines on a data folder's held-out answers (``ml.training_data``'s format).

    python -m ml.evaluate --engine easyocr --engine vlm --data DIR/test.json \\
        [--model PATH] [--adapter PATH] [--out REPORT.json]

Each engine reads the split it is made for, both exported from the same corrections:

- ``vlm`` reads the page records (``DIR/test.json``): each page image (already in the model's frame)
  with the regions listed in its prompt, boxes [x1, y1, x2, y2] in pixels of that image, through
  ``VlmRecognizer`` (so with the engine's parsing and its one retry); the reference is the record's answer.
- ``easyocr`` reads the crop records of the same split (``DIR/crops/test.jsonl``): each crop is the box
  as placed on the scan, frame included, read by ``OcrRecognizer`` as one region covering the whole
  crop, with the record's kind.

Per engine: CER and WER (edit distance over the references' characters / words, summed over all
regions, so blank references count their insertions), exact match rate, unread rate (no answer for
the region: scored as "" for CER and WER, never an exact match), the same per kind when the records
carry one, and the worst regions by CER. Texts are compared with runs of white space collapsed, case
kept. For the VLM also the JSON parse rate (first answers that hold a readable reading array) and for
both the repetition rate: the share of outputs (VLM: first answers; EasyOCR: readings) in which a run
of 1-20 tokens (words or punctuation marks) comes 3+ times back to back and holds a letter or digit,
the signature of a decoding loop.

Prints a table and writes the JSON report given with ``--out``. Nothing here imports Django; models
are loaded from local directories only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from PIL import Image
from rapidfuzz.distance import Levenshtein

from ml.recognition.base import Region, RegionKind
from ml.recognition.vlm import BACKENDS, PROMPTS, REMINDERS, VlmConfig, VlmOutput, readings_parse
from ml.training_data import crop_records_load, page_records_load

ENGINES = ("easyocr", "vlm")
IMAGE_TAG = "<image>"
# A decoding loop: the same run of tokens this many times in a row.
REPEATS = 3
LONGEST_REPEATED_RUN = 20
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class RegionResult:
    """One region's reference and reading. ``prediction`` None: the engine gave no answer (unread)."""

    image: str  # relative to the data folder
    index: int
    reference: str
    prediction: str | None
    kind: str | None = None


@dataclass
class EngineRun:
    """What one engine produced: a result per region, its raw outputs (see the module docstring) and
    how many of them it made, the pages it read and how long that took."""

    engine: str
    results: list[RegionResult]
    outputs: list[str] = field(default_factory=list)
    pages: int | None = None  # VLM: page records read
    seconds: float = 0.0
    parsed: int | None = None  # VLM: first answers holding a reading array


def normalise(text: str | None) -> str:
    return " ".join((text or "").split())


def repeated(text: str, *, repeats: int = REPEATS, longest: int = LONGEST_REPEATED_RUN) -> bool:
    """Whether some run of 1..``longest`` tokens comes ``repeats`` times back to back in ``text`` and
    holds a letter or digit (so "..." or a row of closing brackets is not a loop)."""
    tokens = _TOKEN.findall(text)
    for size in range(1, longest + 1):
        for start in range(len(tokens) - repeats * size + 1):
            run = tokens[start : start + size]
            if not any(token[0].isalnum() or token[0] == "_" for token in run):
                continue
            if all(tokens[start + k * size : start + (k + 1) * size] == run for k in range(1, repeats)):
                return True
    return False


def scores(results: Sequence[RegionResult]) -> dict[str, Any]:
    """``regions``, ``cer``, ``wer``, ``exact_match``, ``unread_rate`` over ``results`` (rates None
    when there is nothing to divide by: no region, or references without any character/word)."""
    chars = words = char_edits = word_edits = exact = unread = 0
    for result in results:
        reference, prediction = normalise(result.reference), normalise(result.prediction)
        chars += len(reference)
        words += len(reference.split())
        char_edits += Levenshtein.distance(reference, prediction)
        word_edits += Levenshtein.distance(reference.split(), prediction.split())
        exact += result.prediction is not None and reference == prediction
        unread += result.prediction is None
    count = len(results)
    return {
        "regions": count,
        "cer": char_edits / chars if chars else None,
        "wer": word_edits / words if words else None,
        "exact_match": exact / count if count else None,
        "unread_rate": unread / count if count else None,
    }


def region_cer(result: RegionResult) -> float:
    """Edits over the reference's length (at least 1, so a blank misread as "x" counts 1.0)."""
    reference = normalise(result.reference)
    return Levenshtein.distance(reference, normalise(result.prediction)) / max(len(reference), 1)


def engine_report(run: EngineRun, *, worst: int = 10) -> dict[str, Any]:
    """The JSON report of one engine (every key is always there; None where it does not apply)."""
    kinds = sorted({result.kind for result in run.results if result.kind is not None})
    ranked = sorted(run.results, key=lambda result: (-region_cer(result), result.prediction is not None,
                                                     result.image, result.index))
    regions = len(run.results)
    return {
        "engine": run.engine,
        "pages": run.pages,
        **scores(run.results),
        "json_parse_rate": run.parsed / len(run.outputs) if run.parsed is not None and run.outputs else None,
        "repetition_rate": sum(map(repeated, run.outputs)) / len(run.outputs) if run.outputs else None,
        "outputs": len(run.outputs),
        "seconds": round(run.seconds, 3),
        "regions_per_s": regions / run.seconds if run.seconds > 0 else None,
        "by_kind": {kind: scores([result for result in run.results if result.kind == kind]) for kind in kinds},
        "worst": [
            {"image": result.image, "index": result.index, "kind": result.kind, "reference": result.reference,
             "prediction": result.prediction, "cer": round(region_cer(result), 4)}
            for result in ranked[:worst] if region_cer(result) > 0 or result.prediction is None
        ],
    }


# --------------------------------------------------------------------------------------------------
# Engines


def prompt_regions(prompt: str) -> tuple[str, list[Region]]:
    """The language and the regions of a prompt made by ``prompt_build`` (its inverse; boxes as written)."""
    for lang, (head, answer, _) in PROMPTS.items():
        end = prompt.find(answer, len(head))
        if prompt.startswith(head) and end >= 0:
            listing = json.loads(prompt[len(head) : end])
            return lang, [Region(index=int(item["index"]), bbox=tuple(item["bbox"])) for item in listing]
    raise ValueError(f"not a prompt of the VLM engine: {prompt[:80]!r}")


class _FirstAnswers:
    """Wraps a generate callable and keeps the text of every first answer (prompts without the retry's reminder)."""

    def __init__(self, generate: Callable) -> None:
        self.generate = generate
        self.texts: list[str] = []

    def __call__(self, prompts):
        outputs = self.generate(prompts)
        for prompt, output in zip(prompts, outputs, strict=True):
            if not any(reminder in prompt.text for reminder in REMINDERS.values()):
                self.texts.append(output.text if isinstance(output, VlmOutput) else str(output))
        return outputs


def _progress(items: Sequence, *, desc: str, unit: str) -> Iterable:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=not sys.stderr.isatty())


@dataclass(frozen=True)
class _Page:
    image: str
    lang: str
    regions: list[Region]
    references: dict[int, str]


def _page(record: dict) -> _Page:
    user, assistant = record["messages"]
    lang, regions = prompt_regions(user["content"].removeprefix(IMAGE_TAG))
    references = {item["index"]: item["text"] for item in json.loads(assistant["content"])}
    return _Page(image=record["images"][0], lang=lang, regions=regions, references=references)


def vlm_run(*, records: Sequence[dict], folder: Path, config: VlmConfig, generate: Callable | None = None) -> EngineRun:
    """Read every page record with ``VlmRecognizer`` (``config.batch_size`` pages per ``generate``).

    ``generate`` replaces the model (tests); by default ``config.backend``'s generator is loaded once."""
    from ml.recognition.vlm import QWEN_FACTOR, VlmRecognizer, generator_load

    factor = QWEN_FACTOR
    if generate is None:
        generator = generator_load(config)
        generate, factor = generator, generator.factor
    answers = _FirstAnswers(generate)
    recognizer = VlmRecognizer(config, generate=answers, factor=factor)
    pages = [_page(record) for record in records]
    results = []
    started = time.perf_counter()
    batch = max(config.batch_size, 1)
    for first in _progress(range(0, len(pages), batch), desc="vlm", unit="batch"):
        chunk = pages[first : first + batch]
        # One generate call takes one language; an export is all of one in practice.
        for lang in dict.fromkeys(page.lang for page in chunk):
            same = [page for page in chunk if page.lang == lang]
            images = [Image.open(folder / page.image).convert("RGB") for page in same]
            readings = recognizer.read_pages(pages=[(image, page.regions) for image, page in zip(images, same)],
                                             lang=lang)
            for page, page_readings in zip(same, readings, strict=True):
                results.extend(RegionResult(image=page.image, index=region.index, prediction=reading.text,
                                            reference=page.references.get(region.index, ""))
                               for region, reading in zip(page.regions, page_readings, strict=True))
    seconds = time.perf_counter() - started
    parsed = sum(readings_parse(text=text) is not None for text in answers.texts)
    return EngineRun(engine="vlm", results=results, outputs=answers.texts, pages=len(pages), seconds=seconds,
                     parsed=parsed)


def easyocr_run(*, folder: Path, split: str, config=None) -> EngineRun:
    """Read every crop record of ``split`` with ``OcrRecognizer`` (``config``: an ``OcrConfig``)."""
    from ml.recognition.ocr import OcrConfig, OcrRecognizer

    crops = list(crop_records_load(folder=folder, split=split))
    if not crops:
        raise FileNotFoundError(f"no crop records in {folder / 'crops' / (split + '.jsonl')}")
    recognizer = OcrRecognizer(config or OcrConfig())
    recognizer.reader  # load now, so that the timing below is reading only
    known = set(get_args(RegionKind))
    results = []
    started = time.perf_counter()
    for crop in _progress(crops, desc="easyocr", unit="box"):
        with Image.open(folder / crop.image) as opened:
            image = opened.convert("RGB")
        kind = crop.kind if crop.kind in known else "text"
        (reading,) = recognizer.read_page(page=image, regions=[Region(index=0, bbox=(0, 0, *image.size), kind=kind)])
        results.append(RegionResult(image=crop.image, index=0, reference=crop.text, prediction=reading.text,
                                    kind=crop.kind))
    seconds = time.perf_counter() - started
    return EngineRun(engine="easyocr", results=results, outputs=[result.prediction or "" for result in results],
                     seconds=seconds)


# --------------------------------------------------------------------------------------------------
# Report


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(reports: Sequence[dict]) -> str:
    """The engines side by side (and per kind), then each engine's worst regions."""
    columns = ("regions", "cer", "wer", "exact_match", "unread_rate", "json_parse_rate", "repetition_rate",
               "regions_per_s")
    headers = ("", "regions", "CER", "WER", "exact", "unread", "JSON ok", "repeats", "regions/s")
    rows = []
    for report in reports:
        rows.append([report["engine"], *(_cell(report[column]) for column in columns)])
        for kind, kind_scores in report["by_kind"].items():
            rows.append([f"  {report['engine']}/{kind}", *(_cell(kind_scores.get(column)) for column in columns)])
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in [headers, *rows]]
    for report in reports:
        if report["worst"]:
            lines.append(f"\nworst {report['engine']} regions (reference -> reading):")
            lines.extend(f"  {item['image']}#{item['index']}  {item['reference']!r} -> {item['prediction']!r}  "
                         f"CER {item['cer']:.2f}" for item in report["worst"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", choices=ENGINES, required=True,
                        help="engine to evaluate; repeat for both (one table)")
    parser.add_argument("--data", required=True, type=Path,
                        help="a split's page records, DIR/test.json (easyocr reads DIR/crops/test.jsonl)")
    parser.add_argument("--model", help="vlm: Qwen2.5-VL directory (base, or merged fine-tune)")
    parser.add_argument("--adapter", help="vlm: LoRA adapter directory (ml.train's OUT/adapter)")
    parser.add_argument("--min-pixels", type=int, default=VlmConfig.min_pixels,
                        help="vlm: as the data folder was made with (default: the engine's)")
    parser.add_argument("--max-pixels", type=int, default=VlmConfig.max_pixels,
                        help="vlm: as the data folder was made with (default: the engine's)")
    parser.add_argument("--max-new-tokens", type=int, default=VlmConfig.max_new_tokens)
    parser.add_argument("--batch-size", type=int, default=VlmConfig.batch_size, help="vlm: pages per generate call")
    parser.add_argument("--device", default="auto", help='vlm: "auto", "cuda" or "cpu"')
    parser.add_argument("--backend", default="transformers", choices=BACKENDS,
                        help="vlm: how the model is served (vllm: optional package, CUDA only)")
    parser.add_argument("--worst", type=int, default=10, help="how many of the worst regions to list per engine")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    engines = list(dict.fromkeys(args.engine))
    if "vlm" in engines and not args.model:
        parser.error("--engine vlm needs --model")
    for path in (args.model, args.adapter):
        if path and not Path(path).is_dir():
            parser.error(f"{path} is not a directory (models are local: nothing is downloaded)")
    folder, split = args.data.parent, args.data.stem
    runs = []
    try:
        for engine in engines:
            if engine == "easyocr":
                runs.append(easyocr_run(folder=folder, split=split))
            else:
                records = page_records_load(folder=folder, split=split)
                if not records:
                    raise FileNotFoundError(f"no page records in {args.data}")
                config = VlmConfig(model_path=args.model, adapter_path=args.adapter, device=args.device,
                                   min_pixels=args.min_pixels, max_pixels=args.max_pixels,
                                   max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                   backend=args.backend, confidence=False)  # probabilities are not scored; they cost memory
                runs.append(vlm_run(records=records, folder=folder, config=config))
    except (OSError, ValueError, ImportError) as error:  # a missing model, data file or serving package
        print(f"error: {error}", file=sys.stderr)
        return 2
    reports = [engine_report(run, worst=args.worst) for run in runs]
    print(table(reports))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"data": str(args.data), "model": args.model, "adapter": args.adapter,
                  "engines": {report["engine"]: report for report in reports}}
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
