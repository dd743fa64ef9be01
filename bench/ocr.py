"""Benchmark the EasyOCR engine on a demo build: speed, character error rate and blank detection.

    python bench/ocr.py [--students 30] [--seed 7] [--out DIR] [--fields] [--no-baseline] [--readtext]

Builds a demo exam (``ml.demo_data``) unless ``--out`` already holds one, then reads every answer
box (the truth's ``scan_box``, the printed frame in scan pixels) three ways:

* ``ink``: :class:`ml.recognition.ocr.OcrRecognizer` (frame removed, ink cropped, blanks skipped),
  each box with the character set the app reads it with (a question with a numeric key: a number box);
* ``whole-crop``: EasyOCR ``recognize()`` on the whole box crop, frame included (the baseline);
* ``readtext`` (``--readtext``): EasyOCR's full detector + recogniser on the whole crop (slow).

CER is the Levenshtein distance over the truth length, summed over non-blank answers, with runs of
white space collapsed; "ci" is the same ignoring case (Humor Sans writers write in capitals and the
truth is upper-cased for them, while the recogniser may answer in mixed case). Blank accuracy is how
often "no ink" agrees with the truth's ``blank``; for the whole-crop baseline a box is "blank" when
the model returns no text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.demo_data import QUESTIONS, DemoConfig, demo_build  # noqa: E402
from ml.pages import document_pages  # noqa: E402
from ml.recognition.base import Region  # noqa: E402
from ml.recognition.ocr import OcrConfig, OcrRecognizer, ink_crop  # noqa: E402
from ml.similarity import number_parse  # noqa: E402

# Each box read as the app reads it (grader.reading.services._region_kind): numeric keys in number boxes.
BOX_KINDS = {"NAME": "name", "ID": "text", "CLASS": "text",
             **{q.label: "number" if number_parse(q.answer) is not None else "text" for q in QUESTIONS}}


def _norm(text: str, *, fold: bool) -> str:
    text = " ".join(text.split())
    return text.casefold() if fold else text


class Score:
    def __init__(self) -> None:
        self.edits = defaultdict(int)
        self.edits_ci = defaultdict(int)
        self.chars = defaultdict(int)
        self.blank_right = 0
        self.boxes = 0
        self.exact = 0
        self.non_blank = 0

    def add(self, *, truth: str, blank: bool, read: str, read_blank: bool, font: str) -> None:
        self.boxes += 1
        self.blank_right += int(read_blank == blank)
        if blank:
            return
        self.non_blank += 1
        for key in ("all", font):
            self.edits[key] += Levenshtein.distance(_norm(truth, fold=False), _norm(read, fold=False))
            self.edits_ci[key] += Levenshtein.distance(_norm(truth, fold=True), _norm(read, fold=True))
            self.chars[key] += len(_norm(truth, fold=False))
        self.exact += int(_norm(truth, fold=True) == _norm(read, fold=True))

    def report(self, name: str, seconds: float, cpu: float) -> None:
        print(f"\n== {name}: {self.boxes} boxes in {seconds:.1f} s = {self.boxes / seconds:.1f} crops/s "
              f"({cpu:.1f} CPU s)")
        print(f"   CER {self.edits['all'] / self.chars['all']:.3f}  "
              f"CER-ci {self.edits_ci['all'] / self.chars['all']:.3f}  "
              f"exact (ci) {self.exact}/{self.non_blank}  "
              f"blank accuracy {self.blank_right}/{self.boxes} = {self.blank_right / self.boxes:.3f}")
        for font in sorted(k for k in self.chars if k != "all"):
            print(f"   {font:<16} CER {self.edits[font] / self.chars[font]:.3f}  "
                  f"CER-ci {self.edits_ci[font] / self.chars[font]:.3f}  ({self.chars[font]} chars)")


def _boxes(truth: dict, *, fields: bool) -> dict[int, list[tuple[dict, dict]]]:
    """Scan page -> [(script, answer record)] for every box to read."""
    by_page: dict[int, list[tuple[dict, dict]]] = defaultdict(list)
    for script in truth["scripts"]:
        records = (script["fields"] if fields else []) + script["answers"]
        for record in records:
            by_page[script["scan_pages"][record["template_page"]]].append((script, record))
    return by_page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/markdesk-bench-ocr"),
                        help="demo folder (built when it has no truth.json)")
    parser.add_argument("--fields", action="store_true", help="also read NAME, ID and CLASS")
    parser.add_argument("--no-baseline", action="store_true", help="skip the whole-crop baseline")
    parser.add_argument("--readtext", action="store_true", help="also run EasyOCR readtext (detector + recogniser)")
    parser.add_argument("--batch-size", type=int, default=OcrConfig.batch_size)
    parser.add_argument("--pad", type=int, default=OcrConfig.pad)
    parser.add_argument("--no-split-lines", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (OcrConfig.threads); default: torch's own")
    parser.add_argument("--show-errors", type=int, default=0, help="print this many misreadings")
    args = parser.parse_args(argv)

    import torch
    truth_path = args.out / "truth.json"
    if truth_path.exists() and json.loads(truth_path.read_text())["seed"] == args.seed \
            and len(json.loads(truth_path.read_text())["students"]) == args.students:
        truth = json.loads(truth_path.read_text())
    else:
        print(f"building demo ({args.students} students) in {args.out} ...", flush=True)
        truth = demo_build(out_dir=args.out, config=DemoConfig(students=args.students, seed=args.seed))
    pages = [np.asarray(page.convert("L")) for page in
             document_pages(path=args.out / "scans.pdf", kind="pdf", max_pixels=10**8)]
    by_page = _boxes(truth, fields=args.fields)
    total = sum(len(v) for v in by_page.values())
    print(f"{len(truth['scripts'])} scripts, {len(pages)} pages, {total} boxes")

    engine = OcrRecognizer(OcrConfig(batch_size=args.batch_size, pad=args.pad,
                                     split_lines=not args.no_split_lines, threads=args.threads))
    started = time.perf_counter()
    reader = engine.reader
    print(f"model load (md5 check included) {time.perf_counter() - started:.1f} s; "
          f"torch threads {torch.get_num_threads()}")

    # Blank detection alone (what the app uses ink_crop for).
    started = time.perf_counter()
    blank_right = sum((ink_crop(page=pages[p], bbox=r["scan_box"]) is None) == r.get("blank", False)
                      for p, items in by_page.items() for _, r in items)
    seconds = time.perf_counter() - started
    print(f"ink_crop blank detection: {blank_right}/{total} right, {total / seconds:.0f} boxes/s")

    score, errors = Score(), []
    started, cpu = time.perf_counter(), time.process_time()
    for p, items in by_page.items():
        regions = [Region(i, tuple(r["scan_box"]), BOX_KINDS.get(r["label"], "text"))
                   for i, (_, r) in enumerate(items)]
        for (script, record), reading in zip(items, engine.read_page(page=pages[p], regions=regions), strict=True):
            score.add(truth=record["text"], blank=record.get("blank", False), read=reading.text or "",
                      read_blank=reading.text == "", font=script["font"])
            if _norm(record["text"], fold=True) != _norm(reading.text or "", fold=True):
                errors.append((record["text"], reading.text, reading.confidence, script["font"]))
    score.report("ink crop (OcrRecognizer)", time.perf_counter() - started, time.process_time() - cpu)
    for truth_text, read, confidence, font in errors[:args.show_errors]:
        print(f"   {truth_text!r:42} -> {read!r:42} {confidence:.2f} {font}")

    if not args.no_baseline:
        score = Score()
        started, cpu = time.perf_counter(), time.process_time()
        for p, items in by_page.items():
            for script, record in items:
                x1, y1, x2, y2 = record["scan_box"]
                found = reader.recognize(pages[p][y1:y2, x1:x2], detail=1)
                read = " ".join(item[1] for item in found).strip()
                score.add(truth=record["text"], blank=record.get("blank", False), read=read,
                          read_blank=read == "", font=script["font"])
        score.report("whole crop, frame included (recognize)", time.perf_counter() - started,
                     time.process_time() - cpu)

    if args.readtext:
        import easyocr

        from ml.recognition.ocr import default_model_dir

        full = easyocr.Reader(["en"], gpu=False, model_storage_directory=str(default_model_dir()),
                              user_network_directory=str(default_model_dir()),
                              download_enabled=False, verbose=False)
        score = Score()
        started, cpu = time.perf_counter(), time.process_time()
        for p, items in by_page.items():
            for script, record in items:
                x1, y1, x2, y2 = record["scan_box"]
                read = " ".join(full.readtext(pages[p][y1:y2, x1:x2], detail=0)).strip()
                score.add(truth=record["text"], blank=record.get("blank", False), read=read,
                          read_blank=read == "", font=script["font"])
        score.report("whole crop, readtext (detector + recogniser)", time.perf_counter() - started,
                     time.process_time() - cpu)


if __name__ == "__main__":
    main()
