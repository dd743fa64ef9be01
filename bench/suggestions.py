"""How well suggested boxes match the teacher's final boxes on the demo exam, by source (ink, VLM), in HG-Bench metrics.

Aligns the demo scans to the template and scores, against the demo's boxes (``annotations.json``, what
a teacher ends up with), with ``ml.grounding_eval`` (the official HG-Bench rules, one sample, pages
matched greedily at IoU >= 0.5):

- ink: boxes suggested from the handwriting of up to ``--scripts`` scripts (``ml.box_suggest``), with
  printed frames and ink only;
- VLM (only with ``--vlm-model DIR`` or ``VLM_MODEL_PATH``): the pooled boxes, with their pooled steps,
  of ``--vlm-scripts`` scripts as the app suggests them (``ml.box_suggest_vlm``, with its one retry),
  and each script's first raw reply scored as its own sample (parse success, F_A, F_S and S-bar over
  those scripts).

    python bench/suggestions.py [--demo DIR | --students 30] [--scripts 10] [--vlm-model DIR [--vlm-scripts 2]]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ml.alignment import page_align, scan_rectify
from ml.box_suggest_vlm import RETRY_REMINDER, VlmBoxConfig, boxes_suggest_vlm, hf_box_generate
from ml.boxes import AnswerBox, annotations_load, hgbench_dump
from ml.demo_data import DemoConfig, demo_build
from ml.grounding_eval import boxes_sample, dataset_scores, scores_report
from ml.pages import document_pages
from ml.box_suggest import SuggestConfig, boxes_suggest

_MAX_PIXELS = 50_000_000


def _report(name: str, found: Sequence, *, gold: list[dict], sizes: list[tuple[int, int]]) -> None:
    """Score suggestions (each with a 0-based ``page``, a template px ``bbox`` and, from the VLM, ordered
    ``steps``) as one HG-Bench sample."""
    boxes = [AnswerBox(label=f"S{n}", page=s.page, bbox=s.bbox,
                       steps=tuple(AnswerBox(label=str(k), page=s.page, bbox=step)
                                   for k, step in enumerate(getattr(s, "steps", ()), start=1)))
             for n, s in enumerate(found, start=1)]
    pred = json.loads(hgbench_dump(boxes=boxes, page_sizes=sizes))
    print(f"\nSuggested boxes ({name}): {len(boxes)} against {len(gold)} teacher boxes")
    print(scores_report(dataset_scores(samples=[boxes_sample(gold=gold, pred=pred, page_sizes=sizes)])))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/suggestions.py", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="an existing demo folder (built into a temporary one if left out)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scripts", type=int, default=10, help="how many scripts' handwriting to pool")
    parser.add_argument("--vlm-model", default=os.environ.get("VLM_MODEL_PATH") or None,
                        help="Qwen2.5-VL directory (default: VLM_MODEL_PATH); without one the VLM is not run")
    parser.add_argument("--vlm-adapter", default=os.environ.get("VLM_ADAPTER_PATH") or None)
    parser.add_argument("--vlm-scripts", type=int, default=VlmBoxConfig.scripts, help="scripts the VLM is asked about")
    parser.add_argument("--vlm-max-pixels", type=int, help="pixels of each page the model sees (default: the engine's)")
    parser.add_argument("--vlm-max-new-tokens", type=int, default=2048, help="the length limit of a reply")
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
        for script in truth["scripts"][: max(args.scripts, args.vlm_scripts)]:
            scripts.append([
                (scans[scan_page], page_align(template=templates[index], scan=scans[scan_page]))
                for index, scan_page in enumerate(script["scan_pages"])
            ])
        aligned = time.monotonic()
        gold = json.loads(hgbench_dump(
            boxes=annotations_load(data=(folder / "annotations.json").read_text(), page_sizes=sizes), page_sizes=sizes
        ))
        for name, config in (("ink: frames and ink", SuggestConfig()), ("ink: ink only", SuggestConfig(frames=False))):
            _report(name, boxes_suggest(template_pages=templates, scripts=scripts[: args.scripts], config=config),
                    gold=gold, sizes=sizes)
        print(f"\naligned {sum(len(s) for s in scripts)} pages in {aligned - started:.1f}s; "
              f"ink suggestions in {time.monotonic() - aligned:.1f}s")
        if not args.vlm_model:
            print("\nVLM suggestions: not run (no model: pass --vlm-model DIR or set VLM_MODEL_PATH)")
            return
        _vlm_report(args, scripts=scripts[: args.vlm_scripts], gold=gold, sizes=sizes)


def _vlm_report(args: argparse.Namespace, *, scripts: list, gold: list[dict], sizes: list[tuple[int, int]]) -> None:
    from ml.recognition.vlm import HfGenerator, VlmConfig

    config = VlmConfig(model_path=args.vlm_model, adapter_path=args.vlm_adapter, confidence=False,
                       max_new_tokens=args.vlm_max_new_tokens,
                       **({"max_pixels": args.vlm_max_pixels} if args.vlm_max_pixels else {}))
    loading = time.monotonic()
    generate = hf_box_generate(HfGenerator(config))
    calls: list[tuple[str, str]] = []

    def recording(pages, text):
        calls.append((text, generate(pages, text)))
        return calls[-1][1]

    asking = time.monotonic()
    rectified = [[scan_rectify(scan=scan, alignment=alignment) for scan, alignment in script] for script in scripts]
    pooled = boxes_suggest_vlm(scripts=rectified, generate=recording, config=VlmBoxConfig(scripts=len(scripts)))
    done = time.monotonic()
    _report(f"VLM {args.vlm_model}, pooled over {len(scripts)} scripts", pooled, gold=gold, sizes=sizes)
    first = [reply for text, reply in calls if not text.endswith(RETRY_REMINDER)]
    print(f"\nVLM first replies, one sample per script ({len(first)}; {len(calls) - len(first)} asked again), "
          "read as the official evaluator reads them")
    print(scores_report(dataset_scores(samples=[boxes_sample(gold=gold, pred=reply, page_sizes=sizes)
                                                for reply in first])))
    print(f"\nmodel loaded in {asking - loading:.1f}s; {len(scripts)} scripts asked in {done - asking:.1f}s "
          f"({(done - asking) / max(1, len(scripts)):.1f}s each)")


if __name__ == "__main__":
    main()
