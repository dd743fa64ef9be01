"""Teacher corrections become training data, and the CPU reader learns the class's handwriting.

``training_data_export`` writes the folder format of ``ml.training_data`` (page records for the VLM,
answer crops for the CPU reader) from the answers a teacher has vouched for
(``selectors.answers_labelled``). ``reader_learn_start`` / ``reader_learn_run`` fine-tune EasyOCR's
recogniser on them (``ml.ocr_train``) as a job with progress, keep the weights only when they read
held-out corrected answers better, then read the exam again with them: a teacher's scores and typed
texts are never changed, and every other answer is read and suggested again.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.utils import timezone
from PIL import Image

from grader.models import Exam, Script, User
from grader.reading import services as reading
from ml.ocr_train import OcrTrainConfig, lines_load, recognizer_train
from ml.similarity import number_parse
from ml.training_data import (
    SPLITS,
    CropRecord,
    LabelledRegion,
    crop_record_line,
    dataset_info,
    page_record,
    splits_assign,
)

from .models import LearningJob
from .selectors import answer_label, answers_labelled, answers_labelled_count, teacher_reader_weights

logger = logging.getLogger(__name__)

# Below this many corrected answers there is nothing to learn from and nothing to check it on.
MIN_LABELLED = 20


class LearningRefused(ValueError):
    """Learning cannot start; the message says why, for the teacher."""


@dataclass(frozen=True)
class ExportSummary:
    pages: dict[str, int]
    answers: dict[str, int]
    scripts: dict[str, int]


def training_data_export(*, exams: list[Exam], out: Path, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                         seed: int = 0) -> ExportSummary:
    """Write every vouched-for answer of ``exams`` into ``out`` (see ``ml.training_data``), split by
    script with ``seed``. Pages get one record each with all their labelled boxes; answers one crop
    each (the box as placed on the scan, frame included). Returns the counts per split."""
    out = Path(out)
    for folder in ("pages", *(f"crops/{split}" for split in SPLITS)):
        (out / folder).mkdir(parents=True, exist_ok=True)
    answers = list(answers_labelled(exams=exams))
    script_names = {answer.script_id: f"e{answer.script.exam_id}-s{answer.script.number}" for answer in answers}
    split_of = splits_assign(scripts=sorted(set(script_names.values())), ratios=ratios, seed=seed)
    by_page: dict[int, list] = defaultdict(list)
    for answer in answers:
        by_page[answer.page_id].append(answer)
    records: dict[str, list[dict]] = {split: [] for split in SPLITS}
    crops = {split: (out / "crops" / f"{split}.jsonl").open("w") for split in SPLITS}
    counts = {"pages": dict.fromkeys(SPLITS, 0), "answers": dict.fromkeys(SPLITS, 0)}
    try:
        for page_answers in by_page.values():
            page = page_answers[0].page
            name = script_names[page_answers[0].script_id]
            split = split_of[name]
            with page.image.open("rb") as handle:
                image = Image.open(handle).convert("RGB")
            regions = [LabelledRegion(index=n, bbox=tuple(int(v) for v in answer.crop), text=answer_label(answer))
                       for n, answer in enumerate(page_answers, start=1)]
            image_path = f"pages/{name}-p{page.position}.png"
            record, resized = page_record(page=image, regions=regions, image_path=image_path)
            resized.save(out / image_path)
            records[split].append(record)
            counts["pages"][split] += 1
            for answer in page_answers:
                crop_path = f"crops/{split}/a{answer.pk}.png"
                image.crop(tuple(int(v) for v in answer.crop)).convert("L").save(out / crop_path)
                question = answer.question
                crops[split].write(crop_record_line(CropRecord(
                    image=crop_path, text=answer_label(answer), kind=_kind(answer), question=question.label,
                    script=name, read=reading.reading_best(answer.readings)[0] or "",
                    score=None if answer.score is None else float(answer.score),
                    max_score=float(question.max_score),
                    key=tuple(text for text in (question.answer, *question.accept) if text.strip()),
                )) + "\n")
                counts["answers"][split] += 1
    finally:
        for handle in crops.values():
            handle.close()
    for split in SPLITS:
        (out / f"{split}.json").write_text(json.dumps(records[split], ensure_ascii=False, indent=1))
    (out / "dataset_info.json").write_text(json.dumps(dataset_info(), indent=1))
    scripts = dict.fromkeys(SPLITS, 0)
    for split in split_of.values():
        scripts[split] += 1
    return ExportSummary(pages=counts["pages"], answers=counts["answers"], scripts=scripts)


def _kind(answer) -> str:
    return "number" if answer.question.answer and number_parse(answer.question.answer) is not None else "text"


# ---------------------------------------------------------------- the CPU reader learns


@transaction.atomic
def reader_learn_start(*, exam: Exam, user: User, enqueue: bool = True) -> LearningJob:
    """Queue "Learn from my corrections and re-read the rest" for ``exam``; LearningRefused when a
    run is already going or there are too few corrected answers to learn from and check. Without
    ``enqueue`` the job is only created, for a caller that runs it in-process (``grade_folder``)."""
    Exam.objects.select_for_update().get(pk=exam.pk)
    running = LearningJob.objects.filter(exam=exam, status__in=[LearningJob.Status.QUEUED, LearningJob.Status.RUNNING])
    if running.exists():
        raise LearningRefused("The reader is already learning from this exam's corrections.")
    labelled = answers_labelled_count(exam=exam)
    if labelled < MIN_LABELLED:
        raise LearningRefused(
            f"{labelled} answers have a text you confirmed; at least {MIN_LABELLED} are needed. Correct the "
            "text of misread answers (press e on a row), or score answers whose suggestion fits the key.")
    job = LearningJob.objects.create(exam=exam, created_by=user)
    if enqueue:
        from .tasks import reader_learn_task

        transaction.on_commit(lambda: reader_learn_task.delay(job.pk))
    return job


def reader_learn_run(*, job_id: int, config: OcrTrainConfig = OcrTrainConfig(threads=1)) -> LearningJob:
    """Run a queued learning job to the end (see the module docstring); a failure is recorded on the job."""
    job = LearningJob.objects.select_related("exam", "created_by").get(pk=job_id)
    if job.status != LearningJob.Status.QUEUED:
        return job
    _job_update(job, status=LearningJob.Status.RUNNING, stage="export")
    try:
        with tempfile.TemporaryDirectory(prefix="markdesk-learn-") as folder:
            training_data_export(exams=[job.exam], out=Path(folder), ratios=(0.85, 0.15, 0.0))
            train = lines_load(folder=Path(folder), split="train")
            val = lines_load(folder=Path(folder), split="val")
            _job_update(job, stage="train", done=0, total=config.epochs)
            start = teacher_reader_weights(user=job.created_by) if job.created_by else None
            result = recognizer_train(
                train=train, val=val, out=Path(folder) / "model", start=start, config=config,
                progress=lambda done, total: _job_update(job, done=done, total=total))
            job.metrics = {"train_lines": result.train_lines, "val_lines": result.val_lines,
                           "cer_before": result.cer_before, "cer_after": result.cer_after,
                           "improved": result.improved, "epochs": result.epochs, "seconds": result.seconds,
                           "start": "your earlier corrections" if start else "EasyOCR english_g2"}
            if result.weights is not None:
                with result.weights.open("rb") as handle:
                    job.weights.save(f"recognizer-{job.pk}.pth", File(handle), save=False)
            job.save(update_fields=["metrics", "weights"])
        if job.weights:
            # The weights are the exam's reader once the job is done; read with them now.
            _job_update(job, status=LearningJob.Status.DONE, stage="reread")
            scripts = list(Script.objects.filter(exam=job.exam).order_by("number").values_list("pk", flat=True))
            _job_update(job, done=0, total=len(scripts))
            for number, script_id in enumerate(scripts, start=1):
                reading.script_read(script_id=script_id, engines=[reading.OCR])
                _job_update(job, done=number)
            reading.exam_resuggest(exam_id=job.exam_id)
            reading.exam_identity_match(exam_id=job.exam_id)
        _job_update(job, status=LearningJob.Status.DONE, stage="", finished_at=timezone.now())
    except Exception as error:  # recorded for the teacher; the exam keeps the reader it had
        logger.exception("Learning job %s for exam %s failed", job.pk, job.exam_id)
        job.weights = ""
        job.save(update_fields=["weights"])
        _job_update(job, status=LearningJob.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now())
    return job


def _job_update(job: LearningJob, **fields) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    LearningJob.objects.filter(pk=job.pk).update(**fields)
