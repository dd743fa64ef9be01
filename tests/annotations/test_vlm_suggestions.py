"""The VLM's box suggestions (HG-Bench's prompt) join the ink's in the box editor, with their source shown."""

from __future__ import annotations

import json

import pytest
from django.core.files import File
from django.urls import reverse
from model_bakery import baker

from annotations import selectors
from annotations import services as box_services
from annotations.models import SuggestedBox
from annotations.vlm_suggestions import vlm_box_suggestions_compute
from grader import services
from grader.models import TemplatePage
from grader.reading import services as reading_services
from grader.scans import services as scans
from ml.box_suggest_vlm import VlmBoxConfig, prompt_build
from ml.boxes import box_iou, box_to_1000
from ml.demo_data import annotations as demo_annotations


@pytest.fixture
def scanned_exam(exam, teacher, demo_folder_for):
    folder = demo_folder_for(students=4, absent=0, seed=12)
    with (folder / "template.pdf").open("rb") as handle:
        services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    with (folder / "scans.pdf").open("rb") as handle:
        intake = scans.scan_files_accept(exam=exam, files=[File(handle, name="scans.pdf")], user=teacher)
    scans.scan_upload_process(upload_id=intake.accepted[0].pk)
    return exam


def _true_boxes() -> list[tuple[int, tuple[int, int, int, int]]]:
    return [(int(page), (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]))
            for page, boxes in demo_annotations().items() for b in boxes]


# Q5 (page 1; [142, 1279, 1152, 1432] px, [115, 729, 929, 816] on the 0-1000 grid) written in two steps.
Q5 = (0, (142, 1279, 1152, 1432))
Q5_STEPS = [{"step_id": 1, "box_2d": [120, 735, 500, 810]}, {"step_id": 2, "box_2d": [510, 735, 926, 810]}]
# The same in template px of the 1240 x 1754 page: x * 1.24 and y * 1.754, rounded outwards.
Q5_STEP_PIXELS = [(148, 1289, 620, 1421), (632, 1289, 1149, 1421)]


class KnownReply:
    """A model that answers every script with the demo's true boxes as an HG-Bench list (0-1000 grid),
    Q5 with ``Q5_STEPS`` when ``steps``."""

    def __init__(self, *, steps: bool = False) -> None:
        self.calls: list[tuple[list[tuple[int, int]], str]] = []
        self.steps = steps

    def __call__(self, pages, text):
        self.calls.append(([page.size for page in pages], text))
        items = [{"page": page + 1, "type": "complete_answer_box",
                  "box_2d": list(box_to_1000(bbox, page_size=pages[page].size)),
                  **({"steps": Q5_STEPS} if self.steps and (page, bbox) == Q5 else {})}
                 for page, bbox in _true_boxes()]
        return "```json\n" + json.dumps(items) + "\n```"


def test_a_known_reply_becomes_vlm_suggestions_on_the_true_boxes(scanned_exam):
    model = KnownReply()
    created = vlm_box_suggestions_compute(exam_id=scanned_exam.pk, generate=model, config=VlmBoxConfig(scripts=2))

    sizes = [(page.width, page.height) for page in scanned_exam.template_pages.order_by("index")]
    # Two scripts, each one call with all its pages in the template frame.
    assert model.calls == [(sizes, prompt_build(pages=len(sizes)))] * 2
    suggestions = list(SuggestedBox.objects.filter(exam=scanned_exam))
    assert created == len(suggestions) == len(_true_boxes())
    assert {s.source for s in suggestions} == {"vlm"} and {s.score for s in suggestions} == {1.0}
    for page, bbox in _true_boxes():
        assert any(s.page == page and box_iou(s.bbox, bbox) > 0.95 for s in suggestions)


