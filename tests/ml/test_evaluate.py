"""Evaluation of the reading engines (``ml.evaluate``): the metrics, and both engines on a tiny data folder.

EasyOCR is the real, offline-packaged model on a couple of rendered words; the VLM is
``ml.recognition.vlm_tiny``'s random model, so its numbers are garbage but every field is reported.
"""

from __future__ import annotations

import json
import sys

import pytest
from ml.evaluate import RegionResult, engine_report, main, prompt_regions, repeated, scores, vlm_run
from ml.recognition.base import Region
from ml.recognition.vlm import VlmConfig, prompt_build
from ml.recognition.vlm_tiny import tiny_adapter_build, tiny_model_build
from ml.training_data import page_records_load
from tests.ml.test_train import TINY_PIXELS, data_folder_build

REPORT_FIELDS = {"engine", "pages", "regions", "cer", "wer", "exact_match", "unread_rate", "json_parse_rate",
                 "repetition_rate", "outputs", "seconds", "regions_per_s", "by_kind", "worst"}


def result(reference: str, prediction: str | None, kind: str | None = None) -> RegionResult:
    return RegionResult(image="p.png", index=1, reference=reference, prediction=prediction, kind=kind)


def test_scores_sum_edits_over_all_regions_and_an_unread_blank_is_not_exact():
    found = scores([result("cat", "cot"), result("two  words", "two words"), result("", "x"), result("", None)])
    assert found["regions"] == 4
    assert found["cer"] == pytest.approx(2 / 12)  # "cat"->"cot" 1, blank -> "x" 1, over 3 + 9 characters
    assert found["wer"] == pytest.approx(2 / 3)  # "cat"->"cot" 1, blank -> "x" 1, over 1 + 2 words
    assert found["exact_match"] == 0.25 and found["unread_rate"] == 0.25
    assert scores([])["cer"] is None and scores([result("", "")])["cer"] is None


@pytest.mark.parametrize(
    ("text", "loop"),
    [
        ("the the the", True),
        # A decoding loop cut by max_new_tokens.
        ('[{"index": 1, "text": "a"}' + ', {"index": 2, "text": "b"}' * 4 + ', {"index": 2, "te', True),
        ('[{"index": 1, "text": "a"}, {"index": 2, "text": ""}, {"index": 3, "text": ""}]', False),
        ("the the", False),
        ("wait ... !!! ]]]", False),
        ("", False),
    ],
)
def test_a_run_of_tokens_three_times_in_a_row_is_a_repetition(text, loop):
    assert repeated(text) is loop


@pytest.mark.parametrize("lang", ["en", "ch"])
def test_prompt_regions_reads_back_what_prompt_build_wrote(lang):
    regions = [Region(index=3, bbox=(1, 2, 30, 40)), Region(index=7, bbox=(0, 0, 28, 56))]
    assert prompt_regions(prompt_build(regions=regions, lang=lang)) == (lang, regions)
    with pytest.raises(ValueError):
        prompt_regions("Read this page.")


def test_only_first_answers_count_for_the_json_parse_rate(tmp_path):
    folder = data_folder_build(tmp_path / "data")
    records = page_records_load(folder=folder, split="train")[:2]
    first_page = '[{"index": 1, "text": "cat"}, {"index": 2, "text": ""}]'
    second_page = '[{"index": 1, "text": "42"}, {"index": 2, "text": "dig"}]'
    answers = iter(["garbage", second_page, first_page])  # both pages in one call, then page 1's retry

    def generate(prompts):
        return [next(answers) for _ in prompts]

    run = vlm_run(records=records, folder=folder, generate=generate,
                  config=VlmConfig(model_path="unused", max_pixels=TINY_PIXELS, batch_size=2))
    assert run.outputs == ["garbage", second_page]
    report = engine_report(run)
    assert report["json_parse_rate"] == 0.5 and report["pages"] == 2 and report["regions"] == 4
    assert report["exact_match"] == 0.75 and report["cer"] == pytest.approx(1 / 8)  # cat 42 dog: 8 characters
    assert [(item["image"], item["reference"], item["prediction"]) for item in report["worst"]] == [
        ("pages/train-1.png", "dog", "dig")
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    model = tiny_model_build(root / "model")
    return {"model": model, "adapter": tiny_adapter_build(model_path=model, path=root / "adapter"),
            "data": data_folder_build(root / "data", crops=True)}


def test_both_engines_are_reported_in_one_table(tiny, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["--engine", "easyocr", "--engine", "vlm", "--data", str(tiny["data"] / "test.json"),
                 "--model", str(tiny["model"]), "--adapter", str(tiny["adapter"]), "--max-pixels", str(TINY_PIXELS),
                 "--max-new-tokens", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    easyocr, vlm = report["engines"]["easyocr"], report["engines"]["vlm"]
    assert set(easyocr) == set(vlm) == REPORT_FIELDS
    # "ok" in a framed box, and a blank box: EasyOCR reads both right.
    assert (easyocr["regions"], easyocr["cer"], easyocr["exact_match"]) == (2, 0.0, 1.0)
    assert set(easyocr["by_kind"]) == {"text", "number"} and easyocr["json_parse_rate"] is None
    assert vlm["pages"] == 1 and vlm["regions"] == 2 and vlm["outputs"] == 1
    assert 0.0 <= vlm["json_parse_rate"] <= 1.0 and 0.0 <= vlm["repetition_rate"] <= 1.0
    printed = capsys.readouterr().out
    assert "easyocr/text" in printed and "\nvlm " in printed and "JSON ok" in printed


def test_missing_inputs_are_refused(tiny, tmp_path):
    with pytest.raises(SystemExit):
        main(["--engine", "vlm", "--data", str(tiny["data"] / "test.json")])  # no --model
    (tmp_path / "test.json").write_text("[]")
    assert main(["--engine", "easyocr", "--data", str(tmp_path / "test.json")]) == 2


def test_the_vllm_back_end_without_vllm_installed_is_refused_with_the_reason(tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without it: importing raises ImportError

    assert main(["--engine", "vlm", "--backend", "vllm", "--model", str(tiny["model"]),
                 "--data", str(tiny["data"] / "test.json")]) == 2
    assert "pip install vllm" in capsys.readouterr().err
