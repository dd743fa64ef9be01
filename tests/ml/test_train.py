"""LoRA training of the VLM (``ml.train``) on a tiny random Qwen2.5-VL, and the bench's model builder.

The model is ``ml.recognition.vlm_tiny``'s (2 layers, hidden size 64); the data folder is made here
with ``ml.training_data`` from a few synthetic pages, so nothing is downloaded and a run takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from ml.recognition.base import Region
from ml.recognition.vlm import DEFAULT_MIN_PIXELS, VlmConfig, VlmRecognizer
from ml.recognition.vlm_tiny import tiny_model_build
from ml.train import ConfigError, PageCollator, PageDataset, config_load, frozen_check, lora_model, main, train
from ml.training_data import CropRecord, LabelledRegion, crop_record_line, dataset_info, page_record

# The model sees test pages at most 16 visual tokens (as in tests/ml/test_vlm.py).
TINY_PIXELS = 28 * 28 * 16
ROOT = Path(__file__).resolve().parents[2]

# (page text, answers) per split: two boxes a page, the second sometimes blank.
PAGES = {
    "train": [("cat", ["cat", ""]), ("42", ["42", "dog"]), ("x = 4", ["x = 4", ""])],
    "val": [("sun", ["sun", "3.14"])],
    "test": [("ok", ["ok", ""])],
}
BOXES = ((20, 20, 380, 200), (20, 300, 380, 520))  # pixels of a 400 x 560 page, [x1, y1, x2, y2]


def data_folder_build(folder: Path, *, crops: bool = False) -> Path:
    """A data folder in ``ml.training_data``'s format: page records for every split, pages resized to
    the tiny model's frame; with ``crops``, the test answers as crop records too (a framed box with the
    answer written large, for EasyOCR)."""
    from PIL import ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    (folder / "pages").mkdir(parents=True)
    for split, pages in PAGES.items():
        records = []
        crop_lines = []
        for number, (ink, answers) in enumerate(pages):
            page = Image.new("RGB", (400, 560), "white")
            draw = ImageDraw.Draw(page)
            for box, answer in zip(BOXES, answers, strict=True):
                draw.rectangle(box, outline="black", width=2)
                if answer:
                    draw.text((box[0] + 20, box[1] + 40), answer, fill="black", font=font)
            regions = [LabelledRegion(index=i + 1, bbox=box, text=answer)
                       for i, (box, answer) in enumerate(zip(BOXES, answers, strict=True))]
            name = f"pages/{split}-{number}.png"
            record, image = page_record(page=page, regions=regions, image_path=name, max_pixels=TINY_PIXELS)
            image.save(folder / name)
            records.append(record)
            if crops:
                for region, kind in zip(regions, ("text", "number"), strict=True):
                    crop_name = f"crops/{split}/{number}-{region.index}.png"
                    (folder / crop_name).parent.mkdir(parents=True, exist_ok=True)
                    page.crop(region.bbox).save(folder / crop_name)
                    crop_lines.append(crop_record_line(CropRecord(
                        image=crop_name, text=region.text, kind=kind, question=f"Q{region.index}",
                        script=f"{split}-{number}")))
        (folder / f"{split}.json").write_text(json.dumps(records))
        if crops:
            (folder / "crops" / f"{split}.jsonl").write_text("\n".join(crop_lines) + "\n")
    (folder / "dataset_info.json").write_text(json.dumps(dataset_info()))
    return folder


def config_write(path: Path, **settings) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    return {"root": root, "model": tiny_model_build(root / "model"), "data": data_folder_build(root / "data")}


def tiny_settings(tiny, out: Path, **overrides) -> dict:
    """A run of a few steps with a high learning rate (the presets' 5e-5 barely moves in 10 steps)."""
    return {
        "model_path": str(tiny["model"]), "data": str(tiny["data"]), "out": str(out),
        "lora_rank": 4, "epochs": 3, "learning_rate": 1e-2, "warmup_ratio": 0.0,
        "gradient_accumulation_steps": 1, "batch_size": 1, "max_pixels": TINY_PIXELS,
        "max_length": 1024, "gradient_checkpointing": False, "logging_steps": 1, "seed": 0, **overrides,
    }


def test_both_presets_load_with_the_seed_papers_values():
    small = config_load(ROOT / "ml/configs/qwen2_5_vl_lora.yaml")
    medium = config_load(ROOT / "ml/configs/qwen2_5_vl_lora_medium.yaml")
    assert (small.lora_rank, small.epochs, small.gradient_accumulation_steps) == (4, 15, 4)
    assert (medium.lora_rank, medium.epochs, medium.gradient_accumulation_steps) == (2, 6, 1)
    for preset in (small, medium):
        assert preset.learning_rate == 5e-5 and preset.lr_scheduler == "cosine" and preset.warmup_ratio > 0


def test_unknown_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="lora_rnak"):
        config_load(config_write(tmp_path / "bad.yaml", model_path="m", lora_rnak=8))


