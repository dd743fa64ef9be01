"""Teacher corrections become training data, and the CPU reader learns from them: the export's
format and split, the learning job from the UI, and an exam read again with its tuned reader."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from grader.folders import exam_folder_load
from grader.grading import services as grading
from grader.learning import services
from grader.learning.models import LearningJob
from grader.learning.selectors import answers_labelled
from grader.models import ScanPage
from grader.reading import services as reading
from grader.reading.models import Answer
from ml.ocr_train import OcrTrainConfig

pytestmark = pytest.mark.usefixtures("remembered_ocr")


@pytest.fixture
def demo_folder(demo_folder_for):
    return demo_folder_for(students=5, absent=0, seed=5)


@pytest.fixture
def read_exam(exam, teacher, demo_folder):
    exam_folder_load(exam=exam, folder=demo_folder, user=teacher)
    for script in exam.scripts.all():
        reading.script_read(script_id=script.pk, engines=[reading.OCR])
    return exam


@pytest.fixture
def corrected_exam(read_exam, teacher, demo_folder):
    """Every non-blank answer's text confirmed by the teacher as written (from the generator's truth)."""
    truth = json.loads((demo_folder / "truth.json").read_text())
    for written in truth["scripts"]:
        script = ScanPage.objects.get(exam=read_exam, source_index=written["scan_pages"][0]).script
        texts = {answer["label"]: answer["text"] for answer in written["answers"]}
        for answer in script.answers.select_related("question").filter(blank=False):
            grading.text_confirm(answer_id=answer.pk, text=texts[answer.question.label],
                                 expected_version=answer.version, user=teacher)
    return read_exam


def test_the_export_writes_page_records_and_crops_split_by_script(corrected_exam, tmp_path):
    out = tmp_path / "data"
    stdout = io.StringIO()

    call_command("training_data_export", "--exam", str(corrected_exam.pk), "--out", str(out),
                 "--ratio", "0.6", "0.2", "0.2", stdout=stdout)

    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"markdesk_train", "markdesk_val", "markdesk_test"}
    assert info["markdesk_train"]["file_name"] == "train.json" and info["markdesk_train"]["formatting"] == "sharegpt"
    scripts_in = {}
    crops = 0
    for split in ("train", "val", "test"):
        for record in json.loads((out / f"{split}.json").read_text()):
            user, assistant = record["messages"]
            assert user["role"] == "user" and user["content"].startswith("<image>")
            assert assistant["role"] == "assistant" and isinstance(json.loads(assistant["content"]), list)
            assert (out / record["images"][0]).is_file()
        for line in (out / "crops" / f"{split}.jsonl").read_text().splitlines():
            crop = json.loads(line)
            crops += 1
            assert (out / crop["image"]).is_file() and crop["text"]
            assert scripts_in.setdefault(crop["script"], split) == split, "a script in two splits"
    assert crops == answers_labelled(exams=[corrected_exam]).count()
    assert set(scripts_in.values()) == {"train", "val", "test"}
    assert "Exported" in stdout.getvalue()


def test_an_exam_without_corrections_exports_nothing_and_says_so(read_exam, tmp_path):
    stderr = io.StringIO()

    call_command("training_data_export", "--exam", str(read_exam.pk), "--out", str(tmp_path / "data"),
                 stdout=io.StringIO(), stderr=stderr)

    assert "nothing to learn from" in stderr.getvalue()


def test_learning_needs_enough_corrected_answers(client_for, teacher, read_exam):
    index = client_for(teacher).get(reverse("grading_index", args=[read_exam.pk])).content.decode()
    assert "0 answers with a text to learn from (20 needed)" in index

    response = client_for(teacher, htmx=True).post(reverse("learning_start", args=[read_exam.pk]))

    assert response.status_code == 409
    assert "at least 20 confirmed texts" in response.content.decode()
    assert not LearningJob.objects.exists()


def test_the_reader_learns_from_corrections_and_reads_the_exam_again_without_touching_the_teacher(
        client_for, teacher, corrected_exam, django_capture_on_commit_callbacks, monkeypatch):
    scored = Answer.objects.filter(script__exam=corrected_exam, blank=False).first()
    grading.score_set(answer_id=scored.pk, score=Decimal("0"), expected_version=scored.version, user=teacher)
    confirmed = dict(Answer.objects.filter(script__exam=corrected_exam).values_list("pk", "confirmed_text"))
    # Two rounds keep the test short; the real job runs up to twelve.
    run = services.reader_learn_run
    monkeypatch.setattr(services, "reader_learn_run", lambda *, job_id: run(job_id=job_id,
                                                                             config=OcrTrainConfig(epochs=2, threads=1)))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher, htmx=True).post(reverse("learning_start", args=[corrected_exam.pk]))

    assert response.status_code == 200
    job = LearningJob.objects.get()
    assert job.status == LearningJob.Status.DONE and job.finished_at is not None, job.error
    assert {"train_lines", "val_lines", "cer_before", "cer_after", "improved"} <= set(job.metrics)
    assert job.metrics["train_lines"] > 0 and job.metrics["val_lines"] > 0
    if job.metrics["improved"]:
        assert reading.exam_reader_path(exam=corrected_exam) == Path(job.weights.path)
    else:
        assert not job.weights and reading.exam_reader_path(exam=corrected_exam) is None
    scored.refresh_from_db()
    assert scored.score == Decimal("0")
    assert dict(Answer.objects.filter(script__exam=corrected_exam).values_list("pk", "confirmed_text")) == confirmed
    progress = client_for(teacher, htmx=True).get(reverse("learning_progress", args=[corrected_exam.pk, job.pk]))
    assert progress.status_code == 286 and "Handwriting: " in progress.content.decode()
    index = client_for(teacher).get(reverse("grading_index", args=[corrected_exam.pk])).content.decode()
    assert "Learn from my corrections and re-read the rest" in index


def test_a_learning_run_already_going_is_not_started_twice(teacher, corrected_exam):
    services.reader_learn_start(exam=corrected_exam, user=teacher, enqueue=False)

    with pytest.raises(services.LearningRefused, match="already learning"):
        services.reader_learn_start(exam=corrected_exam, user=teacher, enqueue=False)


def test_a_department_head_cannot_start_learning(client_for, head, read_exam):
    response = client_for(head, htmx=True).post(reverse("learning_start", args=[read_exam.pk]))

    assert response.status_code in (403, 404)
