"""Box services that reach into scored work and scanned scripts: delete confirmation and suggestions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files import File
from django.urls import reverse
from model_bakery import baker

from annotations import services as box_services
from annotations.models import AnswerBox, SuggestedBox
from grader import services
from grader.scans import services as scans
from grader.reading.models import Answer
from ml.boxes import box_iou
from ml.demo_data import annotations as demo_annotations


@pytest.fixture
def scanned_exam(exam, teacher, demo_folder_for):
    folder = demo_folder_for(students=6, absent=0, seed=12)
    with (folder / "template.pdf").open("rb") as handle:
        services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    with (folder / "scans.pdf").open("rb") as handle:
        intake = scans.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=teacher)
    scans.scan_upload_process(upload_id=intake.accepted[0].pk)
    return exam


def test_suggested_boxes_from_the_scans_cover_the_demo_answer_boxes(scanned_exam):
    created = box_services.box_suggestions_compute(exam_id=scanned_exam.pk)

    true_boxes = [
        (int(page), (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]))
        for page, boxes in demo_annotations().items()
        for b in boxes
    ]
    suggestions = list(SuggestedBox.objects.filter(exam=scanned_exam))
    found = [
        any(s.page == page and box_iou(s.bbox, bbox) >= 0.5 for s in suggestions) for page, bbox in true_boxes
    ]
    assert created == len(suggestions)
    assert sum(found) >= 14 and len(suggestions) <= 16


def test_suggestions_overlapping_existing_boxes_are_not_offered_again(scanned_exam, teacher):
    box_services.boxes_import(exam=scanned_exam, fmt="annotations", data=_demo_annotations_json(), user=teacher)

    assert box_services.box_suggestions_compute(exam_id=scanned_exam.pk) == 0


def _demo_annotations_json() -> str:
    import json

    return json.dumps(demo_annotations())


def test_deleting_a_box_whose_answers_have_scores_needs_confirmation(scanned_exam, teacher, client_for):
    box = box_services.box_save(exam=scanned_exam, page=0, bbox=(100, 100, 400, 200), label="Q1", user=teacher,
                                add_question=True)
    baker.make(Answer, script=scanned_exam.scripts.first(), question=box.question, score=Decimal("1"))
    client = client_for(teacher)
    url = reverse("box_delete", args=[scanned_exam.pk, box.pk])

    refused = client.post(url, content_type="application/json")
    assert refused.status_code == 409 and refused.json()["confirm"] is True
    assert "1 answer to Q1 already has a score" in refused.json()["problems"][0]
    assert AnswerBox.objects.filter(pk=box.pk).exists()

    confirmed = client.post(url, {"confirm": True}, content_type="application/json")
    assert confirmed.status_code == 200
    assert not AnswerBox.objects.filter(pk=box.pk).exists()
    assert Answer.objects.filter(question=box.question, score=Decimal("1")).exists()
