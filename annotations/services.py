"""Drawing, importing and exporting answer boxes; adjusting one script's box.

Template boxes are ``[x1, y1, x2, y2]`` in template-page pixels at 150 dpi; adjustments are in scan
pixels of the script's page (also 150 dpi). Every change locks the exam row so that two teachers
editing boxes at once are serialised. Reading follows the boxes, but not from here: the box views
ask ``grader.reading`` to read the boxes a change placed (boxes never import reading).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from PIL import Image

from grader.inputs import MalformedInput, json_parse
from grader.labels import QUESTION_LABEL_PATTERN, question_label_normalise
from grader.models import RESERVED_LABELS, Exam, Question, Script, User
from grader.reading.models import Answer
from ml import boxes as box_tools
from ml.alignment import Alignment, alignment_from_dict
from ml.box_suggest import boxes_suggest
from grader.wording import counted

from .models import AnswerBox, BoxAdjustment, SuggestedBox
from .selectors import box_place, script_page_for_box

logger = logging.getLogger(__name__)

BoxFormat = Literal["annotations", "regions", "hgbench"]
# Steps may overhang their parent by this many pixels: a teacher drags by hand.
_STEP_TOLERANCE = 2


class BoxRejected(ValueError):
    """A box change or an imported file was refused; ``problems`` say why. Nothing was changed."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class BoxNeedsConfirmation(BoxRejected):
    """The change would affect scored work or the answer key; it is made only when the teacher confirms."""


def _page_sizes(exam: Exam) -> list[tuple[int, int]]:
    return [(page.width, page.height) for page in exam.template_pages.order_by("index")]


def _label_clean(raw: str) -> str:
    label = question_label_normalise(raw.strip())
    return label.upper() if label.upper() in RESERVED_LABELS else label


def _label_problem(label: str) -> str | None:
    """Why ``label`` (cleaned) cannot name a box, or None: the answer key's rule for question labels."""
    if not label or label in RESERVED_LABELS or QUESTION_LABEL_PATTERN.fullmatch(label):
        return None  # an empty label is reported by boxes_validate
    return f"Unknown label {label!r}: use NAME, ID, CLASS or a question label like Q1, Q2a or 3 (letters, digits, at most 32)."


def _question_for(exam: Exam, label: str, *, add: bool = True) -> Question | None:
    """The answer-key question a box label stands for, created (worth 1 mark, to be filled in on the
    key) when the key does not have it yet and ``add`` allows; BoxNeedsConfirmation otherwise, so a
    typo in a label never silently grows the key."""
    if label in RESERVED_LABELS:
        return None
    question = exam.questions.filter(label=label).first()
    if question is None:
        if not add:
            raise BoxNeedsConfirmation([f"{label} is not in the answer key. Add {label} to the key as a new "
                                        "question worth 1 mark (fill in its answer on the answer key)?"])
        order = (exam.questions.aggregate(top=Max("order"))["top"] or 0) + 1
        question = Question.objects.create(exam=exam, label=label, order=order, created_with_box=True)
    return question


@transaction.atomic
def box_save(
    *,
    exam: Exam,
    page: int,
    bbox: Sequence[float],
    label: str,
    user: User | None,
    box: AnswerBox | None = None,
    parent: AnswerBox | None = None,
    add_question: bool = False,
) -> AnswerBox:
    """Create or update a box (template pixels). A step box (``parent`` given) takes its parent's label.

    A question label the answer key does not have raises BoxNeedsConfirmation unless ``add_question``:
    then the question is added, and goes again with the box (``box_delete``).
    """
    Exam.objects.select_for_update().get(pk=exam.pk)
    sizes = _page_sizes(exam)
    if parent is not None:
        label = parent.label
        page = parent.page
    label = _label_clean(label)
    candidate = box_tools.AnswerBox(label=label, page=page, bbox=tuple(int(round(v)) for v in bbox))
    problems = box_tools.boxes_validate(boxes=[candidate], page_sizes=sizes)
    if parent is None and (bad_label := _label_problem(label)):
        problems.append(bad_label)
    if parent is None:
        clash = exam.boxes.filter(parent=None, label=label).exclude(pk=box.pk if box else None).first()
        if clash is not None:
            problems.append(f"There is already a {label} box (page {clash.page + 1}).")
    else:
        if parent.is_identity:
            problems.append("NAME, ID and CLASS boxes cannot have steps.")
        if not box_tools.box_contains(parent.bbox, candidate.bbox, tolerance=_STEP_TOLERANCE):
            problems.append(f"A step must lie inside its {parent.label} box.")
    if problems:
        raise BoxRejected(problems)

    if box is None:
        box = AnswerBox(exam=exam)
        if parent is not None:
            box.parent = parent
            box.order = (parent.steps.aggregate(top=Max("order"))["top"] or 0) + 1
    old_bbox = box.bbox if box.pk else None
    box.page, box.label, box.bbox, box.updated_by = page, label, candidate.bbox, user
    box.question = None if box.parent_id else _question_for(exam, label, add=add_question)
    box.save()
    if box.parent_id is None:
        box.steps.update(label=label, page=page)
        if old_bbox is not None and _same_size(old_bbox, box.bbox):
            # A question moved without resizing carries its steps along.
            dx, dy = box.x1 - old_bbox[0], box.y1 - old_bbox[1]
            box.steps.update(x1=F("x1") + dx, y1=F("y1") + dy, x2=F("x2") + dx, y2=F("y2") + dy)
        outside = [step for step in box.steps.all() if not box_tools.box_contains(box.bbox, step.bbox, tolerance=_STEP_TOLERANCE)]
        if outside:
            raise BoxRejected([f"{counted(len(outside), 'step')} of {label} would end up outside it; move them first."])
    return box


