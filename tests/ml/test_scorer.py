"""The learned scorer: bands from scores, its input, the metrics on hand-computed cases, the similarity
rule as a baseline, and a short CPU training run through the CLI (saved, loaded and predicting)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from ml.scorer import (
    CARD_FILE,
    REPORT_FILE,
    ScorerConfig,
    ScorerError,
    ScorerExample,
    examples_from_folder,
    input_format,
    main,
    report_build,
    rule_evaluate,
    score_bin,
    scorer_config_load,
    scorer_evaluate,
    scorer_load,
)

CONFIG = Path(__file__).resolve().parents[2] / "ml" / "configs" / "scorer_lora.yaml"

LIGHT = ("light travels faster than sound",)
CELL = ("mitochondria", "mitochondrion")
# (question, key, text, right): right answers and their paraphrases and slips, and wrong ones.
ANSWERS = [
    ("Q1", LIGHT, "light travels faster than sound", True),
    ("Q1", LIGHT, "light is faster than sound", True),
    ("Q1", LIGHT, "light travels faster then sound", True),
    ("Q1", LIGHT, "light moves quicker than sound does", True),
    ("Q1", LIGHT, "they travel at the same speed", False),
    ("Q1", LIGHT, "sound is quicker", False),
    ("Q1", LIGHT, "i dont know", False),
    ("Q1", LIGHT, "the moon is made of cheese", False),
    ("Q2", CELL, "mitochondria", True),
    ("Q2", CELL, "mitochondira", True),
    ("Q2", CELL, "the mitochondria", True),
    ("Q2", CELL, "mitochondrion", True),
    ("Q2", CELL, "nucleus", False),
    ("Q2", CELL, "ribosome", False),
    ("Q2", CELL, "cell wall", False),
    ("Q2", CELL, "chloroplast", False),
]



def _held_out(items: list) -> list:
    """Two right and two wrong answers of each question: ANSWERS' rows 0, 1, 4, 5 of every eight."""
    return [item for position, item in enumerate(items) if position % 8 in (0, 1, 4, 5)]


def _record(question: str, key: tuple[str, ...], text: str, score: float | None, max_score: float = 1.0) -> dict:
    return {"image": "crops/x.png", "text": text, "kind": "text", "question": question, "script": "s1",
            "read": text, "score": score, "max_score": max_score, "key": list(key)}


