"""Speed and accuracy of ``ml.alignment.page_align`` on a generated demo set.

Aligns every scanned page of a demo set (``python -m ml.demo_data``) to its template page and compares
the boxes it carries across with the generator's true transform. Rendering the PDFs is not timed.

    python bench/alignment.py [--demo DIR | --students 30] [--no-ecc]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ml.alignment import AlignConfig, box_map, page_align
from ml.boxes import box_iou
from ml.demo_data import DemoConfig, demo_build
from ml.pages import document_pages

# The demo pages are A4 at 150 dpi, far below this.
_MAX_PIXELS = 50_000_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/alignment.py", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="an existing demo folder (built into a temporary one if left out)")
    parser.add_argument("--students", type=int, default=30, help="class size of the demo set to build")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-ecc", action="store_true", help="feature fit only, without ECC refinement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.demo
        if folder is None:
            folder = Path(scratch)
            print(f"building a demo set of {args.students} students ...")
            demo_build(out_dir=folder, config=DemoConfig(students=args.students, absent=2, seed=args.seed))
        _bench(folder=folder, config=AlignConfig(ecc=not args.no_ecc))


def _bench(*, folder: Path, config: AlignConfig) -> None:
    truth = json.loads((folder / "truth.json").read_text())
    templates = list(document_pages(path=folder / "template.pdf", kind="pdf", max_pixels=_MAX_PIXELS))
    scans = list(document_pages(path=folder / "scans.pdf", kind="pdf", max_pixels=_MAX_PIXELS))
    pages = [(page, script) for script in truth["scripts"] for page in script["pages"]]

    ious: list[float] = []
    inliers: list[int] = []
    failed = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    alignments = [page_align(template=templates[page["template_page"]], scan=scans[page["scan_page"]], config=config)
                  for page, _ in pages]
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    for (page, script), alignment in zip(pages, alignments, strict=True):
        failed += not alignment.ok
        inliers.append(alignment.inliers)
        for entry in script["fields"] + script["answers"]:
            if entry["template_page"] == page["template_page"]:
                ious.append(box_iou(box_map(bbox=entry["box"], matrix=alignment.matrix), entry["scan_box"]))

    print(f"{len(pages)} pages in {elapsed:.2f} s: {len(pages) / elapsed:.1f} pages/s "
          f"(ECC {'on' if config.ecc else 'off'}), {failed} not aligned")
    # Wall time depends on what else the machine runs; CPU time per page does not, and two processes on
    # two idle cores would each align a page per that much CPU time.
    print(f"CPU time {1000 * cpu / len(pages):.0f} ms/page: about {2 * len(pages) / cpu:.1f} pages/s "
          "with one process per core on 2 idle cores")
    print(f"box IoU against truth over {len(ious)} boxes: mean {np.mean(ious):.4f}, min {np.min(ious):.4f}, "
          f"below 0.9: {sum(iou < 0.9 for iou in ious)}")
    print(f"inliers: min {min(inliers)}, median {int(np.median(inliers))}")


if __name__ == "__main__":
    main()