def test_labels_cover_only_the_answer_and_the_prompt_is_the_engines(tiny):
    from ml.train import processor_prepare

    processor = processor_prepare(model_path=str(tiny["model"]), min_pixels=DEFAULT_MIN_PIXELS,
                                  max_pixels=TINY_PIXELS)
    collator = PageCollator(processor=processor, max_length=1024)
    examples = PageDataset(folder=tiny["data"], split="train").examples[:2]
    batch = collator(examples)
    tokenizer = processor.tokenizer
    for row, example in enumerate(examples):
        learnt = batch["labels"][row][batch["labels"][row] != -100]
        assert tokenizer.decode(learnt) == example.answer + "<|im_end|>"
        assert collator.length(example) == int(batch["attention_mask"][row].sum())
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(dim=1).sum())


def test_a_training_example_starts_with_exactly_the_engines_input(tiny):
    from ml.recognition.vlm import HfGenerator, VlmPrompt
    from ml.train import processor_prepare

    generator = HfGenerator(VlmConfig(model_path=str(tiny["model"]), max_pixels=TINY_PIXELS, max_new_tokens=1,
                                      device="cpu"))
    sent = {}
    generate = generator.model.generate
    generator.model.generate = lambda **inputs: sent.update(inputs) or generate(**inputs)
    example = PageDataset(folder=tiny["data"], split="val").examples[0]
    image = Image.open(example.image_path).convert("RGB")
    generator([VlmPrompt(image=image, text=example.prompt, size=image.size)])
    processor = processor_prepare(model_path=str(tiny["model"]), min_pixels=DEFAULT_MIN_PIXELS,
                                  max_pixels=TINY_PIXELS)
    row = PageCollator(processor=processor, max_length=1024).encode(example)
    prompt = int((row["labels"] == -100).sum())
    assert torch.equal(row["input_ids"][:prompt], sent["input_ids"][0])
    assert torch.equal(row["pixel_values"], sent["pixel_values"])


def test_only_lora_weights_of_the_language_model_train(tiny, tmp_path):
    config = config_load(config_write(tmp_path / "c.yaml", **tiny_settings(tiny, tmp_path / "out")))
    model = lora_model(config, dtype=torch.float32)
    assert frozen_check(model) > 0
    assert all(not parameter.requires_grad for name, parameter in model.named_parameters() if "visual" in name)
    next(parameter for name, parameter in model.named_parameters() if "merger" in name).requires_grad_(True)
    with pytest.raises(RuntimeError, match="visual"):
        frozen_check(model)