def _folder_write(folder: Path, splits: dict[str, list[dict]]) -> Path:
    (folder / "crops").mkdir(parents=True)
    for split, records in splits.items():
        (folder / "crops" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A scorer trained by the CLI for 3 epochs at a high learning rate on a synthetic class (every
    answer once; two right and two wrong of each question again for validation and testing), kept
    small because a CPU step costs about a second. Returns the output folder and what the CLI printed."""
    base = tmp_path_factory.mktemp("scorer")
    records = [_record(q, key, text, 1.0 if right else 0.0) for q, key, text, right in ANSWERS]
    data = _folder_write(base / "data", {"train": records, "val": _held_out(records), "test": _held_out(records)})
    config = base / "fast.yaml"
    config.write_text("epochs: 3\nbatch_size: 8\nlearning_rate: 3.0e-3\nwarmup_ratio: 0.0\nlora_dropout: 0.0\n"
                      "threads: 2\n")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        code = main(["--data", str(data), "--out", str(base / "out"), "--config", str(config)])
    assert code == 0, printed.getvalue()
    return base / "out", printed.getvalue()


# --- bands and input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("score", "max_score", "bands", "band"), [
    (0, 1, 2, 0), (1, 1, 2, 2), (0.5, 1, 2, 1), (1, 4, 2, 1), (3, 4, 2, 2), (0.2, 1, 2, 0),
    (2, 5, 1, 0), (3, 5, 1, 1), (7, 5, 2, 2), (-1, 5, 2, 0), (3, 5, 5, 3),
])
def test_a_score_is_binned_to_the_nearest_band_with_halves_rounding_up(score, max_score, bands, band):
    assert score_bin(score=score, max_score=max_score, bands=bands) == band


def test_a_score_out_of_nothing_cannot_be_binned():
    with pytest.raises(ValueError):
        score_bin(score=1, max_score=0, bands=2)


def test_the_input_names_the_question_the_key_and_the_answer():
    text = input_format(question="Q3", key=("Na", " sodium ", ""), text="  sodium\n metal")
    assert text == "question: Q3 | key: Na / sodium | answer: sodium metal"


def test_examples_from_a_folder_are_the_scored_written_answers_with_their_bands(tmp_path):
    folder = _folder_write(tmp_path, {"train": [
        _record("Q1", CELL, "mitochondria", 1.0),
        _record("Q1", CELL, "nucleus", 0.0),
        _record("Q2", LIGHT, "light is faster", 1.0, max_score=2.0),
        _record("Q1", CELL, "ribosome", None),  # not scored yet
        _record("Q1", CELL, "  ", 0.0),  # blank: marking scores it before any scorer is asked
        _record("Q3", (), "42", 1.0, max_score=0.0),  # a question worth nothing has no bands
    ]})
    assert examples_from_folder(folder=folder, split="train") == [
        ScorerExample(question="Q1", key=CELL, text="mitochondria", band=2),
        ScorerExample(question="Q1", key=CELL, text="nucleus", band=0),
        ScorerExample(question="Q2", key=LIGHT, text="light is faster", band=1),
    ]
    assert examples_from_folder(folder=folder, split="train", bands=1)[2].band == 1
    assert examples_from_folder(folder=folder, split="test") == []


# --- metrics -----------------------------------------------------------------------------------

def test_perfect_agreement_scores_one_on_every_metric():
    report = report_build(truth=[0, 1, 2, 2], predicted=[0, 1, 2, 2], questions=["Q1"] * 4, bands=2)
    assert (report.accuracy, report.macro_f1, report.qwk, report.n) == (1.0, 1.0, 1.0, 4)
    assert report.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]


def test_qwk_of_a_small_example_matches_the_hand_computation():
    # Observed disagreement sum w*O = 1 + 1 = 2 (the 1->2 and 2->1 answers, w = (i - j)^2). Both
    # sides have band counts [1, 1, 2], so expected sum w*E = sum t_i p_j w_ij / n = 22 / 4 = 5.5.
    report = report_build(truth=[0, 1, 2, 2], predicted=[0, 2, 2, 1], questions=["Q1"] * 4, bands=2)
    assert report.qwk == pytest.approx(1 - 2 / 5.5, abs=1e-6)  # 7/11


def test_qwk_counts_misses_by_two_bands_worse_than_misses_by_one_at_equal_accuracy():
    near = report_build(truth=[0, 0, 2, 2], predicted=[0, 1, 1, 2], questions=["Q1"] * 4, bands=2)
    far = report_build(truth=[0, 0, 2, 2], predicted=[0, 2, 0, 2], questions=["Q1"] * 4, bands=2)
    assert near.accuracy == far.accuracy == 0.5
    assert near.qwk > far.qwk


def test_macro_f1_and_the_confusion_matrix_of_a_known_example_match_the_hand_computation():
    # Band 0: P 2/2, R 2/3 -> F1 0.8; band 1: P 1/2, R 1/2 -> 0.5; band 2: P 1/2, R 1/1 -> 2/3.
    report = report_build(truth=[0, 0, 0, 1, 1, 2], predicted=[0, 0, 1, 1, 2, 2],
                          questions=["Q1", "Q1", "Q2", "Q2", "Q2", "Q2"], bands=2)
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3, abs=1e-6)
    assert report.accuracy == pytest.approx(4 / 6, abs=1e-6)
    assert {q: (r.accuracy, r.n) for q, r in report.per_question.items()} == {"Q1": (1.0, 2), "Q2": (0.5, 4)}


def test_macro_f1_leaves_out_bands_that_neither_side_uses():
    report = report_build(truth=[0, 2, 2], predicted=[0, 2, 2], questions=["Q1"] * 3, bands=2)
    assert report.macro_f1 == 1.0
    assert report.confusion == [[1, 0, 0], [0, 0, 0], [0, 0, 2]]


def test_qwk_is_one_when_both_sides_put_every_answer_in_the_same_band():
    assert report_build(truth=[2, 2], predicted=[2, 2], questions=["Q1", "Q1"], bands=2).qwk == 1.0


def test_a_report_needs_one_prediction_and_question_per_answer():
    with pytest.raises(ValueError):
        report_build(truth=[], predicted=[], questions=[], bands=2)
    with pytest.raises(ValueError):
        report_build(truth=[0, 1], predicted=[0], questions=["Q1", "Q1"], bands=2)


def test_the_rule_gives_the_top_band_at_the_minimum_similarity_and_zero_below():
    examples = [ScorerExample(question="Q2", key=CELL, text=text, band=band) for text, band in
                [("mitochondria", 2), ("mitochondira", 2), ("nucleus", 0), ("mito", 1)]]
    examples.append(ScorerExample(question="Q9", key=(), text="anything", band=2))  # no key: nothing to pass
    report = rule_evaluate(records=examples, bands=2)
    # mitochondira's fuzzy ratio is 0.92 (>= 0.8): top band; "mito" (0.5) and "nucleus" get 0.
    assert report.confusion == [[1, 0, 0], [1, 0, 0], [1, 0, 2]]
    assert report.per_question["Q9"].accuracy == 0.0


# --- configuration -----------------------------------------------------------------------------

def test_the_shipped_yaml_configuration_is_the_documented_default():
    assert scorer_config_load(path=CONFIG) == ScorerConfig()


def test_a_configuration_refuses_unknown_settings_and_bad_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("bands: 2\nlearning_rat: 0.1\n")
    with pytest.raises(ScorerError, match="learning_rat"):
        scorer_config_load(path=path)
    path.write_text("learning_rate: 1e-3\nlora_targets: [query]\n")  # YAML 1.1 reads 1e-3 as a string
    assert scorer_config_load(path=path) == ScorerConfig(learning_rate=1e-3, lora_targets=("query",))
    with pytest.raises(ScorerError):
        scorer_config_load(path=path, bands=0)
    with pytest.raises(ScorerError):
        scorer_config_load(path=path, trainable_modules=["pooler"])


# --- training, saving, loading -----------------------------------------------------------------

def test_the_cli_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--data" in capsys.readouterr().out


def test_the_cli_refuses_a_folder_without_test_answers(tmp_path, capsys):
    data = _folder_write(tmp_path / "data", {"train": [_record("Q1", CELL, "mitochondria", 1.0)]})
    assert main(["--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert "test split" in capsys.readouterr().err


def test_training_lowers_the_loss_and_reports_every_metric_in_range(trained):
    out, printed = trained
    report = json.loads((out / REPORT_FILE).read_text())
    losses = report["validation"]["train_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert 1 <= report["validation"]["best_epoch"] <= 3
    for name in ("scorer", "rule"):
        measured = report[name]
        assert measured["n"] == 8
        assert 0 <= measured["accuracy"] <= 1 and 0 <= measured["macro_f1"] <= 1 and -1 <= measured["qwk"] <= 1
        assert len(measured["confusion"]) == 3 and all(len(row) == 3 for row in measured["confusion"])
        assert sum(map(sum, measured["confusion"])) == 8
        assert {q: r["n"] for q, r in measured["per_question"].items()} == {"Q1": 4, "Q2": 4}
    for words in ("accuracy", "macro-F1", "QWK", "confusion", "rule (>=0.8)"):
        assert words in printed


def test_the_card_records_the_band_setup_the_input_and_the_report(trained):
    out, _ = trained
    card = json.loads((out / CARD_FILE).read_text())
    assert card["bands"] == 2 and card["report_on"] == "val"
    assert card["input_format"] == "question: {question} | key: {key} | answer: {text}"
    assert card["config"]["epochs"] == 3 and card["answers"] == {"train": 16, "val": 8}
    assert set(card["report"]) >= {"accuracy", "macro_f1", "qwk", "confusion", "n", "per_question"}
    assert (out / "adapter_model.safetensors").exists() and (out / "tokenizer.json").exists()


def test_a_loaded_scorer_predicts_the_bands_it_was_measured_with(trained):
    out, _ = trained
    scorer = scorer_load(path=out, device="cpu")
    val = [ScorerExample(question=q, key=key, text=text, band=2 if right else 0)
           for q, key, text, right in _held_out(ANSWERS)]
    # The card's report was measured on these answers before saving: the same weights came back.
    remeasured = scorer_evaluate(scorer=scorer, records=val)
    assert remeasured.confusion == json.loads((out / CARD_FILE).read_text())["report"]["confusion"]
    predictions = scorer.predict([ScorerExample(question="Q2", key=CELL, text="mitochondria"),
                                  ScorerExample(question="Q2", key=CELL, text="")])
    assert len(predictions) == 2
    for band, probability in predictions:
        assert band in (0, 1, 2) and 1 / 3 <= probability <= 1


def test_loading_a_folder_without_a_card_fails_plainly(tmp_path):
    with pytest.raises(ScorerError, match=CARD_FILE):
        scorer_load(path=tmp_path)
