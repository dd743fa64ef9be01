"""The box editor's pages and JSON API: saving, moving, steps, deleting, import/export, permissions,
and one script's box adjustments. Boxes are [x1, y1, x2, y2] in pixels at 150 dpi."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from model_bakery import baker

from annotations import selectors
from annotations.models import AnswerBox, BoxAdjustment, SuggestedBox
from grader.models import Question, ScanPage, ScanUpload, Script, TemplatePage

A4 = (1240, 1754)


@pytest.fixture
def pages(exam) -> list[TemplatePage]:
    """Two A4 template pages (the API only needs their sizes; no image is read)."""
    return [
        TemplatePage.objects.create(exam=exam, index=index, width=A4[0], height=A4[1], image=f"t/page-{index + 1}.png")
        for index in range(2)
    ]


@pytest.fixture
def owner(client_for, teacher):
    return client_for(teacher)


def box(exam, label, bbox, page=0, **fields) -> AnswerBox:
    made = AnswerBox(exam=exam, label=label, page=page, **fields)
    made.bbox = bbox
    made.save()
    return made


def post_json(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def save(client, exam, **body):
    """Save a box, saying yes when its label would add a question to the key (unless told otherwise)."""
    return post_json(client, reverse("box_save", args=[exam.pk]), {"add_question": True, **body})


def snapshot(exam) -> list[tuple]:
    """Every box of the exam and every question label, to show that nothing changed."""
    boxes = sorted((b.label, b.page, b.bbox, b.parent_id, b.order) for b in AnswerBox.objects.filter(exam=exam))
    return [*boxes, *sorted(Question.objects.filter(exam=exam).values_list("label", flat=True))]


def tops(exam) -> dict[str, tuple[int, tuple[int, int, int, int]]]:
    return {b.label: (b.page, b.bbox) for b in AnswerBox.objects.filter(exam=exam, parent=None)}


# ---------------------------------------------------------------- saving boxes


def test_a_box_labelled_with_a_question_the_key_lacks_asks_before_adding_it(owner, exam, pages):
    before = snapshot(exam)

    response = save(owner, exam, page=0, bbox=[100, 200, 500, 300], label="Q13", add_question=False)

    assert response.status_code == 409 and response.json()["confirm"] is True
    assert "Q13 is not in the answer key" in response.json()["problems"][0]
    assert snapshot(exam) == before


def test_a_question_added_by_drawing_its_box_goes_when_the_box_is_deleted(owner, exam, pages):
    kept = baker.make(Question, exam=exam, label="Q1", order=1)
    save(owner, exam, page=0, bbox=[100, 200, 500, 300], label="Q1")
    save(owner, exam, page=0, bbox=[100, 400, 500, 500], label="Q13")
    drawn = AnswerBox.objects.get(exam=exam, label="Q13")
    assert Question.objects.get(exam=exam, label="Q13").created_with_box

    for made in AnswerBox.objects.filter(exam=exam):
        post_json(owner, reverse("box_delete", args=[exam.pk, made.pk]), {})

    assert list(Question.objects.filter(exam=exam)) == [kept]
    assert not AnswerBox.objects.filter(pk=drawn.pk).exists()


def test_saving_a_new_box_creates_it_and_its_question(owner, exam, pages, teacher):
    response = save(owner, exam, page=1, bbox=[100, 200, 500, 300], label="q3")

    assert response.status_code == 200
    data = response.json()
    assert data["unit"] == "px@150dpi"
    saved = AnswerBox.objects.get(exam=exam)
    assert (saved.label, saved.page, saved.bbox, saved.updated_by) == ("Q3", 1, (100, 200, 500, 300), teacher)
    assert saved.question == Question.objects.get(exam=exam, label="Q3")
    assert data["box"] == {"id": saved.pk, "page": 1, "label": "Q3", "bbox": [100, 200, 500, 300], "parent": None, "order": 0, "question": saved.question_id}


def test_saving_a_box_for_a_question_of_the_key_links_it_without_a_new_question(owner, exam, pages):
    question = baker.make(Question, exam=exam, label="Q1", order=1)

    assert save(owner, exam, page=0, bbox=[10, 10, 200, 80], label="1").status_code == 200

    assert AnswerBox.objects.get(exam=exam).question == question
    assert Question.objects.filter(exam=exam).count() == 1


def test_an_identity_box_has_no_question(owner, exam, pages):
    assert save(owner, exam, page=0, bbox=[10, 10, 200, 80], label="name").status_code == 200

    saved = AnswerBox.objects.get(exam=exam)
    assert (saved.label, saved.question) == ("NAME", None)
    assert not Question.objects.filter(exam=exam).exists()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"page": 0, "bbox": [10, 500, 200, 580], "label": "Q1"}, "already a Q1 box"),
        ({"page": 0, "bbox": [10, 500, 200, 580], "label": ""}, "label is empty"),
        ({"page": 0, "bbox": [10, 500, 200, 580], "label": "Q1 ???"}, "Unknown label"),
        ({"page": 0, "bbox": [10, 500, 200, 580], "label": "Q" * 40}, "longer than 32"),
        ({"page": 0, "bbox": [200, 500, 200, 580], "label": "Q2"}, "width must be positive"),
        ({"page": 0, "bbox": [10, 580, 200, 580], "label": "Q2"}, "height must be positive"),
        ({"page": 0, "bbox": [1100, 500, 1400, 580], "label": "Q2"}, "outside the 1240x1754 px page"),
        ({"page": 0, "bbox": [10, -50, 200, 80], "label": "Q2"}, "outside the 1240x1754 px page"),
        ({"page": 5, "bbox": [10, 500, 200, 580], "label": "Q2"}, "page 6 does not exist"),
        ({"page": 0, "bbox": [10, 500, 200], "label": "Q2"}, "bbox must be [x1, y1, x2, y2]"),
        ({"page": "one", "bbox": [10, 500, 200, 580], "label": "Q2"}, "page must be a 0-based page number"),
    ],
    ids=["duplicate", "empty", "unknown", "too-long", "zero-width", "zero-height", "off-right", "off-top", "no-page", "three-numbers", "page-text"],
)
def test_a_bad_box_is_refused_with_the_reason_and_nothing_changes(owner, exam, pages, body, problem):
    box(exam, "Q1", (10, 10, 200, 80), question=baker.make(Question, exam=exam, label="Q1"))
    before = snapshot(exam)

    response = save(owner, exam, **body)

    assert response.status_code == 400
    assert any(problem in text for text in response.json()["problems"]), response.json()
    assert snapshot(exam) == before


def test_a_request_that_is_not_json_is_refused(owner, exam, pages):
    response = owner.post(reverse("box_save", args=[exam.pk]), data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["problems"][0]
    assert not AnswerBox.objects.exists()


def test_moving_and_resizing_a_box_updates_it(owner, exam, pages):
    moved = box(exam, "Q1", (100, 100, 300, 200))

    assert save(owner, exam, id=moved.pk, bbox=[110, 95, 300, 200]).status_code == 200
    moved.refresh_from_db()
    assert (moved.bbox, moved.label, moved.page) == ((110, 95, 300, 200), "Q1", 0)

    assert save(owner, exam, id=moved.pk, bbox=[110, 95, 350, 260], label="Q1").status_code == 200
    moved.refresh_from_db()
    assert moved.bbox == (110, 95, 350, 260)
    assert AnswerBox.objects.count() == 1


def test_renaming_a_box_links_it_to_the_new_question(owner, exam, pages):
    renamed = box(exam, "Q1", (100, 100, 300, 200))

    assert save(owner, exam, id=renamed.pk, bbox=[100, 100, 300, 200], label="Q7").status_code == 200

    renamed.refresh_from_db()
    assert renamed.label == "Q7"
    assert renamed.question.label == "Q7"


def test_moving_a_box_onto_a_label_already_used_is_refused(owner, exam, pages):
    box(exam, "Q1", (100, 100, 300, 200))
    second = box(exam, "Q2", (100, 300, 300, 400))

    response = save(owner, exam, id=second.pk, bbox=[100, 300, 300, 400], label="Q1")

    assert response.status_code == 400
    second.refresh_from_db()
    assert second.label == "Q2"


# ---------------------------------------------------------------- steps


def test_a_step_inside_its_question_is_saved_with_the_next_order(owner, exam, pages):
    question = box(exam, "Q1", (100, 100, 600, 400))
    box(exam, "Q1", (110, 110, 300, 200), parent=question, order=1)

    response = save(owner, exam, page=0, bbox=[110, 210, 590, 390], label="ignored", parent=question.pk)

    assert response.status_code == 200
    step = AnswerBox.objects.get(pk=response.json()["box"]["id"])
    assert (step.parent, step.order, step.label, step.page, step.question) == (question, 2, "Q1", 0, None)


def test_a_step_outside_its_question_is_refused(owner, exam, pages):
    question = box(exam, "Q1", (100, 100, 600, 400))

    response = save(owner, exam, page=0, bbox=[500, 300, 700, 450], parent=question.pk)

    assert response.status_code == 400
    assert response.json()["problems"] == ["A step must lie inside its Q1 box."]
    assert not question.steps.exists()


def test_an_identity_box_cannot_have_steps(owner, exam, pages):
    name = box(exam, "NAME", (100, 100, 600, 400))

    response = save(owner, exam, page=0, bbox=[110, 110, 200, 200], parent=name.pk)

    assert response.status_code == 400
    assert "cannot have steps" in response.json()["problems"][0]


def test_moving_a_question_carries_its_steps_along(owner, exam, pages):
    question = box(exam, "Q1", (100, 100, 600, 400))
    step = box(exam, "Q1", (110, 110, 300, 200), parent=question, order=1)

    assert save(owner, exam, id=question.pk, bbox=[130, 90, 630, 390]).status_code == 200

    step.refresh_from_db()
    assert step.bbox == (140, 100, 330, 190)


def test_shrinking_a_question_past_its_steps_is_refused(owner, exam, pages):
    question = box(exam, "Q1", (100, 100, 600, 400))
    step = box(exam, "Q1", (110, 110, 590, 200), parent=question, order=1)

    response = save(owner, exam, id=question.pk, bbox=[100, 100, 400, 400])

    assert response.status_code == 400
    assert "outside it" in response.json()["problems"][0]
    question.refresh_from_db()
    step.refresh_from_db()
    assert (question.bbox, step.bbox) == ((100, 100, 600, 400), (110, 110, 590, 200))


def test_deleting_a_box_removes_its_steps_too(owner, exam, pages):
    question = box(exam, "Q1", (100, 100, 600, 400), question=baker.make(Question, exam=exam, label="Q1"))
    box(exam, "Q1", (110, 110, 300, 200), parent=question, order=1)
    box(exam, "Q1", (110, 210, 300, 300), parent=question, order=2)
    other = box(exam, "Q2", (100, 500, 600, 700))

    response = owner.post(reverse("box_delete", args=[exam.pk, question.pk]))

    assert response.status_code == 200
    assert response.json() == {"deleted": question.pk}
    assert list(AnswerBox.objects.filter(exam=exam)) == [other]
    assert Question.objects.filter(exam=exam, label="Q1").exists(), "the answer key keeps its question"


def test_deleting_a_step_renumbers_the_others(owner, exam, pages):
    question = box(exam, "Q1", (100, 100, 600, 400))
    first = box(exam, "Q1", (110, 110, 300, 200), parent=question, order=1)
    second = box(exam, "Q1", (110, 210, 300, 300), parent=question, order=2)

    assert owner.post(reverse("box_delete", args=[exam.pk, first.pk])).status_code == 200

    second.refresh_from_db()
    assert second.order == 1


# ---------------------------------------------------------------- import and export

ANNOTATIONS = {
    "0": [
        {"x": 100, "y": 50, "width": 400, "height": 60, "label": "NAME"},
        {"x": 100, "y": 300, "width": 900, "height": 200, "label": "Q1"},
    ],
    "1": [{"x": 100, "y": 100, "width": 900, "height": 300, "label": "Q2"}],
}
REGIONS = [{"index": 1, "bbox": [100, 300, 1000, 500]}, {"index": 2, "bbox": [100, 600, 1000, 800]}]
HGBENCH = [
    {"type": "complete_answer_box", "page": 1, "box_2d": [100, 200, 800, 300], "label": "Q1",
     "steps": [{"step_id": 1, "box_2d": [110, 210, 790, 250]}, {"step_id": 2, "box_2d": [110, 255, 790, 295]}]},
    {"type": "complete_answer_box", "page": 2, "box_2d": [100, 100, 800, 400]},
]


def import_file(client, exam, fmt, content, page=None, name="boxes.json"):
    data = {"format": fmt, "file": SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)}
    if page is not None:
        data["page"] = page
    return client.post(reverse("boxes_import", args=[exam.pk]), data, follow=True)


def test_importing_annotations_replaces_the_boxes(owner, exam, pages):
    box(exam, "Q9", (10, 10, 100, 100))

    response = import_file(owner, exam, "annotations", json.dumps(ANNOTATIONS))

    assert "Imported 3 boxes from boxes.json; 1 removed." in response.content.decode()
    assert tops(exam) == {"NAME": (0, (100, 50, 500, 110)), "Q1": (0, (100, 300, 1000, 500)), "Q2": (1, (100, 100, 1000, 400))}
    assert set(Question.objects.filter(exam=exam).values_list("label", flat=True)) >= {"Q1", "Q2"}


def test_importing_a_region_list_replaces_that_pages_questions_and_keeps_its_identity_boxes(owner, exam, pages):
    box(exam, "NAME", (100, 50, 500, 110))
    box(exam, "Q7", (100, 900, 500, 1000))
    box(exam, "Q8", (100, 900, 500, 1000), page=1)

    response = import_file(owner, exam, "regions", json.dumps(REGIONS), page=1)

    assert "Imported 2 boxes" in response.content.decode()
    assert tops(exam) == {
        "NAME": (0, (100, 50, 500, 110)),
        "Q1": (0, (100, 300, 1000, 500)),
        "Q2": (0, (100, 600, 1000, 800)),
        "Q8": (1, (100, 900, 500, 1000)),
    }


def test_importing_hgbench_converts_the_grid_to_pixels_with_steps(owner, exam, pages):
    import_file(owner, exam, "hgbench", json.dumps(HGBENCH))

    assert tops(exam) == {"Q1": (0, (124, 351, 992, 526)), "Q2": (1, (124, 175, 992, 702))}
    q1 = AnswerBox.objects.get(exam=exam, label="Q1", parent=None)
    assert [(s.order, s.label, s.bbox) for s in q1.steps.order_by("order")] == [
        (1, "Q1", (136, 368, 980, 438)),
        (2, "Q1", (136, 447, 980, 517)),
    ]


@pytest.mark.parametrize(
    ("fmt", "content", "reason"),
    [
        ("annotations", "{not json", "not valid JSON"),
        ("annotations", json.dumps({"0": [{"x": 1, "y": 2, "label": "Q1"}]}), "page 1, box 1: missing width, height"),
        ("annotations", json.dumps({"0": [{"x": 1200, "y": 2, "width": 300, "height": 50, "label": "Q1"}]}), "lies outside the 1240x1754 px page"),
        ("regions", "[", "not valid JSON"),
        ("regions", json.dumps([{"bbox": [1, 2, 3, 4]}]), "region 1: missing index"),
        ("regions", json.dumps([{"index": 1, "bbox": [100, 1700, 300, 1900]}]), "lies outside"),
        ("hgbench", "nope", "not valid JSON"),
        ("hgbench", json.dumps([{"page": 1}]), "item 1: missing box_2d"),
        ("hgbench", json.dumps([{"page": 3, "box_2d": [1, 2, 3, 4]}]), "page 3 does not exist"),
        ("annotations", json.dumps({"0": [{"x": 1, "y": 2, "width": 30, "height": 50, "label": "Q1 ??"}]}), "Unknown label"),
    ],
)
def test_a_malformed_import_changes_nothing_and_shows_the_reason(owner, exam, pages, fmt, content, reason):
    box(exam, "Q9", (10, 10, 100, 100))
    before = snapshot(exam)

    response = import_file(owner, exam, fmt, content)

    page = response.content.decode()
    assert reason in page
    assert "Nothing was imported; the boxes are as they were." in page
    assert snapshot(exam) == before


def test_an_import_without_a_file_or_format_asks_for_them(owner, exam, pages):
    response = owner.post(reverse("boxes_import", args=[exam.pk]), {"format": "weird"}, follow=True)

    assert "Choose a file and its format." in response.content.decode()


def _steps_of(exam):
    return {b.label: [s.bbox for s in b.steps.order_by("order")] for b in AnswerBox.objects.filter(exam=exam, parent=None)}


@pytest.mark.parametrize(("fmt", "page", "with_steps", "tolerance"), [("annotations", None, False, 0), ("regions", 1, False, 0), ("hgbench", None, True, 1)])
def test_an_export_downloads_and_imports_back_to_the_same_boxes(owner, exam, pages, fmt, page, with_steps, tolerance):
    if fmt != "regions":
        box(exam, "NAME", (100, 50, 500, 110))
        box(exam, "Q3", (101, 903, 777, 1001), page=1)
    first = box(exam, "Q1", (100, 300, 1000, 500))
    box(exam, "Q2", (100, 600, 1000, 800))
    if with_steps:
        box(exam, "Q1", (113, 311, 997, 401), parent=first, order=1)
        box(exam, "Q1", (113, 405, 997, 497), parent=first, order=2)
    before, steps_before = tops(exam), _steps_of(exam)

    url = reverse("boxes_export", args=[exam.pk, fmt]) + (f"?page={page}" if page else "")
    response = owner.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith(f'attachment; filename="exam-{exam.pk}-')
    content = response.content
    AnswerBox.objects.filter(exam=exam).delete()
    import_file(owner, exam, fmt, content, page=page)

    after = tops(exam)
    assert after.keys() == before.keys()
    for label, (page_index, bbox) in before.items():
        assert after[label][0] == page_index
        assert all(abs(a - b) <= tolerance for a, b in zip(after[label][1], bbox, strict=True)), (label, after[label], bbox)
    if with_steps:
        assert [len(v) for v in _steps_of(exam).values()] == [len(v) for v in steps_before.values()]


def test_exporting_an_unknown_format_is_not_found(owner, exam, pages):
    assert owner.get(reverse("boxes_export", args=[exam.pk, "csv"])).status_code == 404
    assert owner.get(reverse("boxes_export", args=[exam.pk, "regions"]) + "?page=abc").status_code == 400


# ---------------------------------------------------------------- the editor page and the JSON state


def test_the_editor_page_renders_the_state_json_and_the_tools(owner, exam, pages):
    question = box(exam, "Q1", (100, 300, 1000, 500))
    box(exam, "Q1", (110, 310, 990, 400), parent=question, order=1)
    baker.make(SuggestedBox, exam=exam, page=1, x1=10, y1=20, x2=300, y2=90, score=0.5, source="ink")

    response = owner.get(reverse("box_editor", args=[exam.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert '<script id="editor-state" type="application/json">' in page
    assert response.context["state"] == selectors.editor_state(exam=exam)
    state = json.loads(page.split('<script id="editor-state" type="application/json">')[1].split("</script>")[0])
    assert state["boxes"][0]["bbox"] == [100, 300, 1000, 500]
    assert [p["index"] for p in state["pages"]] == [0, 1]
    assert len(state["suggestions"]) == 1
    assert 'data-can-change="true"' in page
    assert "js/box-editor.js" in page
    for text in ('action="' + reverse("boxes_import", args=[exam.pk]) + '"', "Suggest boxes from the scans", "Region list, page 2", "Page 2"):
        assert text in page
    assert reverse("template_page_image", args=[exam.pk, 1]) in page


def test_the_box_list_json_matches_the_editor_state(owner, exam, pages):
    box(exam, "ID", (100, 50, 500, 110))

    response = owner.get(reverse("box_list", args=[exam.pk]))

    assert response.json() == selectors.editor_state(exam=exam)
    assert response.json()["unit"] == "px@150dpi"


def test_a_department_head_sees_the_editor_read_only(client_for, head, exam, pages):
    box(exam, "Q1", (100, 300, 1000, 500))

    response = client_for(head).get(reverse("box_editor", args=[exam.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-can-change="false"' in page
    assert "Read only" in page
    assert reverse("boxes_import", args=[exam.pk]) not in page
    assert reverse("suggestions_start", args=[exam.pk]) not in page
    assert reverse("boxes_export", args=[exam.pk, "annotations"]) in page


def test_an_editor_without_a_blank_exam_says_to_upload_it(owner, exam):
    page = owner.get(reverse("box_editor", args=[exam.pk])).content.decode()

    assert "There is no blank exam yet" in page


# ---------------------------------------------------------------- suggestions


def test_accepting_a_suggestion_makes_a_labelled_box_and_rejecting_hides_it(owner, exam, pages):
    first = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=200, x2=400, y2=300, source="frame")
    second = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=400, x2=400, y2=500, source="ink")

    accepted = post_json(owner, reverse("suggestion_decide", args=[exam.pk, first.pk]),
                         {"accept": True, "label": "Q4", "add_question": True})
    rejected = post_json(owner, reverse("suggestion_decide", args=[exam.pk, second.pk]), {"accept": False})

    assert accepted.status_code == 200 and accepted.json()["box"]["label"] == "Q4" and accepted.json()["steps"] == []
    assert rejected.json() == {"unit": "px@150dpi", "box": None, "steps": []}
    assert tops(exam) == {"Q4": (0, (100, 200, 400, 300))}
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("accepted", "rejected")


def test_suggestions_are_labelled_in_reading_order_from_the_answer_key(exam, pages):
    for order, label in enumerate(["Q1", "Q2"], start=1):
        baker.make(Question, exam=exam, label=label, order=order)
    box(exam, "NAME", (100, 50, 600, 100))
    # Made out of reading order: the second question's box first, then the ID's beside CLASS's.
    made = [baker.make(SuggestedBox, exam=exam, page=page, x1=x, y1=y, x2=x + 200, y2=y + 60, source="frame")
            for page, x, y in ((1, 100, 300), (0, 700, 150), (0, 100, 152), (0, 100, 400))]

    labels = {s["id"]: s["label"] for s in selectors.box_suggestions_labelled(exam=exam)}

    assert [labels[s.pk] for s in made] == ["Q2", "CLASS", "ID", "Q1"]


def test_suggestions_as_many_as_the_questions_left_take_the_questions(exam, pages):
    baker.make(Question, exam=exam, label="Q1", order=1)
    only = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=400, x2=300, y2=460, source="frame")

    assert selectors.box_suggestions_labelled(exam=exam) == [
        {"id": only.pk, "page": 0, "bbox": [100, 400, 300, 460], "score": only.score, "source": "frame", "steps": [],
         "label": "Q1"}
    ]


def test_accepting_a_suggestion_without_a_label_is_refused(owner, exam, pages):
    suggestion = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=200, x2=400, y2=300, source="frame")

    response = post_json(owner, reverse("suggestion_decide", args=[exam.pk, suggestion.pk]), {"accept": True})

    assert response.status_code == 400
    assert not AnswerBox.objects.exists()


def test_asking_for_suggestions_queues_the_search(owner, exam, pages, monkeypatch):
    from annotations import services

    asked = []
    monkeypatch.setattr(services, "box_suggestions_enqueue", lambda *, exam: asked.append(exam.pk))

    response = owner.post(reverse("suggestions_start", args=[exam.pk]), follow=True)

    assert asked == [exam.pk]
    assert "Looking for handwriting on the scripts" in response.content.decode()


# ---------------------------------------------------------------- one script's boxes


@pytest.fixture
def script(exam, pages, teacher) -> Script:
    """Script 1 with two scan pages: page 1 aligned with a small shift, page 2 not aligned."""
    upload = baker.make(ScanUpload, exam=exam, original_name="scans.pdf", sha256="b" * 64, kind="pdf", uploaded_by=teacher)
    made = baker.make(Script, exam=exam, number=1)
    ScanPage.objects.create(
        exam=exam, upload=upload, source_index=0, image="p/1.jpg", width=A4[0], height=A4[1], script=made, position=0,
        template_index=0,
        transform={"matrix": [[1, 0, 12], [0, 1, -8]], "inliers": 80, "ok": True, "reason": "", "template_size": list(A4)},
    )
    ScanPage.objects.create(
        exam=exam, upload=upload, source_index=1, image="p/2.jpg", width=A4[0], height=A4[1], script=made, position=1,
        alignment_note="Too few printed marks matched the blank exam.",
    )
    return made


def adjust(client, script, box_id, body):
    return post_json(client, reverse("script_box_adjust", args=[script.exam_id, script.number, box_id]), body)


def test_the_script_boxes_page_shows_each_box_placed_on_the_scan(owner, exam, script):
    q1 = box(exam, "Q1", (100, 300, 1000, 500))
    box(exam, "Q2", (100, 100, 1000, 400), page=1)

    response = owner.get(reverse("script_boxes", args=[exam.pk, script.number]))

    page = response.content.decode()
    assert response.status_code == 200
    assert '<script id="script-state" type="application/json">' in page
    assert "js/script-boxes.js" in page and "js/box-editor.js" in page
    assert "Too few printed marks matched the blank exam." in page
    state = response.context["state"]
    placed = {b["label"]: b for b in state["boxes"]}
    assert placed["Q1"]["bbox"] == [112, 292, 1012, 492]
    assert placed["Q1"]["template_bbox"] == list(q1.bbox)
    assert placed["Q2"]["bbox"] == [100, 100, 1000, 400], "an unaligned page keeps the template position"
    assert [p["aligned"] for p in state["pages"]] == [True, False]


def test_adjusting_a_box_on_a_script_saves_scan_pixels_and_reset_removes_it(owner, exam, script, teacher):
    q1 = box(exam, "Q1", (100, 300, 1000, 500))

    response = adjust(owner, script, q1.pk, {"bbox": [120, 310, 1010, 520]})

    assert response.status_code == 200
    assert response.json()["bbox"] == [120, 310, 1010, 520]
    assert response.json()["adjusted"] is True
    adjustment = BoxAdjustment.objects.get(script=script, box=q1)
    assert (adjustment.bbox, adjustment.updated_by) == ((120, 310, 1010, 520), teacher)
    q1.refresh_from_db()
    assert q1.bbox == (100, 300, 1000, 500), "the template box is unchanged"

    response = adjust(owner, script, q1.pk, {"reset": True})

    assert response.json()["adjusted"] is False
    assert response.json()["bbox"] == [112, 292, 1012, 492]
    assert not BoxAdjustment.objects.exists()


def test_an_adjusted_box_off_the_scan_page_is_refused(owner, exam, script):
    q1 = box(exam, "Q1", (100, 300, 1000, 500))

    response = adjust(owner, script, q1.pk, {"bbox": [1000, 300, 1400, 500]})

    assert response.status_code == 400
    assert "outside" in response.json()["problems"][0]
    assert not BoxAdjustment.objects.exists()


def test_a_step_cannot_be_adjusted_on_a_script(owner, exam, script):
    q1 = box(exam, "Q1", (100, 300, 1000, 500))
    step = box(exam, "Q1", (110, 310, 990, 400), parent=q1, order=1)

    assert adjust(owner, script, step.pk, {"bbox": [110, 310, 990, 400]}).status_code == 404


# ---------------------------------------------------------------- permissions


@pytest.fixture
def world(exam, script):
    q1 = box(exam, "Q1", (100, 300, 1000, 500))
    suggestion = baker.make(SuggestedBox, exam=exam, page=0, x1=100, y1=600, x2=400, y2=700, source="ink")
    return {"exam": exam, "script": script, "box": q1, "suggestion": suggestion}


def annotation_urls(world) -> tuple[list[str], list[tuple[str, dict]]]:
    """(GET urls, POST urls with a body) covering every annotations URL."""
    exam, script, q1, suggestion = world["exam"], world["script"], world["box"], world["suggestion"]
    gets = [
        reverse("box_editor", args=[exam.pk]),
        reverse("box_list", args=[exam.pk]),
        reverse("boxes_export", args=[exam.pk, "annotations"]),
        reverse("boxes_export", args=[exam.pk, "regions"]) + "?page=1",
        reverse("boxes_export", args=[exam.pk, "hgbench"]),
        reverse("script_boxes", args=[exam.pk, script.number]),
    ]
    posts = [
        (reverse("box_save", args=[exam.pk]), {"page": 0, "bbox": [10, 10, 90, 90], "label": "Q5"}),
        (reverse("box_save", args=[exam.pk]), {"id": q1.pk, "bbox": [10, 10, 90, 90]}),
        (reverse("box_delete", args=[exam.pk, q1.pk]), {}),
        (reverse("boxes_import", args=[exam.pk]), {}),
        (reverse("suggestions_start", args=[exam.pk]), {}),
        (reverse("suggestion_decide", args=[exam.pk, suggestion.pk]), {"accept": True, "label": "Q6"}),
        (reverse("script_box_adjust", args=[exam.pk, script.number, q1.pk]), {"bbox": [10, 10, 90, 90]}),
        (reverse("script_box_adjust", args=[exam.pk, script.number, q1.pk]), {"reset": True}),
    ]
    return gets, posts


def test_the_url_list_above_covers_every_annotations_url(world):
    from annotations import urls

    gets, posts = annotation_urls(world)
    from django.urls import resolve

    covered = {resolve(url.split("?")[0]).url_name for url in gets + [url for url, _ in posts]}
    assert covered == {pattern.name for pattern in urls.urlpatterns}


def test_another_teacher_gets_404_on_every_annotations_url(client_for, other_teacher, world):
    client = client_for(other_teacher)
    before = snapshot(world["exam"])
    gets, posts = annotation_urls(world)

    for url in gets:
        assert client.get(url).status_code == 404, url
    for url, body in posts:
        assert post_json(client, url, body).status_code == 404, url
    assert snapshot(world["exam"]) == before


def test_a_department_head_may_look_but_gets_403_on_every_post(client_for, head, world):
    client = client_for(head)
    before = snapshot(world["exam"])
    gets, posts = annotation_urls(world)

    for url in gets:
        assert client.get(url).status_code == 200, url
    for url, body in posts:
        assert post_json(client, url, body).status_code == 403, url
    assert snapshot(world["exam"]) == before
    assert not BoxAdjustment.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, world):
    gets, posts = annotation_urls(world)

    for url in gets:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_the_api_refuses_get_on_post_urls(owner, world):
    _, posts = annotation_urls(world)

    for url, _body in posts:
        assert owner.get(url).status_code == 405, url


# ---------------------------------------------------------------- reading follows the boxes


@pytest.fixture
def queued(monkeypatch):
    """(script id, box id) of every box read the editor queues."""
    from grader.reading import tasks

    calls = []
    monkeypatch.setattr(tasks.script_box_read_task, "delay", lambda script_id, box_id: calls.append((script_id, box_id)))
    return calls


def test_a_box_drawn_on_an_exam_with_scripts_is_read_on_every_script(owner, exam, pages, queued,
                                                                     django_capture_on_commit_callbacks):
    scripts = [baker.make(Script, exam=exam, number=n) for n in (1, 2, 3)]

    with django_capture_on_commit_callbacks(execute=True):
        save(owner, exam, page=0, bbox=[100, 200, 500, 300], label="Q1")

    made = AnswerBox.objects.get(exam=exam)
    assert sorted(queued) == sorted((script.pk, made.pk) for script in scripts)


def test_moving_a_box_reads_it_again_but_saving_it_unchanged_or_adding_a_step_reads_nothing(
        owner, exam, pages, queued, django_capture_on_commit_callbacks):
    script = baker.make(Script, exam=exam, number=1)
    question = box(exam, "Q1", (100, 200, 500, 400))

    with django_capture_on_commit_callbacks(execute=True):
        save(owner, exam, id=question.pk, page=0, bbox=[100, 200, 500, 400], label="Q1")
        save(owner, exam, page=0, bbox=[110, 210, 300, 300], label="Q1", parent=question.pk)
    assert queued == []

    with django_capture_on_commit_callbacks(execute=True):
        save(owner, exam, id=question.pk, page=0, bbox=[120, 200, 520, 400], label="Q1")
    assert queued == [(script.pk, question.pk)]