def _same_size(a: Sequence[int], b: Sequence[int]) -> bool:
    return a[2] - a[0] == b[2] - b[0] and a[3] - a[1] == b[3] - b[1]


@transaction.atomic
def box_delete(*, box: AnswerBox, confirm: bool = False) -> None:
    """Delete a box with its steps and per-script adjustments; its question and scores stay, except a
    question the box itself added to the key with no teacher score yet, which goes too.

    A question box whose answers already have teacher scores is only deleted with ``confirm``.
    """
    Exam.objects.select_for_update().get(pk=box.exam_id)
    if box.parent_id is None and box.question_id and not confirm:
        scored = Answer.objects.filter(question_id=box.question_id, score__isnull=False).count()
        if scored:
            raise BoxNeedsConfirmation(
                [f"{counted(scored, 'answer')} to {box.label} already {'has a score' if scored == 1 else 'have scores'}. Delete the box anyway? The scores are kept."]
            )
    question_id = box.question_id if box.parent_id is None else None
    box.delete()
    if box.parent_id:
        for order, step in enumerate(AnswerBox.objects.filter(parent_id=box.parent_id).order_by("order"), start=1):
            AnswerBox.objects.filter(pk=step.pk).update(order=order)
    # A question the box added to the key goes with it, unless a teacher has scored its answers.
    Question.objects.filter(pk=question_id, created_with_box=True, boxes=None).exclude(
        answers__score__isnull=False
    ).delete()


def _boxes_parse(*, exam: Exam, fmt: BoxFormat, data: str | bytes, page: int | None) -> list[box_tools.AnswerBox]:
    sizes = _page_sizes(exam)
    if not sizes:
        raise BoxRejected(["Upload the blank exam first: boxes are placed on its pages."])
    try:
        # ml's loaders take any JSON Python reads (nested to any depth, NaN, 1e308); such a file is
        # refused here, before arithmetic on its numbers or its depth can fail.
        json_parse(data)
    except MalformedInput as error:
        raise BoxRejected([str(error)]) from error
    try:
        if fmt == "annotations":
            return box_tools.annotations_load(data=data, page_sizes=sizes)
        if fmt == "hgbench":
            return box_tools.hgbench_load(data=data, page_sizes=sizes)
        return box_tools.region_list_load(data=data, page=page or 0, labels=None, page_sizes=sizes)
    except box_tools.BoxFormatError as error:
        raise BoxRejected(error.problems) from error