def test_vlm_and_ink_suggestions_stand_side_by_side_in_the_editor(scanned_exam, client_for, teacher):
    box_services.box_suggestions_compute(exam_id=scanned_exam.pk)
    ink = SuggestedBox.objects.filter(exam=scanned_exam).count()
    vlm_box_suggestions_compute(exam_id=scanned_exam.pk, generate=KnownReply())
    # Running the ink again replaces only its own pending suggestions.
    box_services.box_suggestions_compute(exam_id=scanned_exam.pk)

    state = selectors.editor_state(exam=scanned_exam)
    sources = [s["source"] for s in state["suggestions"]]
    assert sources.count("vlm") == len(_true_boxes()) and len(sources) - sources.count("vlm") == ink
    page = client_for(teacher).get(reverse("box_editor", args=[scanned_exam.pk])).content.decode()
    assert "· VLM</li>" in page and "· frame</li>" in page


def test_vlm_suggestions_overlapping_existing_boxes_are_not_offered(scanned_exam, teacher):
    box_services.boxes_import(exam=scanned_exam, fmt="annotations", data=json.dumps(demo_annotations()), user=teacher)
    assert vlm_box_suggestions_compute(exam_id=scanned_exam.pk, generate=KnownReply()) == 0


def test_a_vlm_suggestion_is_accepted_like_any_other(scanned_exam, client_for, teacher):
    vlm_box_suggestions_compute(exam_id=scanned_exam.pk, generate=KnownReply())
    first = selectors.editor_state(exam=scanned_exam)["suggestions"][0]
    response = client_for(teacher).post(reverse("suggestion_decide", args=[scanned_exam.pk, first["id"]]),
                                        data=json.dumps({"accept": True, "label": first["label"]}),
                                        content_type="application/json")
    assert response.status_code == 200
    assert scanned_exam.boxes.filter(label=first["label"], page=first["page"]).exists()


def test_a_reply_with_steps_suggests_its_steps_and_accepting_makes_them_the_boxes_steps(scanned_exam, client_for,
                                                                                         teacher):
    assert [(page.width, page.height) for page in scanned_exam.template_pages.order_by("index")][0] == (1240, 1754)
    vlm_box_suggestions_compute(exam_id=scanned_exam.pk, generate=KnownReply(steps=True))

    with_steps = SuggestedBox.objects.exclude(steps=[]).get(exam=scanned_exam)
    assert (with_steps.page, with_steps.bbox) == (0, (142, 1278, 1152, 1432))
    assert with_steps.steps == [list(step) for step in Q5_STEP_PIXELS]
    assert [s["steps"] for s in selectors.editor_state(exam=scanned_exam)["suggestions"] if s["steps"]] == [
        with_steps.steps]
    teacher_client = client_for(teacher)
    page = teacher_client.get(reverse("box_editor", args=[scanned_exam.pk])).content.decode()
    assert ("<li>Step 1: (148, 1289) to (620, 1421)</li><li>Step 2: (632, 1289) to (1149, 1421)</li>" in page)

    response = teacher_client.post(reverse("suggestion_decide", args=[scanned_exam.pk, with_steps.pk]),
                                   data=json.dumps({"accept": True, "label": "Q5", "add_question": True}),
                                   content_type="application/json")
    assert response.status_code == 200
    box = scanned_exam.boxes.get(label="Q5", parent=None)
    assert [(step.order, step.label, step.page, step.bbox) for step in box.steps.order_by("order")] == [
        (1, "Q5", 0, Q5_STEP_PIXELS[0]), (2, "Q5", 0, Q5_STEP_PIXELS[1])]
    assert [step["bbox"] for step in response.json()["steps"]] == [list(step) for step in Q5_STEP_PIXELS]
    assert {step["parent"] for step in response.json()["steps"]} == {response.json()["box"]["id"]}


