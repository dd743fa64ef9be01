"""How well suggested boxes match the teacher's final boxes on the demo exam (HG-Bench F_A).

Aligns the demo scans to the template, suggests answer regions from the handwriting of up to
``--scripts`` scripts (``ml.suggest``), and scores them against the demo's boxes (``annotations.json``,
what a teacher ends up with) with the HG-Bench metrics of ``ml.grounding_eval``: one sample, pages
matched greedily at IoU >= 0.5. Also scores ink-only suggestions (printed frames ignored).

    python bench/suggestions.py [--demo DIR | --students 30] [--scripts 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ml.alignment import page_align
from ml.boxes import AnswerBox, annotations_load, hgbench_dump
from ml.demo_data import DemoConfig, demo_build
from ml.grounding_eval import boxes_sample, dataset_scores, scores_report
from ml.pages import document_pages
from ml.suggest import SuggestConfig, boxes_suggest

_MAX_PIXELS = 50_000_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/suggestions.py", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="an existing demo folder (built into a temporary one if left out)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scripts", type=int, default=10, help="how many scripts' handwriting to pool")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.demo
        if folder is None:
            folder = Path(scratch)
            print(f"building a demo set of {args.students} students ...")
            demo_build(out_dir=folder, config=DemoConfig(students=args.students, absent=2, seed=args.seed))
        templates = list(document_pages(path=folder / "template.pdf", kind="pdf", max_pixels=_MAX_PIXELS))
        sizes = [(page.width, page.height) for page in templates]
        truth = json.loads((folder / "truth.json").read_text())
        scans = list(document_pages(path=folder / "scans.pdf", kind="pdf", max_pixels=_MAX_PIXELS))
        started = time.monotonic()
        scripts = []
        for script in truth["scripts"][: args.scripts]:
            scripts.append([
                (scans[scan_page], page_align(template=templates[index], scan=scans[scan_page]))
                for index, scan_page in enumerate(script["scan_pages"])
            ])
        aligned = time.monotonic()
        gold = json.loads(hgbench_dump(
            boxes=annotations_load(data=(folder / "annotations.json").read_text(), page_sizes=sizes), page_sizes=sizes
        ))
        for name, config in (("frames and ink", SuggestConfig()), ("ink only", SuggestConfig(frames=False))):
            suggested = boxes_suggest(template_pages=templates, scripts=scripts, config=config)
            boxes = [AnswerBox(label=f"S{n}", page=s.page, bbox=s.bbox) for n, s in enumerate(suggested, start=1)]
            pred = json.loads(hgbench_dump(boxes=boxes, page_sizes=sizes))
            scores = dataset_scores(samples=[boxes_sample(gold=gold, pred=pred, page_sizes=sizes)])
            print(f"\nSuggested boxes ({name}): {len(boxes)} against {len(gold)} teacher boxes")
            print(scores_report(scores))
        print(f"\naligned {sum(len(s) for s in scripts)} pages in {aligned - started:.1f}s; "
              f"suggestions in {time.monotonic() - aligned:.1f}s")


if __name__ == "__main__":
    main()
