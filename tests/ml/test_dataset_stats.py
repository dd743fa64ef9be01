"""Seed 000's dataset statistics of a training-data folder: counts, ratios, the text-length CDF and plots."""

from __future__ import annotations

import json

from PIL import Image

from ml.dataset_stats import dataset_stats, main
from ml.training_data import LabelledRegion, dataset_info, page_record


def _folder(tmp_path, pages):
    (tmp_path / "pages").mkdir()
    records = []
    for number, texts in enumerate(pages):
        regions = [LabelledRegion(index=i, bbox=(10, 10 + 40 * i, 200, 40 + 40 * i), text=text)
                   for i, text in enumerate(texts, start=1)]
        record, image = page_record(page=Image.new("RGB", (620, 877), "white"), regions=regions,
                                    image_path=f"pages/p{number}.png")
        image.save(tmp_path / record["images"][0])
        records.append(record)
    (tmp_path / "train.json").write_text(json.dumps(records))
    (tmp_path / "dataset_info.json").write_text(json.dumps(dataset_info()))
    return tmp_path


def test_counts_ratios_and_the_length_cdf_describe_the_pages(tmp_path):
    folder = _folder(tmp_path, [["Na", "206", ""], ["carbon dioxide", ""], ["", ""]])

    stats = dataset_stats(folder=folder)

    assert stats["pages"] == {"train": 3, "val": 0, "test": 0, "all": 3}
    assert stats["regions_per_page"] | {"histogram": None} == {"mean": 2.33, "median": 2.0, "min": 2, "max": 3,
                                                               "histogram": None}
    assert stats["regions_per_page"]["histogram"] == {"2": 2, "3": 1}
    assert stats["empty_ratio"] == round(1 / 3, 4)
    assert stats["blank_regions_ratio"] == round(4 / 7, 4)
    assert stats["text_length"]["cdf"] == [[2, 0.3333], [3, 0.6667], [14, 1.0]]


def test_the_command_writes_the_json_and_three_plots(tmp_path, capsys):
    folder = _folder(tmp_path, [["Na", "206"]])

    main([str(folder)])

    out = folder / "stats"
    assert json.loads((out / "stats.json").read_text())["pages"]["all"] == 1
    for name in ("regions_per_page.png", "empty_ratio.png", "text_length.png"):
        with Image.open(out / name) as plot:
            assert plot.format == "PNG" and plot.size[0] > 300
    assert "1 pages" in capsys.readouterr().out
