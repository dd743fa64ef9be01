"""Read models for the box editor and the per-script box view (plain dicts, ready for JSON).

Boxes are ``[x1, y1, x2, y2]`` in pixels at 150 dpi: template pixels in ``editor_state``, scan pixels
of the script's page in ``script_state`` (with the template box alongside).
"""

from __future__ import annotations

from django.urls import reverse

from grader.models import RESERVED_LABELS, Exam, ScanPage, Script
from ml.alignment import box_map

from .models import AnswerBox, BoxAdjustment, SuggestedBox

BoxPlace = tuple[int, str, tuple[int, int, int, int]]  # (template page, label, bbox in template pixels)


def box_as_dict(box: AnswerBox) -> dict:
    return {
        "id": box.pk,
        "page": box.page,
        "label": box.label,
        "bbox": list(box.bbox),
        "parent": box.parent_id,
        "order": box.order,
        "question": box.question_id,
    }


def box_place(box: AnswerBox) -> BoxPlace:
    """What decides what a box reads: a change of any of it means reading it again on every script."""
    return box.page, box.label, tuple(box.bbox)


def editor_state(*, exam: Exam) -> dict:
    """Everything the template editor needs: pages, boxes (with steps), question labels, suggestions."""
    return {
        "unit": "px@150dpi",
        "pages": [
            {
                "index": page.index,
                "width": page.width,
                "height": page.height,
                "image": reverse("template_page_image", args=[exam.pk, page.index]),
            }
            for page in exam.template_pages.order_by("index")
        ],
        "boxes": [box_as_dict(box) for box in exam.boxes.order_by("page", "parent_id", "order", "y1", "x1")],
        "labels": [*RESERVED_LABELS, *exam.questions.values_list("label", flat=True)],
        "suggestions": box_suggestions_labelled(exam=exam),
    }


def box_suggestions_labelled(*, exam: Exam) -> list[dict]:
    """Pending suggestions in reading order (page, top to bottom, left to right), each with the label
    it most likely takes: the labels not boxed yet, NAME, ID and CLASS first and then the answer key's
    questions in order, handed out in that order. When there are exactly as many suggestions as
    unboxed questions, the questions alone (the identity boxes are then drawn or not wanted). ``steps``
    are the VLM's ordered step boxes inside the suggestion (template px), accepted with it."""
    pending = sorted(exam.suggested_boxes.filter(status=SuggestedBox.Status.PENDING),
                     key=lambda s: (s.page, s.y1 // 20, s.x1))
    boxed = set(exam.boxes.filter(parent=None).values_list("label", flat=True))
    questions = [label for label in exam.questions.order_by("order", "label").values_list("label", flat=True)
                 if label not in boxed]
    wanted = [label for label in RESERVED_LABELS if label not in boxed] + questions
    labels = questions if len(pending) == len(questions) else wanted
    return [
        {"id": s.pk, "page": s.page, "bbox": list(s.bbox), "score": round(s.score, 3), "source": s.source,
         "steps": s.steps, "label": labels[n] if n < len(labels) else ""}
        for n, s in enumerate(pending)
    ]


# ---------------------------------------------------------------- boxes on scripts


def script_page_for_box(*, script: Script, box: AnswerBox) -> ScanPage | None:
    """The script's page that shows the box's template page: the page aligned to it, else the one at
    that position (a page scanned out of order is still found)."""
    pages = script.pages.filter(discarded=False)
    return pages.filter(template_index=box.page).order_by("position").first() or pages.filter(position=box.page).first()


def box_on_script(*, script: Script, box: AnswerBox) -> tuple[ScanPage, tuple[int, int, int, int], bool] | None:
    """Where ``box`` lies on ``script``: (page, bbox in scan pixels, adjusted?), or None without a page.

    A teacher's adjustment wins; otherwise the template box is mapped through the page's alignment
    (the identity when the page could not be aligned).
    """
    page = script_page_for_box(script=script, box=box)
    if page is None:
        return None
    adjustment = BoxAdjustment.objects.filter(script=script, box=box).first()
    if adjustment is not None:
        return page, adjustment.bbox, True
    aligned = page.transform is not None and page.transform["ok"]
    matrix = page.transform["matrix"] if aligned else ((1, 0, 0), (0, 1, 0))
    return page, box_map(bbox=box.bbox, matrix=matrix, page_size=(page.width, page.height)), False


def script_box_as_dict(*, script: Script, box: AnswerBox) -> dict:
    placed = box_on_script(script=script, box=box)
    return {
        "id": box.pk,
        "label": box.label,
        "template_page": box.page,
        "template_bbox": list(box.bbox),
        "scan_page": placed[0].pk if placed else None,
        "bbox": list(placed[1]) if placed else None,
        "adjusted": placed[2] if placed else False,
    }


def script_state(*, script: Script) -> dict:
    """The script's pages (with alignment status) and every top-level box placed on them."""
    exam = script.exam
    return {
        "unit": "px@150dpi",
        "pages": [
            {
                "id": page.pk,
                "position": page.position,
                "width": page.width,
                "height": page.height,
                "image": reverse("page_image", args=[exam.pk, page.pk]),
                "aligned": page.transform is not None and not page.alignment_note,
                "alignment_note": page.alignment_note,
            }
            for page in script.pages.filter(discarded=False).order_by("position")
        ],
        "boxes": [script_box_as_dict(script=script, box=box) for box in exam.boxes.filter(parent=None)],
    }