@transaction.atomic
def boxes_import(
    *, exam: Exam, fmt: BoxFormat, data: str | bytes, user: User | None, page: int | None = None
) -> dict[str, int | list[int]]:
    """Replace the exam's boxes (or one page's, for the per-page region list) with those in a file.

    All or nothing: a malformed file raises ``BoxRejected`` with every problem. Boxes are matched by
    label, so a box that keeps its label keeps its per-script adjustments. Returns how many boxes were
    ``imported`` and ``removed``, and the ids of those ``placed`` (new or moved) for reading.
    """
    Exam.objects.select_for_update().get(pk=exam.pk)
    incoming = _boxes_parse(exam=exam, fmt=fmt, data=data, page=page)
    cleaned = [_label_clean(box.label) for box in incoming]
    problems = [problem for label in cleaned if (problem := _label_problem(label))]
    problems += [f"{label} is in the file twice." for label in sorted({label for label in cleaned if cleaned.count(label) > 1})]
    if problems:
        raise BoxRejected(problems)
    existing = exam.boxes.filter(parent=None)
    if fmt == "regions":
        # A region list holds one page's question boxes only: NAME, ID and CLASS boxes stay.
        existing = existing.filter(page=page or 0).exclude(label__in=RESERVED_LABELS)
        others = exam.boxes.filter(parent=None).exclude(page=page or 0).values_list("label", flat=True)
        clashes = sorted({box.label for box in incoming} & set(others))
        if clashes:
            raise BoxRejected([f"{label} is already on another page." for label in clashes])
    by_label = {box.label: box for box in existing}
    kept = set()
    placed = []
    for incoming_box in incoming:
        label = _label_clean(incoming_box.label)
        box = by_label.get(label) or AnswerBox(exam=exam, label=label)
        old_place = box_place(box) if box.pk else None
        box.page, box.bbox, box.updated_by = incoming_box.page, incoming_box.bbox, user
        box.question = _question_for(exam, label)
        box.save()
        if old_place != box_place(box):
            placed.append(box.pk)
        box.steps.all().delete()
        for order, step in enumerate(incoming_box.steps, start=1):
            AnswerBox.objects.create(
                exam=exam, page=box.page, label=label, parent=box, order=order, bbox=step.bbox, updated_by=user
            )
        kept.add(box.pk)
    removed = existing.exclude(pk__in=kept)
    removed_count = removed.count()
    removed.delete()
    logger.info("Exam %s: imported %d boxes (%s), removed %d", exam.pk, len(incoming), fmt, removed_count)
    return {"imported": len(incoming), "removed": removed_count, "placed": placed}


def _as_records(exam: Exam) -> list[box_tools.AnswerBox]:
    records = []
    for box in exam.boxes.filter(parent=None).prefetch_related("steps"):
        steps = tuple(
            box_tools.AnswerBox(label=str(step.order), page=box.page, bbox=step.bbox) for step in box.steps.order_by("order")
        )
        records.append(box_tools.AnswerBox(label=box.label, page=box.page, bbox=box.bbox, steps=steps))
    return records


def boxes_export(*, exam: Exam, fmt: BoxFormat, page: int | None = None) -> str:
    """The exam's boxes as a file: seed-001 annotations.json or HG-Bench JSON, or one page's region list.

    Raises ``BoxRejected`` for HG-Bench boxes on a page the blank exam lacks: they are measured
    against their page's size.
    """
    records = _as_records(exam)
    if fmt == "annotations":
        return box_tools.annotations_dump(boxes=records)
    if fmt == "hgbench":
        sizes = _page_sizes(exam)
        pageless = sorted({box.label for box in records if box.page >= len(sizes)})
        if pageless:
            raise BoxRejected([
                f"HG-Bench boxes are measured against their page, and the blank exam has no page for "
                f"{', '.join(pageless)}. Upload the blank exam first, or move those boxes."
            ])
        return box_tools.hgbench_dump(boxes=records, page_sizes=sizes)
    return box_tools.region_list_dump(boxes=records, page=page or 0)


# ---------------------------------------------------------------- one script's boxes


@transaction.atomic
def adjustment_save(*, script: Script, box: AnswerBox, bbox: Sequence[float], user: User | None) -> BoxAdjustment:
    """Move one script's box (scan pixels) without touching the template box."""
    Script.objects.select_for_update().get(pk=script.pk)
    page = script_page_for_box(script=script, box=box)
    if page is None:
        raise BoxRejected([f"Script {script.number} has no page {box.page + 1}."])
    rounded = tuple(int(round(v)) for v in bbox)
    problems = box_tools.boxes_validate(
        boxes=[box_tools.AnswerBox(label=box.label, page=0, bbox=rounded)], page_sizes=[(page.width, page.height)]
    )
    if problems:
        raise BoxRejected(problems)
    adjustment, _ = BoxAdjustment.objects.update_or_create(
        script=script, box=box, defaults={"x1": rounded[0], "y1": rounded[1], "x2": rounded[2], "y2": rounded[3], "updated_by": user}
    )
    return adjustment


@transaction.atomic
def adjustment_reset(*, script: Script, box: AnswerBox) -> None:
    BoxAdjustment.objects.filter(script=script, box=box).delete()


# ---------------------------------------------------------------- suggested boxes


def box_suggestions_enqueue(*, exam: Exam) -> None:
    """Ink suggestions on a CPU worker, and the VLM's on a ``vlm`` worker when a model is configured."""
    from .tasks import box_suggestions_compute_task, vlm_box_suggestions_compute_task

    transaction.on_commit(lambda: box_suggestions_compute_task.delay(exam.pk))
    if settings.VLM_MODEL_PATH:
        transaction.on_commit(lambda: vlm_box_suggestions_compute_task.delay(exam.pk))


