"""Seed 000's statistics of a training-data folder, as JSON and PNG plots.

    python -m ml.dataset_stats DIR [--out DIR/stats]

Reads the page records of every split (``ml.training_data``) and writes into ``--out``:

``stats.json``::

    {"pages": {"train": 20, "val": 3, "test": 3, "all": 26},
     "regions_per_page": {"mean": 5.8, "median": 6, "min": 1, "max": 12, "histogram": {"6": 12, ...}},
     "empty_ratio": 0.048,            # share of pages whose regions are all blank ("" text)
     "blank_regions_ratio": 0.07,     # share of regions that are blank
     "text_length": {"mean": 9.2, "median": 7, "max": 43, "cdf": [[1, 0.02], [2, 0.1], ...]},
     "answers": {"train": 150, ...}}  # answer crops per split

``regions_per_page.png`` (histogram with the mean marked), ``empty_ratio.png`` (pages with text
against empty pages), ``text_length.png`` (histogram and CDF of the characters per region). Text
length counts the characters of non-blank regions. Nothing here imports Django.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from ml.training_data import SPLITS, crop_records_load, page_records_load


def dataset_stats(*, folder: Path) -> dict:
    """The statistics of the module docstring for the data folder ``folder``."""
    pages = {split: page_records_load(folder=folder, split=split) for split in SPLITS}
    regions_per_page, lengths, empty_pages, blank_regions = [], [], 0, 0
    for records in pages.values():
        for record in records:
            answer = next(m["content"] for m in record["messages"] if m["role"] == "assistant")
            regions = json.loads(answer)
            texts = [str(region.get("text") or "") for region in regions]
            regions_per_page.append(len(regions))
            empty_pages += all(not text.strip() for text in texts)
            blank_regions += sum(not text.strip() for text in texts)
            lengths += [len(text) for text in texts if text.strip()]
    total_regions = sum(regions_per_page)
    counts = {split: len(records) for split, records in pages.items()}
    return {
        "pages": {**counts, "all": sum(counts.values())},
        "regions_per_page": _summary(regions_per_page) | {
            "histogram": {str(n): c for n, c in sorted(Counter(regions_per_page).items())}},
        "empty_ratio": round(empty_pages / len(regions_per_page), 4) if regions_per_page else None,
        "blank_regions_ratio": round(blank_regions / total_regions, 4) if total_regions else None,
        "text_length": _summary(lengths) | {"cdf": _cdf(lengths)},
        "answers": {split: sum(1 for _ in crop_records_load(folder=folder, split=split)) for split in SPLITS},
    }


def _summary(values: list[int]) -> dict:
    if not values:
        return {"mean": None, "median": None, "min": None, "max": None}
    return {"mean": round(float(np.mean(values)), 2), "median": float(np.median(values)),
            "min": int(min(values)), "max": int(max(values))}


def _cdf(values: list[int]) -> list[list[float]]:
    """``[[n, P(X <= n)], ...]`` for every distinct value ``n``."""
    if not values:
        return []
    counts = Counter(values)
    running, cdf = 0, []
    for value in sorted(counts):
        running += counts[value]
        cdf.append([value, round(running / len(values), 4)])
    return cdf


def stats_plot(*, stats: dict, out: Path) -> list[Path]:
    """The three PNG plots of the module docstring, written into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    histogram = stats["regions_per_page"]["histogram"]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.bar([int(n) for n in histogram], list(histogram.values()), color="#3b6ea5")
    if stats["regions_per_page"]["mean"] is not None:
        axis.axvline(stats["regions_per_page"]["mean"], color="red", linestyle="--", label="mean")
        axis.legend()
    axis.set(xlabel="regions per page (n)", ylabel="pages (f)", title="Regions per page")
    written.append(_save(figure, out / "regions_per_page.png"))

    figure, axis = plt.subplots(figsize=(5, 5))
    empty = stats["empty_ratio"] or 0.0
    axis.pie([1 - empty, empty], labels=["pages with text", "empty pages"], autopct="%1.1f%%",
             colors=["#3b6ea5", "#e0823d"])
    axis.set(title="Valid and empty pages")
    written.append(_save(figure, out / "empty_ratio.png"))

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    cdf = stats["text_length"]["cdf"]
    if cdf:
        lengths, shares = zip(*cdf, strict=True)
        right.step(lengths, shares, where="post")
        left.bar(lengths, np.diff([0.0, *shares]), color="#3b6ea5")
    left.set(xlabel="characters per region", ylabel="share of regions", title="Text length")
    right.set(xlabel="characters per region", ylabel="P(length <= n)", title="Text length CDF", ylim=(0, 1.02))
    written.append(_save(figure, out / "text_length.png"))
    return written


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder from manage.py training_data_export")
    parser.add_argument("--out", type=Path, help="where stats.json and the plots go (default FOLDER/stats)")
    args = parser.parse_args(argv)
    if not (args.folder / "dataset_info.json").is_file():
        parser.error(f"{args.folder} is not a training-data folder (no dataset_info.json)")
    out = args.out or args.folder / "stats"
    stats = dataset_stats(folder=args.folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    plots = stats_plot(stats=stats, out=out)
    print(f"{stats['pages']['all']} pages, {sum(stats['answers'].values())} answers; "
          f"{out / 'stats.json'} and {', '.join(p.name for p in plots)}")


if __name__ == "__main__":
    main()