def test_steps_follow_a_suggested_box_the_teacher_moved_or_shrank_before_accepting(exam, teacher):
    TemplatePage.objects.create(exam=exam, index=0, width=1240, height=1754, image="t/page-1.png")
    suggestion = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=100, x2=500, y2=300, source="vlm",
                            steps=[[100, 100, 300, 300], [300, 100, 500, 300]])
    moved = box_services.box_suggestion_decide(suggestion=suggestion, accept=True, label="Q1", bbox=[110, 120, 510, 320],
                                               user=teacher, add_question=True)
    assert [step.bbox for step in moved.steps.order_by("order")] == [(110, 120, 310, 320), (310, 120, 510, 320)]

    narrower = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=600, x2=500, y2=800, source="vlm",
                          steps=[[100, 600, 300, 800], [300, 600, 500, 800]])
    shrunk = box_services.box_suggestion_decide(suggestion=narrower, accept=True, label="Q2", bbox=[100, 600, 280, 800],
                                                user=teacher, add_question=True)
    # The second step no longer fits in the box at all; the first is cut to it.
    assert [step.bbox for step in shrunk.steps.all()] == [(100, 600, 280, 800)]


def test_a_suggestion_accepted_as_a_name_box_takes_no_steps(exam, teacher):
    TemplatePage.objects.create(exam=exam, index=0, width=1240, height=1754, image="t/page-1.png")
    suggestion = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=100, x2=500, y2=300, source="vlm",
                            steps=[[100, 100, 300, 300]])
    box = box_services.box_suggestion_decide(suggestion=suggestion, accept=True, label="NAME", bbox=None, user=teacher)
    assert box.label == "NAME" and not box.steps.exists()


def test_steps_that_are_not_four_numbers_as_a_hand_edited_backup_may_hold_are_left_out(exam, teacher):
    TemplatePage.objects.create(exam=exam, index=0, width=1240, height=1754, image="t/page-1.png")
    suggestion = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=100, x2=500, y2=300, source="vlm",
                            steps=["x", [100, 100, 300], {"box_2d": [1, 2, 3, 4]}, [100, 100, "300", 300],
                                   [300, 100, 500, 300]])
    box = box_services.box_suggestion_decide(suggestion=suggestion, accept=True, label="Q1", bbox=None, user=teacher,
                                             add_question=True)
    assert [step.bbox for step in box.steps.all()] == [(300, 100, 500, 300)]


def test_without_a_complete_aligned_script_nothing_is_asked(exam):
    model = KnownReply()
    assert vlm_box_suggestions_compute(exam_id=exam.pk, generate=model) == 0
    assert model.calls == []


def test_the_suggest_button_runs_the_tiny_vlm_beside_the_ink(scanned_exam, client_for, teacher, settings, tmp_path,
                                                              monkeypatch, django_capture_on_commit_callbacks):
    from ml.recognition.vlm import VlmConfig, VlmRecognizer
    from ml.recognition.vlm_tiny import tiny_model_build

    settings.VLM_MODEL_PATH = str(tiny_model_build(tmp_path / "tiny"))
    asked = []

    def engine_get(name, **kwargs):
        # The configured model, seeing pages at the tiny model's size and writing short replies (full pages
        # and replies take minutes on a CPU).
        asked.append(name)
        return VlmRecognizer(VlmConfig(model_path=settings.VLM_MODEL_PATH, max_pixels=28 * 28 * 16, max_new_tokens=16,
                                       confidence=False))

    monkeypatch.setattr(reading_services, "engine_get", engine_get)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(teacher).post(reverse("suggestions_start", args=[scanned_exam.pk]))
    assert response.status_code == 302
    assert asked == ["vlm"]
    sources = set(SuggestedBox.objects.filter(exam=scanned_exam).values_list("source", flat=True))
    assert sources == {"frame"}  # the ink's; the random model's reply held no box


def test_the_vlm_task_is_routed_to_the_gpu_workers_queue():
    from grader.celery import app

    route = app.amqp.router.route({}, "annotations.tasks.vlm_box_suggestions_compute_task")
    assert route["queue"].name == "vlm"
    assert app.amqp.router.route({}, "annotations.tasks.box_suggestions_compute_task")["queue"].name == "default"
