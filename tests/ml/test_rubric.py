"""The rubric model (``ml.rubric``, ``ml.train_rubric``, ``ml.evaluate_rubric``) on a tiny random Qwen2.5-VL.

The model is ``ml.recognition.vlm_tiny``'s (2 layers, hidden size 64) and the data folder is made here
from a few drawn answers, so nothing is downloaded and training takes seconds on a CPU.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from ml.evaluate_rubric import main as evaluate_main
from ml.evaluate_rubric import pearson, report_build
from ml.recognition.vlm_tiny import tiny_model_build
from ml.rubric import (
    SCORE_TOKEN,
    Rubric,
    RubricDimension,
    RubricError,
    RubricInput,
    RubricLevel,
    RubricPrediction,
    RubricRecord,
    rubric_from_dict,
    rubric_model_load,
    rubric_record_line,
    rubric_record_parse,
    rubric_records_load,
    system_prompt,
)
from ml.train import ConfigError
from ml.train_rubric import main as train_main
from ml.train_rubric import rubric_config_load, rubric_train

ROOT = Path(__file__).resolve().parents[2]
TINY_PIXELS = 28 * 28 * 4

RUBRIC = Rubric(name="Explain", dimensions=(
    RubricDimension(name="Content", max_points=4, levels=(
        RubricLevel(points=4, label="exceptional", description="every cause, each explained"),
        RubricLevel(points=2, label="fair", description="one cause"))),
    RubricDimension(name="Language", max_points=2, levels=(RubricLevel(points=2, label="clear"),)),
))
# (inked quarters, scores, feedback): more ink, more points, so the images carry the scores. No
# validation split, so the last epoch is kept (test_the_epoch_with_the_best_validation_loss_is_kept adds one).
ANSWERS = {
    "train": [(4, (4.0, 2.0), "Exceptional: every cause."), (0, (0.0, 0.0), "Blank.")],
    "test": [(4, (4.0, 2.0), "Exceptional: every cause."), (1, (1.0, 0.5), "Fair: one cause only.")],
}


def answer_image(lines: int) -> Image.Image:
    """A 112 x 112 answer whose top ``lines`` quarters are inked (black), the rest white."""
    image = Image.new("RGB", (112, 112), "white")
    if lines:
        ImageDraw.Draw(image).rectangle((0, 0, 111, 28 * lines - 1), fill="black")
    return image


def data_folder_build(folder: Path) -> Path:
    for split, answers in ANSWERS.items():
        (folder / "rubric" / split).mkdir(parents=True)
        lines = []
        for number, (ink, scores, feedback) in enumerate(answers):
            name = f"rubric/{split}/{number}.png"
            answer_image(ink).save(folder / name)
            lines.append(rubric_record_line(RubricRecord(image=name, rubric=RUBRIC, scores=scores, feedback=feedback,
                                                         task="Explain why we have seasons.", question="Q5",
                                                         script=f"{split}-{number}")))
        (folder / "rubric" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rubric")
    return {"root": root, "model": tiny_model_build(root / "model"), "data": data_folder_build(root / "data")}


def config_write(path: Path, tiny, **overrides) -> Path:
    settings = {"model_path": str(tiny["model"]), "data": str(tiny["data"]), "out": str(path.parent / "out"),
                # High, constant rates and a heavy score loss: the random model's score tokens barely
                # see the image at first, and the presets' rates would take hundreds of steps.
                "lora_rank": 4, "epochs": 20, "batch_size": 2, "gradient_accumulation_steps": 1,
                "learning_rate": 2e-2, "head_learning_rate": 1e-2, "lr_scheduler": "constant", "score_weight": 10,
                "warmup_ratio": 0.0, "max_pixels": TINY_PIXELS,
                "max_length": 1024, "max_new_tokens": 12, "gradient_checkpointing": False, "seed": 0, **overrides}
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def trained(tiny) -> dict:
    """One training run shared by the tests that need a trained model (through the CLI, as a teacher runs it)."""
    config = config_write(tiny["root"] / "rubric.yaml", tiny)
    assert train_main(["--config", str(config)]) == 0
    out = tiny["root"] / "out"
    return {"out": out, "card": json.loads((out / "rubric_model.json").read_text())}


def test_the_preset_loads_with_lora_on_attention_and_mlp():
    config = rubric_config_load(ROOT / "ml/configs/rubric_lora.yaml")
    assert set(config.lora_targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert config.epochs == 5 and config.score_weight > 0


def test_unknown_or_missing_settings_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("model_path: m\nlora_rnak: 8\n")
    with pytest.raises(ConfigError, match="lora_rnak"):
        rubric_config_load(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("epochs: 3\n")
    with pytest.raises(ConfigError, match="model_path is required"):
        rubric_config_load(tmp_path / "b.yaml")


def test_a_record_round_trips_and_scores_out_of_range_are_refused():
    record = RubricRecord(image="rubric/train/0.png", rubric=RUBRIC, scores=(3.0, 1.5), feedback="Good.", task="T")
    assert rubric_record_parse(rubric_record_line(record)) == record
    with pytest.raises(RubricError, match="Language scored 3"):
        rubric_record_parse(rubric_record_line(RubricRecord(image="x.png", rubric=RUBRIC, scores=(3, 3), feedback="")))
    with pytest.raises(RubricError, match="2 scores for 1"):
        rubric_record_parse(json.dumps({"image": "x", "scores": [1, 1], "rubric": {"dimensions": [
            {"name": "A", "max_points": 2}]}}))
    with pytest.raises(RubricError, match="not a rubric record"):
        rubric_record_parse("{broken")


def test_a_rubric_needs_distinct_dimensions_with_positive_maxima():
    with pytest.raises(RubricError, match="distinct"):
        rubric_from_dict({"dimensions": [{"name": "A", "max_points": 1}, {"name": "A", "max_points": 1}]})
    with pytest.raises(RubricError, match="max_points must be > 0"):
        rubric_from_dict({"dimensions": [{"name": "A", "max_points": 0}]})
    with pytest.raises(RubricError, match="outside 0..2"):
        rubric_from_dict({"dimensions": [{"name": "A", "max_points": 2, "levels": [{"points": 5, "label": "x"}]}]})


def test_the_system_prompt_holds_the_task_and_every_level_descriptor():
    text = system_prompt(rubric=RUBRIC, task="Explain why we have seasons.")
    assert "Task: Explain why we have seasons." in text
    assert "1. Content (0-4 points)" in text and "4 exceptional: every cause, each explained" in text
    assert "2 fair: one cause" in text and "2. Language (0-2 points)" in text and "(6 points)" in text


def test_pearson_and_mae_match_hand_computed_values():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    records = [RubricRecord(image="a", rubric=RUBRIC, scores=(4, 2), feedback=""),
               RubricRecord(image="b", rubric=RUBRIC, scores=(0, 0), feedback="")]
    report = report_build(records=records, predictions=[RubricPrediction(scores=(3, 2), feedback="x"),
                                                        RubricPrediction(scores=(1, 1), feedback="y")])
    content, language = report.dimensions
    assert (content.name, content.mae, content.mae_per_100) == ("Content", 1.0, 25.0)
    assert (language.mae, language.pearson) == (0.5, pytest.approx(1.0))
    assert report.total.mae == pytest.approx(1.5) and report.total.mae_per_100 == pytest.approx(25.0)
    assert report.feedback_cosine is None  # the teacher wrote no feedback to compare with


def test_training_lowers_the_heads_loss_and_keeps_only_lora_and_the_head(trained):
    history = trained["card"]["history"]
    assert history[-1]["train_l1"] < history[0]["train_l1"] / 4
    assert trained["card"]["best_epoch"] == len(history) == 20
    adapter = json.loads((trained["out"] / "adapter_config.json").read_text())
    assert "gate_proj" in adapter["target_modules"] and "q_proj" in adapter["target_modules"]
    assert (trained["out"] / "head.safetensors").is_file()


def test_a_loaded_model_returns_in_range_scores_and_feedback(tiny, trained):
    model = rubric_model_load(path=trained["out"], device="cpu")
    for lines in (0, 4):
        prediction = model.predict(RubricInput(image=answer_image(lines), rubric=RUBRIC,
                                               task="Explain why we have seasons."))
        assert len(prediction.scores) == 2
        assert all(0 <= score <= dimension.max_points
                   for score, dimension in zip(prediction.scores, RUBRIC.dimensions, strict=True))
        assert isinstance(prediction.feedback, str) and SCORE_TOKEN not in prediction.feedback
    # Another rubric's shape works with the same model: one score token per dimension.
    other = Rubric(name="", dimensions=(RubricDimension(name="Accuracy", max_points=10),))
    (score,) = model.predict(RubricInput(image=answer_image(2), rubric=other)).scores
    assert 0 <= score <= 10


def test_a_batch_of_answers_under_different_rubrics_scores_each_as_it_would_alone(trained):
    model = rubric_model_load(path=trained["out"], device="cpu")
    other = Rubric(name="", dimensions=(RubricDimension(name="Accuracy", max_points=10),))
    items = [RubricInput(image=answer_image(0), rubric=RUBRIC, task="Explain why we have seasons."),
             RubricInput(image=answer_image(4).resize((300, 90)), rubric=other),
             RubricInput(image=answer_image(2), rubric=RUBRIC)]

    batch = model.predict_batch(items)

    assert [len(prediction.scores) for prediction in batch] == [2, 1, 2]
    for item, together in zip(items, batch, strict=True):
        alone = model.predict(item)
        assert together.scores == pytest.approx(alone.scores, abs=0.02)
        assert isinstance(together.feedback, str) and SCORE_TOKEN not in together.feedback
    assert model.predict_batch([]) == []


def test_the_trained_head_scores_answers_with_more_ink_higher(trained):
    model = rubric_model_load(path=trained["out"], device="cpu")
    low = model.predict(RubricInput(image=answer_image(0), rubric=RUBRIC, task="Explain why we have seasons."))
    high = model.predict(RubricInput(image=answer_image(4), rubric=RUBRIC, task="Explain why we have seasons."))
    assert high.total > low.total


def test_evaluation_reports_pearson_mae_and_feedback_cosine(tiny, trained, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert evaluate_main(["--model", str(trained["out"]), "--data", str(tiny["data"]), "--out", str(out)]) == 0
    report = json.loads(out.read_text())["report"]
    assert [row["name"] for row in report["dimensions"]] == ["Content", "Language"]
    assert report["count"] == 2 and math.isfinite(report["total"]["mae"])
    assert -1 <= report["feedback_cosine"] <= 1
    assert "feedback cosine (all-MiniLM-L6-v2)" in capsys.readouterr().out


def test_a_folder_without_a_model_is_refused_with_a_message(tiny, tmp_path, capsys):
    assert evaluate_main(["--model", str(tmp_path), "--data", str(tiny["data"])]) == 2
    assert "not a rubric model folder" in capsys.readouterr().err


def test_training_without_records_is_refused(tiny, tmp_path, capsys):
    config = config_write(tmp_path / "c.yaml", tiny, data=str(tmp_path))
    assert train_main(["--config", str(config)]) == 2
    assert "no rubric-scored answer" in capsys.readouterr().err
    assert rubric_records_load(folder=tmp_path, split="train") == []


def test_the_epoch_with_the_best_validation_loss_is_kept(tiny, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny["data"], data)
    shutil.copy(data / "rubric/test.jsonl", data / "rubric/val.jsonl")  # its images are in rubric/test/
    config = rubric_config_load(config_write(tmp_path / "c.yaml", tiny, epochs=3, data=str(data),
                                             out=str(tmp_path / "o")))
    summary = rubric_train(config)
    joint = [entry.val_ce + 10 * entry.val_l1 for entry in summary.history]
    assert summary.best_epoch == 1 + joint.index(min(joint)) and summary.trainable_parameters > 0


def test_the_training_step_bench_runs_the_trainers_step_on_the_tiny_shape(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_rubric", ROOT / "bench" / "rubric.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--steps", "2", "--prompt-tokens", "40", "--feedback-tokens", "8",
                       "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["dimensions"] == 3 and result["seconds_per_step"] > 0 and math.isfinite(result["l1"])
