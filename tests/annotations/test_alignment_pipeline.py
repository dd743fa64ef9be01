"""Scans uploaded through the app are aligned to the blank exam, so template boxes land on the handwriting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotations import selectors as box_selectors
from annotations import services as box_services
from annotations.models import AnswerBox
from grader.folders import exam_folder_load
from grader.models import ScanPage
from ml.boxes import box_iou


@pytest.fixture
def demo_folder(demo_folder_for) -> Path:
    return demo_folder_for(students=5, absent=1, seed=21)


@pytest.fixture
def demo_exam(exam, teacher, demo_folder):
    exam_folder_load(exam=exam, folder=demo_folder, user=teacher)
    return exam


def test_every_demo_box_lands_on_its_true_position_on_every_scan(demo_exam, demo_folder):
    truth = json.loads((demo_folder / "truth.json").read_text())
    overlaps = []
    for script_truth in truth["scripts"]:
        first_page = ScanPage.objects.get(source_index=script_truth["scan_pages"][0])
        script = first_page.script
        for answer in [*script_truth["fields"], *script_truth["answers"]]:
            box = AnswerBox.objects.get(exam=demo_exam, label=answer["label"], parent=None)
            page, bbox, adjusted = box_selectors.box_on_script(script=script, box=box)
            assert page.source_index == script_truth["scan_pages"][answer["template_page"]]
            assert not adjusted
            overlaps.append(box_iou(bbox, answer["scan_box"]))

    assert len(overlaps) == 4 * 15
    assert min(overlaps) >= 0.9, sorted(overlaps)[:5]


def test_every_demo_page_is_aligned_without_flags(demo_exam):
    pages = ScanPage.objects.filter(exam=demo_exam)

    assert all(page.transform["ok"] for page in pages)
    assert not pages.exclude(flag="").exists()
    assert set(pages.values_list("template_index", "position")) == {(0, 0), (1, 1)}


def test_a_teachers_adjustment_moves_only_that_scripts_box(demo_exam, teacher):
    box = AnswerBox.objects.get(exam=demo_exam, label="Q3", parent=None)
    first, second = demo_exam.scripts.order_by("number")[:2]
    before_second = box_selectors.box_on_script(script=second, box=box)[1]

    box_services.adjustment_save(script=first, box=box, bbox=(100, 200, 400, 300), user=teacher)

    assert box_selectors.box_on_script(script=first, box=box)[1:] == ((100, 200, 400, 300), True)
    assert box_selectors.box_on_script(script=second, box=box)[1] == before_second
    assert AnswerBox.objects.get(pk=box.pk).bbox == box.bbox
