"""Rubric-scored answers as training data for the rubric model (``ml.rubric``'s ``rubric/*.jsonl``).

Called by ``grader.learning.services.training_data_export`` into the same folder. Every answer a teacher
scored on every dimension of its question's rubric becomes one record: its box cropped from the scan
(pixels at 150 dpi), or the whole page when it has no box; the rubric with its level descriptors; the
task; the dimension scores in the rubric's order; the feedback the student reads. Split by script with
``ml.training_data.splits_assign`` (the same seed as the reader's records, over the rubric answers'
scripts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from grader.models import Exam
from grader.reading.models import Answer
from ml.rubric import RUBRIC_DIR, Rubric, RubricDimension, RubricLevel, RubricRecord, rubric_record_line
from ml.training_data import SPLITS, splits_assign

from .models import QuestionRubric


def rubric_for_model(link: QuestionRubric) -> Rubric:
    """A saved rubric in ``ml.rubric``'s terms."""
    return Rubric(name=link.rubric.name, dimensions=tuple(
        RubricDimension(name=d.name, max_points=float(d.max_points),
                        levels=tuple(RubricLevel(points=float(level["points"]), label=level["label"],
                                                 description=level.get("description", ""))
                                     for level in d.levels))
        for d in link.rubric.dimensions.all()))


def answer_image(answer: Answer) -> Image.Image | None:
    """The answer's box cut from its scan page (the page when it has no box); None without a page."""
    if answer.page is None or not answer.page.image:
        return None
    with answer.page.image.open("rb") as handle:
        page = Image.open(handle).convert("RGB")
    return page.crop(tuple(int(v) for v in answer.crop)) if answer.crop else page


def rubric_answers_scored(*, exams: Sequence[Exam]):
    """Answers of ``exams`` to rubric questions with a teacher score and a score on every dimension."""
    answers = (Answer.objects.filter(question__exam__in=exams, question__rubric_link__isnull=False, score__isnull=False)
               .select_related("script", "page", "question__rubric_link__rubric")
               .prefetch_related("dimension_scores", "feedback__comments")
               .order_by("question__exam_id", "script__number", "question__order"))
    for answer in answers:
        dimensions = list(answer.question.rubric_link.rubric.dimensions.all())
        scores = {score.dimension_id: score.points for score in answer.dimension_scores.all()}
        if all(d.pk in scores for d in dimensions):
            yield answer, [float(scores[d.pk]) for d in dimensions]


def rubric_records_export(*, exams: Sequence[Exam], out: Path, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                          seed: int = 0) -> dict[str, int]:
    """Write ``out/rubric/<split>.jsonl`` and the images; returns the records per split."""
    out = Path(out)
    scored = [(answer, scores) for answer, scores in rubric_answers_scored(exams=exams)
              if answer.page_id is not None]
    names = {answer.script_id: f"e{answer.script.exam_id}-s{answer.script.number}" for answer, _ in scored}
    split_of = splits_assign(scripts=sorted(set(names.values())), ratios=ratios, seed=seed)
    lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        (out / RUBRIC_DIR / split).mkdir(parents=True, exist_ok=True)
    for answer, scores in scored:
        image = answer_image(answer)
        if image is None:
            continue
        name = names[answer.script_id]
        split = split_of[name]
        path = f"{RUBRIC_DIR}/{split}/a{answer.pk}.png"
        image.save(out / path)
        feedback = getattr(answer, "feedback", None)
        link = answer.question.rubric_link
        lines[split].append(rubric_record_line(RubricRecord(
            image=path, rubric=rubric_for_model(link), scores=tuple(scores),
            feedback=feedback.full_text if feedback else "", task=link.task,
            question=answer.question.label, script=name)))
    for split in SPLITS:
        (out / RUBRIC_DIR / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines[split]))
    return {split: len(lines[split]) for split in SPLITS}
