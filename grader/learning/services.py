"""Teacher corrections become training data; the CPU reader learns the class's handwriting and a
scorer learns the teacher's marking.

``training_data_export`` writes the folder format of ``ml.training_data`` (page records for the VLM,
answer crops for the CPU reader) from the answers a teacher has vouched for
(``selectors.answers_labelled``). ``reader_learn_start`` / ``reader_learn_run`` run one learning job
with progress:

1. **Reader** (with at least ``MIN_LABELLED`` vouched-for texts): fine-tune EasyOCR's recogniser on
   them (``ml.ocr_train``), keep the weights only when they read held-out corrected answers better,
   then read the exam again with them.
2. **Scorer** (with at least ``MIN_SCORED`` teacher-scored written answers): train a learned scorer
   (``ml.scorer``) on the teacher's marks and measure it by ``SCORER_FOLDS``-fold cross-validation
   over scripts: every scored answer is suggested twice by a model and evidence that never saw its
   script's scores, once with the scorer and once without (``reading.question_suggestions``). The
   scorer is offered on a question only where it agreed with the teacher on more of them; a scorer
   trained on all the marks is kept for those questions.

Then every answer is suggested again. A teacher's scores and typed texts are never changed.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.files import File
from django.db import transaction
from PIL import Image

from grader.models import Exam, Script, User
from grader.reading import services as reading
from grader.reading.models import Answer
from grader.recovery.jobs import (
    DB_ERRORS,
    JobLost,
    db_reconnect,
    db_retrying,
    job_beat,
    job_cancel,
    job_claim,
    job_end,
    job_restart,
)
from grader.rubrics.export import rubric_records_export
from ml.ocr_train import OcrTrainConfig, lines_load, recognizer_train
from ml.scorer import ScorerConfig, ScorerExample, score_bin, scorer_load, scorer_train
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
from .scorers import scorer_for_question
from .selectors import (
    answer_label,
    answers_labelled,
    answers_labelled_count,
    answers_scored,
    teacher_reader_weights,
)

logger = logging.getLogger(__name__)

# Below this many corrected answers there is nothing to learn from and nothing to check it on.
MIN_LABELLED = 20
# A scorer needs marks on several answers per question to learn and to be judged on.
MIN_SCORED = 30
SCORER_FOLDS = 3
# Fewer held-out answers than this on a question say too little to offer a scorer there.
SCORER_MIN_ANSWERS = 4


class LearningRefused(ValueError):
    """Learning cannot start; the message says why, for the teacher."""


@dataclass(frozen=True)
class ExportSummary:
    pages: dict[str, int]
    answers: dict[str, int]
    scripts: dict[str, int]
    rubric_answers: dict[str, int] | None = None  # rubric-scored answers (grader.rubrics.export)


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
    return ExportSummary(pages=counts["pages"], answers=counts["answers"], scripts=scripts,
                         rubric_answers=rubric_records_export(exams=exams, out=out, ratios=ratios, seed=seed))


def _kind(answer) -> str:
    return "number" if answer.question.answer and number_parse(answer.question.answer) is not None else "text"


# ---------------------------------------------------------------- the CPU reader learns


@transaction.atomic
def reader_learn_start(*, exam: Exam, user: User, enqueue: bool = True) -> LearningJob:
    """Queue "Learn from my corrections and re-read the rest" for ``exam``; LearningRefused when a
    run is already going or there is too little to learn from and check (neither ``MIN_LABELLED``
    vouched-for texts nor ``MIN_SCORED`` scored answers). Without ``enqueue`` the job is only created,
    for a caller that runs it in-process (``grade_folder``)."""
    Exam.objects.select_for_update().get(pk=exam.pk)
    running = LearningJob.objects.filter(exam=exam, status__in=[LearningJob.Status.QUEUED, LearningJob.Status.RUNNING])
    stalled = next((job for job in running if job.stalled), None)
    if stalled is not None and enqueue:
        return reader_learn_restart(job=stalled)  # never hand back a job nobody is running
    if running.exists():
        raise LearningRefused("The reader is already learning from this exam's corrections.")
    labelled = answers_labelled_count(exam=exam)
    scored = answers_scored(exam=exam).count()
    if labelled < MIN_LABELLED and scored < MIN_SCORED:
        raise LearningRefused(
            f"{labelled} answers have a text you confirmed and {scored} have your score; at least {MIN_LABELLED} "
            f"confirmed texts (to learn the handwriting) or {MIN_SCORED} scores (to learn your marking) are needed. "
            "Correct the text of misread answers (press e on a row), or score more answers.")
    job = LearningJob.objects.create(exam=exam, created_by=user)
    if enqueue:
        from .tasks import reader_learn_task

        transaction.on_commit(lambda: reader_learn_task.delay(job.pk))
    return job


def reader_learn_run(*, job_id: int, config: OcrTrainConfig = OcrTrainConfig(threads=1),
                     scorer_config: ScorerConfig = ScorerConfig(threads=1)) -> LearningJob:
    """Run a queued learning job to the end (see the module docstring); a failure is recorded on the job."""
    job = job_claim(LearningJob, job_id, select=("exam", "created_by"))
    if job is None:  # done, cancelled, or running elsewhere (a redelivered task)
        return LearningJob.objects.get(pk=job_id)
    _job_update(job, stage="export")
    try:
        reread = answers_labelled_count(exam=job.exam) >= MIN_LABELLED and _reader_learn(job=job, config=config)
        if answers_scored(exam=job.exam).count() >= MIN_SCORED:
            _job_update(job, stage="scorer", done=0, total=SCORER_FOLDS + 1)
            with tempfile.TemporaryDirectory(prefix="markdesk-scorer-") as folder:
                found = scorer_learn(exam=job.exam, out=Path(folder) / "scorer", config=scorer_config,
                                     progress=lambda done: _job_update(job, done=done))
                job.metrics = {**job.metrics, "scorer": found}
                if found["offered"]:
                    archive = shutil.make_archive(str(Path(folder) / "scorer"), "zip", Path(folder) / "scorer")
                    with open(archive, "rb") as handle:
                        job.scorer.save(f"scorer-{job.pk}.zip", File(handle), save=False)
                job.save(update_fields=["metrics", "scorer"])
        # Whatever was kept is the exam's from now on; suggest with it.
        _job_update(job, status=LearningJob.Status.DONE, stage="suggest")
        reading.exam_resuggest(exam_id=job.exam_id)
        if reread:
            reading.exam_identity_match(exam_id=job.exam_id)
        job_end(job, LearningJob.Status.DONE, stage="")
    except JobLost:
        return job  # restarted or cancelled by the teacher: the run that owns it now writes its end
    except DB_ERRORS:
        db_reconnect()  # the task is retried from the start
        db_retrying(lambda: LearningJob.objects.filter(pk=job.pk, attempts=job.attempts).update(
            status=LearningJob.Status.QUEUED, weights="", scorer=""))
        raise
    except Exception as error:  # recorded for the teacher; the exam keeps the reader and scorer it had
        logger.exception("Learning job %s for exam %s failed", job.pk, job.exam_id)
        job_end(job, LearningJob.Status.FAILED, weights="", scorer="", error=str(error)[:2000])
    return job


def reader_learn_restart(*, job: LearningJob) -> LearningJob:
    """Learn again from the start ("Learn again" on a stalled job); a run still going stops at its next step."""
    from .tasks import reader_learn_task

    return job_restart(LearningJob, job.pk, enqueue=reader_learn_task.delay)


def reader_learn_cancel(*, job: LearningJob) -> LearningJob:
    """Stop a learning job that has not finished; what it learned is not used."""
    return job_cancel(LearningJob, job.pk)


def _reader_learn(*, job: LearningJob, config: OcrTrainConfig) -> bool:
    """The reader stage: fine-tune on the vouched-for texts; when kept, read every script again with
    it. True when the exam was read again."""
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
    if not job.weights:
        return False
    # The weights are the exam's reader once the job is done; read with them now.
    _job_update(job, status=LearningJob.Status.DONE, stage="reread")
    scripts = list(Script.objects.filter(exam=job.exam).order_by("number").values_list("pk", flat=True))
    _job_update(job, done=0, total=len(scripts))
    for number, script_id in enumerate(scripts, start=1):
        reading.script_read(script_id=script_id, engines=[reading.OCR])
        _job_update(job, done=number)
    return True


# ---------------------------------------------------------------- the scorer learns the teacher's marking


def scorer_learn(*, exam: Exam, out: Path, config: ScorerConfig = ScorerConfig(threads=1), seed: int = 0,
                 progress: Callable[[int], None] = lambda done: None) -> dict:
    """Decide where a learned scorer helps on ``exam`` and train it (see the module docstring, step 2).

    Returns ``{"answers": n, "folds": k, "questions": {label: {"answers", "with", "without",
    "offered"}}, "offered": [question pk, ...]}`` where ``with``/``without`` count held-out answers
    whose suggestion equals the teacher's score with and without the scorer. When any question is
    offered, the scorer trained on every scored answer is saved in ``out`` (``ml.scorer``'s folder).
    ``progress`` gets the number of trainings done (``SCORER_FOLDS`` + 1 in all).
    """
    scored = list(answers_scored(exam=exam))
    texts = {answer.pk: (reading.answer_read_text(answer) or "").strip() for answer in scored}
    answers = [answer for answer in scored if texts[answer.pk]]
    questions = {answer.question_id: answer.question for answer in answers}
    keys = {pk: tuple(t for t in (q.answer, *q.accept) if t.strip()) for pk, q in questions.items()}
    marked = {pk: reading.question_marked(question=question) for pk, question in questions.items()}
    scripts = sorted({answer.script_id for answer in answers})
    random.Random(seed).shuffle(scripts)
    fold_of = {script: position % SCORER_FOLDS for position, script in enumerate(scripts)}

    def example(answer: Answer) -> ScorerExample:
        return ScorerExample(question=answer.question.label, key=keys[answer.question_id],
                             text=texts[answer.pk],
                             band=score_bin(score=float(answer.score), max_score=float(answer.question.max_score),
                                            bands=config.bands))

    tally: dict[int, Counter] = defaultdict(Counter)
    for fold in range(SCORER_FOLDS):
        held = [answer for answer in answers if fold_of[answer.script_id] == fold]
        train = [example(answer) for answer in answers if fold_of[answer.script_id] != fold]
        if not held or not train:
            progress(fold + 1)
            continue
        scorer_train(records=train, out=out.parent / f"fold-{fold}", config=config)
        scorer = scorer_load(path=out.parent / f"fold-{fold}", device="cpu")
        by_question: dict[int, list[Answer]] = defaultdict(list)
        for answer in held:
            by_question[answer.question_id].append(answer)
        for pk, question_answers in by_question.items():
            held_pks = {answer.pk for answer in question_answers}
            evidence = [m for m in marked[pk] if m.ref not in held_pks]
            learned = scorer_for_question(scorer=scorer, question=questions[pk])
            for name, opinion in (("without", None), ("with", learned)):
                suggested = reading.question_suggestions(question=questions[pk], answers=question_answers,
                                                         marked=evidence, learned=opinion)
                tally[pk][name] += sum(s.score == a.score for s, a in zip(suggested, question_answers, strict=True))
            tally[pk]["answers"] += len(question_answers)
        progress(fold + 1)
    report = {questions[pk].label: {"answers": counts["answers"], "with": counts["with"],
                                    "without": counts["without"],
                                    "offered": counts["answers"] >= SCORER_MIN_ANSWERS and counts["with"] > counts["without"]}
              for pk, counts in sorted(tally.items(), key=lambda item: questions[item[0]].order)}
    offered = [pk for pk in tally if report[questions[pk].label]["offered"]]
    if offered:
        scorer_train(records=[example(answer) for answer in answers], out=out, config=config)
    progress(SCORER_FOLDS + 1)
    return {"answers": len(answers), "folds": SCORER_FOLDS, "questions": report, "offered": offered}


def _job_update(job: LearningJob, **fields) -> None:
    """Progress and the heartbeat; ``JobLost`` once the job was restarted or cancelled."""
    job_beat(job, **fields)
