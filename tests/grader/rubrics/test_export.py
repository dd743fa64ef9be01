"""Rubric-scored answers reach the training-data export as ``ml.rubric`` records the trainer reads."""

from __future__ import annotations

import io
from decimal import Decimal

from django.core.files.base import ContentFile
from django.core.management import call_command
from model_bakery import baker
from PIL import Image

from grader.models import ScanPage, ScanUpload
from grader.rubrics.services import rubric_answer_save
from ml.rubric import rubric_records_load


def _page(exam, script, index: int) -> ScanPage:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 560), "white").save(buffer, format="PNG")
    page = baker.make(ScanPage, exam=exam, upload=baker.make(ScanUpload, exam=exam), source_index=index,
                      script=script, position=0, width=400, height=560)
    page.image.save(f"p{index}.png", ContentFile(buffer.getvalue()))
    return page


def test_rubric_scored_answers_are_exported_with_rubric_scores_feedback_and_crop(exam, essay, essay_answers,
                                                                                teacher, tmp_path):
    for number, answer in enumerate(essay_answers):
        answer.page = _page(exam, answer.script, number)
        answer.crop = [20, 30, 220, 130]
        answer.save()
    for answer, points in zip(essay_answers[:2], ([4, 3, 2.5], [1, 1, 0]), strict=True):
        rubric_answer_save(answer_id=answer.pk, points=[Decimal(str(p)) for p in points], comment_numbers=[],
                           text=f"Feedback for script {answer.script.number}.", expected_version=answer.version,
                           user=teacher)
    out = tmp_path / "data"
    call_command("training_data_export", "--exam", str(exam.pk), "--out", str(out), "--ratio", "1", "0", "0",
                 stdout=io.StringIO())
    records = rubric_records_load(folder=out, split="train")
    assert sorted(r.scores for r in records) == [(1.0, 1.0, 0.0), (4.0, 3.0, 2.5)]  # the unscored third is left out
    record = next(r for r in records if r.scores[0] == 4.0)
    assert record.feedback == "Feedback for script 1." and record.task == "Explain why we have seasons."
    assert [d.name for d in record.rubric.dimensions] == ["Content", "Organisation", "Language"]
    assert record.rubric.dimensions[0].levels[0].label == "exceptional"
    with Image.open(out / record.image) as image:
        assert image.size == (200, 100)  # the answer's box, cut from its page


def test_exported_rubric_answers_train_and_evaluate_the_rubric_model(exam, essay, essay_answers, teacher, tmp_path):
    """The data path end to end on the tiny model: app -> export -> python -m ml.train_rubric -> evaluate."""
    import json

    import yaml

    from ml.evaluate_rubric import main as evaluate_main
    from ml.recognition.vlm_tiny import tiny_model_build
    from ml.train_rubric import main as train_main

    for number, answer in enumerate(essay_answers):
        answer.page = _page(exam, answer.script, number)
        answer.crop = [20, 30, 220, 130]
        answer.save()
        rubric_answer_save(answer_id=answer.pk, points=[Decimal(number)] * 3, comment_numbers=[],
                           text=f"Feedback {number}.", expected_version=answer.version, user=teacher)
    data = tmp_path / "data"
    call_command("training_data_export", "--exam", str(exam.pk), "--out", str(data), "--ratio", "1", "0", "0",
                 stdout=io.StringIO())
    config = tmp_path / "rubric.yaml"
    config.write_text(yaml.safe_dump({
        "model_path": str(tiny_model_build(tmp_path / "model")), "data": str(data), "out": str(tmp_path / "out"),
        "lora_rank": 2, "epochs": 1, "batch_size": 3, "gradient_accumulation_steps": 1, "max_pixels": 28 * 28 * 4,
        "max_length": 1024, "max_new_tokens": 4, "gradient_checkpointing": False}))
    assert train_main(["--config", str(config)]) == 0
    report = tmp_path / "report.json"
    assert evaluate_main(["--model", str(tmp_path / "out"), "--data", str(data), "--split", "train",
                          "--out", str(report)]) == 0
    result = json.loads(report.read_text())["report"]
    assert result["count"] == 3 and [d["name"] for d in result["dimensions"]] == ["Content", "Organisation", "Language"]