def base_eval_loss(tiny) -> float:
    """The untrained model's loss on the validation pages, batched as training batches them."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ml.train import processor_prepare

    processor = processor_prepare(model_path=str(tiny["model"]), min_pixels=DEFAULT_MIN_PIXELS,
                                  max_pixels=TINY_PIXELS)
    batch = PageCollator(processor=processor, max_length=1024)(PageDataset(folder=tiny["data"], split="val").examples)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny["model"], local_files_only=True)
    with torch.no_grad():
        return float(model(**batch).loss)


def test_training_lowers_the_loss_and_the_adapter_merges_and_reads(tiny, tmp_path):
    from ml.vlm_merge import main as merge_main

    out = tmp_path / "run"
    config = config_load(config_write(tmp_path / "c.yaml", **tiny_settings(tiny, out)))
    summary = train(config)
    losses = [loss for _, loss in summary.train_losses]
    assert summary.global_step == 9 and len(losses) >= 9
    # A random tiny model's logits are nearly flat whatever LoRA does to the attention (the final norm
    # and lm_head stay frozen), so the loss can only fall from ~6.3 (uniform over 512 tokens) to ~5.9.
    assert sum(losses[-3:]) / 3 < losses[0] - 0.2
    assert [step for step, _ in summary.eval_losses] == [3, 6, 9]
    assert summary.best_eval_loss < base_eval_loss(tiny) - 0.1
    assert summary.best_eval_loss == min(loss for _, loss in summary.eval_losses)
    assert (out / "loss_curve.png").stat().st_size > 0 and (out / "train_config.yaml").exists()
    assert (summary.adapter / "adapter_config.json").exists()

    page = Image.open(tiny["data"] / "pages/test-0.png")
    regions = [Region(index=1, bbox=(5, 5, 60, 40))]
    adapted = VlmRecognizer(VlmConfig(model_path=str(tiny["model"]), adapter_path=str(summary.adapter),
                                      max_pixels=TINY_PIXELS, max_new_tokens=8, device="cpu"))
    assert len(adapted.read_page(page=page, regions=regions)) == 1
    merged = tmp_path / "merged"
    assert merge_main(["--model", str(tiny["model"]), "--adapter", str(summary.adapter), "--out", str(merged)]) == 0
    reader = VlmRecognizer(VlmConfig(model_path=str(merged), max_pixels=TINY_PIXELS, max_new_tokens=8, device="cpu"))
    assert len(reader.read_page(page=page, regions=regions)) == 1


def test_resume_continues_from_the_last_checkpoint(tiny, tmp_path):
    out = tmp_path / "run"
    # With activation checkpointing, as the presets train.
    first = config_write(tmp_path / "first.yaml", **tiny_settings(tiny, out, epochs=1, gradient_checkpointing=True))
    assert main(["--config", str(first)]) == 0
    assert (out / "checkpoint-3").is_dir()
    assert main(["--config", str(first)]) == 2  # a second fresh run would mix with the first
    config = config_load(config_write(tmp_path / "more.yaml", **tiny_settings(tiny, out, epochs=2)))
    summary = train(config, resume=True)
    assert (summary.first_step, summary.global_step) == (3, 6)
    assert [step for step, _ in summary.eval_losses] == [3, 6]


def test_resume_without_a_checkpoint_is_refused(tiny, tmp_path):
    config = config_write(tmp_path / "c.yaml", **tiny_settings(tiny, tmp_path / "empty"))
    assert main(["--config", str(config), "--resume"]) == 2


def _bench():
    spec = importlib.util.spec_from_file_location("bench_vlm", ROOT / "bench" / "vlm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_builds_its_model_and_runs_tiny_on_cpu(tmp_path):
    bench = _bench()
    report = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--batch-sizes", "1", "2", "--new-tokens", "4", "--json", str(report)]) == 0
    results = json.loads(report.read_text())
    assert [(row["variant"], row["batch_size"]) for row in results["generate"]] == [
        ("dynamic", 1), ("dynamic", 2), ("static", 1), ("static", 2)]
    assert all(row["pages_per_s"] > 0 and row["boxes_per_s"] > 0 and row["generated"] == 4
               for row in results["generate"])
    assert results["identity"]["candidates"] == 123 and results["identity"]["seconds"] > 0
    # ml.train's step for each setting the CPU has: one page a row, then three packed in one.
    steps = results["train_steps"]
    assert [(step["attention"], step["checkpointing"], step["pages"]) for step in steps] == [
        ("sdpa", True, 1), ("sdpa", True, 3), ("sdpa", False, 1), ("sdpa", False, 3)]
    assert all(step["seconds_per_step"] > 0 and step["lora_rank"] == 4 for step in steps)
    assert steps[1]["tokens"] == 3 * steps[0]["tokens"] and steps[1]["answer_tokens"] == 3 * 4
    # The 7B's shape, built on the meta device (no memory): Qwen2.5-VL-7B-Instruct has 8.29 B parameters.
    from ml.recognition.vlm_tiny import tiny_processor_build

    model = bench.model_build(bench.model_config(tiny=False, processor=tiny_processor_build()), device="meta",
                              dtype=torch.bfloat16)
    assert 8.28e9 < sum(parameter.numel() for parameter in model.parameters()) < 8.30e9
    if not torch.cuda.is_available():
        assert bench.main([]) == 2