def box_suggestion_scripts(*, exam: Exam, pages: int, limit: int) -> list[list[tuple[Image.Image, Alignment]]]:
    """The first ``limit`` scripts with all ``pages`` template pages aligned: item i of a script shows template page i."""
    scripts = []
    for script in exam.scripts.order_by("number"):
        aligned = {
            page.template_index: page
            for page in script.pages.filter(discarded=False, template_index__isnull=False)
            if page.transform["ok"]
        }
        if len(scripts) == limit or set(aligned) != set(range(pages)):
            continue
        found = []
        for index in range(pages):
            with aligned[index].image.open("rb") as handle:
                found.append((Image.open(handle).convert("RGB"), alignment_from_dict(aligned[index].transform)))
        scripts.append(found)
    return scripts


def box_suggestions_store(*, exam: Exam, found: Sequence, sources: Sequence[str]) -> int:
    """Replace the pending suggestions of ``sources`` with ``found`` (each with page, bbox, score, source
    and, from the VLM, ordered ``steps`` inside the bbox; template px), skipping those that overlap an
    existing box."""
    existing = [(box.page, box.bbox) for box in exam.boxes.filter(parent=None)]
    with transaction.atomic():
        Exam.objects.select_for_update().get(pk=exam.pk)
        exam.suggested_boxes.filter(status=SuggestedBox.Status.PENDING, source__in=sources).delete()
        created = 0
        for suggestion in found:
            if any(page == suggestion.page and box_tools.box_iou(bbox, suggestion.bbox) > 0.3 for page, bbox in existing):
                continue
            SuggestedBox.objects.create(
                exam=exam, page=suggestion.page, bbox=suggestion.bbox, score=suggestion.score, source=suggestion.source,
                steps=[list(step) for step in getattr(suggestion, "steps", ())],
            )
            created += 1
    logger.info("Exam %s: %d suggested boxes from %s", exam.pk, created, "/".join(sources))
    return created


def box_suggestions_compute(*, exam_id: int, script_limit: int = 8) -> int:
    """Find handwriting on up to ``script_limit`` aligned scripts and store candidate boxes (template px).

    Replaces earlier pending ink and frame suggestions; candidates that overlap an existing box are skipped.
    """
    exam = Exam.objects.get(pk=exam_id)
    templates = []
    for page in exam.template_pages.order_by("index"):
        with page.image.open("rb") as handle:
            templates.append(Image.open(handle).convert("RGB"))
    scripts = box_suggestion_scripts(exam=exam, pages=len(templates), limit=script_limit)
    found = boxes_suggest(template_pages=templates, scripts=scripts)
    return box_suggestions_store(exam=exam, found=found, sources=["frame", "ink"])


@transaction.atomic
def box_suggestion_decide(
    *, suggestion: SuggestedBox, accept: bool, label: str, bbox: Sequence[float] | None, user: User | None,
    add_question: bool = False,
) -> AnswerBox | None:
    """Accept a suggestion as a labelled box (optionally adjusted) with its suggested steps as the box's
    step boxes, or reject it; a label not in the key asks first, as in ``box_save``."""
    if not accept:
        suggestion.status = SuggestedBox.Status.REJECTED
        suggestion.save(update_fields=["status"])
        return None
    if not label.strip():
        raise BoxRejected(["Give the box a label (NAME, ID, CLASS or a question such as Q3)."])
    box = box_save(exam=suggestion.exam, page=suggestion.page, bbox=bbox or suggestion.bbox, label=label, user=user,
                   add_question=add_question)
    for step in _suggested_steps(suggestion=suggestion, box=box):
        box_save(exam=suggestion.exam, page=box.page, bbox=step, label=box.label, user=user, parent=box)
    suggestion.status = SuggestedBox.Status.ACCEPTED
    suggestion.save(update_fields=["status"])
    return box


def _suggested_steps(*, suggestion: SuggestedBox, box: AnswerBox) -> list[tuple[int, int, int, int]]:
    """The suggestion's steps in the box made from it (template px), in order: moved with its top-left
    corner when the teacher adjusted the box, cut to it, those left without area dropped. NAME, ID and
    CLASS boxes take none."""
    if box.is_identity:
        return []
    dx, dy = box.x1 - suggestion.x1, box.y1 - suggestion.y1
    steps = []
    for step in suggestion.steps:
        # Only a hand-edited backup holds anything but four numbers.
        if isinstance(step, list) and len(step) == 4 and all(isinstance(v, int | float) for v in step):
            moved = box_tools.box_clip((step[0] + dx, step[1] + dy, step[2] + dx, step[3] + dy), bounds=box.bbox)
            if box_tools.box_area(moved) > 0:
                steps.append(moved)
    return steps
