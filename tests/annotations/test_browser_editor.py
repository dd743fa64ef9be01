"""A teacher draws and edits answer boxes in a real browser, with the mouse and the keyboard."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files import File
from django.test import Client

from annotations.models import AnswerBox, BoxAdjustment
from annotations.selectors import script_box_as_dict
from grader import services
from grader.scans import services as scans
from grader.models import Exam, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_folder(demo_folder_for) -> Path:
    return demo_folder_for(students=1, absent=0)


@pytest.fixture
def hannah(department) -> User:
    return User.objects.create_user("hannah", password="a-long-password", department=department, first_name="Hannah")


@pytest.fixture
def demo_exam(hannah, demo_folder) -> Exam:
    exam = Exam.objects.create(title="Year 9 Science mock", owner=hannah, pages_per_script=2)
    with (demo_folder / "template.pdf").open("rb") as handle:
        services.template_upload(exam=exam, file=File(handle, name="template.pdf"))
    return exam


def log_in(page, live_server, user: User) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])


def boxes_of(exam: Exam) -> dict[str, tuple[int, ...]]:
    return {box.label: box.bbox for box in AnswerBox.objects.filter(exam=exam, parent=None)}


def wait_until(read, expected, timeout: float = 10.0):
    """Poll ``read()`` until it equals ``expected`` (the browser saves in the background)."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value == expected


def zoom_to(page, target: float) -> None:
    for _ in range(8):
        if float(page.locator("#box-editor").get_attribute("data-zoom")) == target:
            return
        page.keyboard.press("-" if float(page.locator("#box-editor").get_attribute("data-zoom")) > target else "+")
    assert float(page.locator("#box-editor").get_attribute("data-zoom")) == target


def box_made(exam: Exam, label: str, bbox: tuple[int, int, int, int], page: int = 0) -> AnswerBox:
    made = AnswerBox(exam=exam, label=label, page=page)
    made.bbox = bbox
    made.save()
    return made


def test_a_teacher_draws_labels_nudges_deletes_and_undoes_boxes(page, live_server, demo_exam, hannah):
    from playwright.sync_api import expect

    box_made(demo_exam, "NAME", (266, 354, 915, 431))
    box_made(demo_exam, "Q2", (142, 791, 585, 880))
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, live_server, hannah)

    page.goto(f"{live_server.url}/exams/{demo_exam.pk}/boxes/")
    expect(page.get_by_role("heading", name="Answer boxes")).to_be_visible()
    zoom_to(page, 0.5)  # one screen pixel is two template pixels
    stage = page.locator("#page-panel-0 .stage")
    origin = stage.bounding_box()

    # Draw a box from template (142, 630) to (408, 718): screen offsets are half of that.
    page.mouse.move(origin["x"] + 71, origin["y"] + 315)
    page.mouse.down()
    page.mouse.move(origin["x"] + 150, origin["y"] + 340, steps=4)
    page.mouse.move(origin["x"] + 204, origin["y"] + 359, steps=4)
    page.mouse.up()
    label = page.get_by_label("Label")
    expect(label).to_be_focused()
    expect(label).to_have_value("Q1")  # the first question label not boxed yet
    page.keyboard.type("Q1")
    page.keyboard.press("Enter")  # Q1 is not in the key yet: the editor asks, and the dialog handler says yes
    expect(page.locator("#editor-status")).to_have_text("Saved Q1.")
    wait_until(lambda: boxes_of(demo_exam), {"NAME": (266, 354, 915, 431), "Q2": (142, 791, 585, 880), "Q1": (142, 630, 408, 718)})
    assert demo_exam.questions.get(label="Q1").created_with_box
    expect(stage).to_be_focused()

    # Arrows move by 1 px, Alt+arrows by 10 px, Shift+arrows resize from the right/bottom edge.
    for key in ["ArrowRight"] * 3 + ["ArrowDown"] * 2 + ["Alt+ArrowDown"] + ["Shift+ArrowRight"] * 4 + ["Shift+ArrowDown"]:
        page.keyboard.press(key)
    q1 = (142 + 3, 630 + 2 + 10, 408 + 3 + 4, 718 + 2 + 10 + 1)
    wait_until(lambda: boxes_of(demo_exam)["Q1"], q1)
    q1_id = AnswerBox.objects.get(exam=demo_exam, label="Q1").pk
    element = page.locator(f"#box-{q1_id}")
    expect(element).to_have_css("left", f"{q1[0] * 0.5}px")
    expect(element).to_have_css("height", f"{(q1[3] - q1[1]) * 0.5}px")

    # Dragging a box moves it by the drag over the zoom.
    name = page.locator(".box", has_text="NAME")
    name_box = name.bounding_box()
    page.mouse.move(name_box["x"] + 40, name_box["y"] + 20)
    page.mouse.down()
    page.mouse.move(name_box["x"] + 45, name_box["y"] + 22, steps=3)
    page.mouse.move(name_box["x"] + 50, name_box["y"] + 25, steps=3)
    page.mouse.up()
    wait_until(lambda: boxes_of(demo_exam)["NAME"], (266 + 20, 354 + 10, 915 + 20, 431 + 10))

    # Tab goes through the page's boxes in reading order: NAME, Q1, then Q2.
    page.keyboard.press("Tab")
    expect(label).to_have_value("Q1")
    page.keyboard.press("Tab")
    expect(label).to_have_value("Q2")
    expect(stage).to_be_focused()

    page.keyboard.press("Delete")  # the confirmation is accepted
    wait_until(lambda: set(boxes_of(demo_exam)), {"NAME", "Q1"})
    expect(page.locator("#editor-status")).to_contain_text("Deleted the Q2 box")

    page.keyboard.press("Control+z")
    wait_until(
        lambda: boxes_of(demo_exam),
        {"NAME": (286, 364, 935, 441), "Q1": q1, "Q2": (142, 791, 585, 880)},
    )
    expect(page.locator("#editor-status")).to_have_text("Undone: Q2 is back.")
    expect(page.locator("#box-list")).to_contain_text("Q2")


def test_a_teacher_moves_one_scripts_box_and_resets_it(page, live_server, demo_exam, demo_folder, hannah):
    from playwright.sync_api import expect

    q1 = box_made(demo_exam, "Q1", (142, 629, 407, 718))
    with (demo_folder / "scans.pdf").open("rb") as handle:
        intake = scans.scan_files_accept(exam=demo_exam, files=[File(handle, name="scans.pdf")], user=hannah)
    scans.scan_upload_process(upload_id=intake.accepted[0].pk)
    script = demo_exam.scripts.get()
    log_in(page, live_server, hannah)

    page.goto(f"{live_server.url}/exams/{demo_exam.pk}/scripts/{script.number}/boxes/")
    placed = page.locator(f"#box-{q1.pk}")
    expect(placed).to_be_visible()
    before = script_box_as_dict(script=script, box=q1)["bbox"]
    placed.click()
    for key in ["ArrowLeft"] * 2 + ["Shift+ArrowDown"] * 3:
        page.keyboard.press(key)
    expected = (before[0] - 2, before[1], before[2] - 2, before[3] + 3)
    wait_until(lambda: [adjustment.bbox for adjustment in BoxAdjustment.objects.filter(script=script, box=q1)], [expected])
    expect(page.locator(".box.adjusted")).to_have_count(1)
    expect(page.locator("#script-status")).to_have_text("Saved Q1 for this script.")

    page.get_by_role("button", name="Reset to template").click()
    wait_until(lambda: BoxAdjustment.objects.filter(script=script).count(), 0)
    expect(page.locator(".box.adjusted")).to_have_count(0)

    page.get_by_role("button", name="Whole page").click()
    expect(page.get_by_role("button", name="Whole page")).to_have_attribute("aria-pressed", "true")


def test_suggested_boxes_come_labelled_from_the_key_and_are_accepted_at_once(page, live_server, demo_exam, hannah):
    from playwright.sync_api import expect

    from annotations.models import SuggestedBox
    from grader.models import Question

    for order, label in enumerate(["Q1", "Q2"], start=1):
        Question.objects.create(exam=demo_exam, label=label, order=order)
    for x1, y1, x2, y2 in ((266, 354, 915, 431), (142, 630, 408, 718), (142, 791, 585, 880)):
        SuggestedBox.objects.create(exam=demo_exam, page=0, x1=x1, y1=y1, x2=x2, y2=y2, score=0.9, source="frame")
    log_in(page, live_server, hannah)
    page.goto(f"{live_server.url}/exams/{demo_exam.pk}/boxes/")

    labels = page.locator("#suggestion-list input.suggestion-label")
    expect(labels).to_have_count(3)
    expect(labels.nth(0)).to_have_value("NAME")
    labels.nth(1).fill("ID")  # a label corrected in place: the name box, then the ID box, then Q1
    labels.nth(2).fill("Q1")
    page.get_by_role("button", name="Accept all 3 with these labels").click()

    expect(page.locator("#editor-status")).to_have_text("Accepted every suggested box.")
    wait_until(lambda: boxes_of(demo_exam), {"NAME": (266, 354, 915, 431), "ID": (142, 630, 408, 718),
                                             "Q1": (142, 791, 585, 880)})


def test_a_vlm_suggestion_shows_its_steps_and_accept_all_makes_them_the_boxes_steps(page, live_server, demo_exam,
                                                                                     hannah):
    from playwright.sync_api import expect

    from annotations.models import SuggestedBox
    from grader.models import Question

    Question.objects.create(exam=demo_exam, label="Q5", order=1)
    steps = [[148, 1289, 620, 1421], [632, 1289, 1149, 1421]]
    SuggestedBox.objects.create(exam=demo_exam, page=0, x1=142, y1=1278, x2=1152, y2=1432, score=1.0, source="vlm",
                                steps=steps)
    log_in(page, live_server, hannah)
    page.goto(f"{live_server.url}/exams/{demo_exam.pk}/boxes/")

    # Dotted inside the suggested box on the page, numbered, and counted in the list.
    drawn = page.locator(".suggestion-step")
    expect(drawn).to_have_count(2)
    expect(drawn.nth(1)).to_have_text("2")
    outer, first = page.locator(".suggestion").bounding_box(), drawn.nth(0).bounding_box()
    assert outer["x"] <= first["x"] and first["x"] + first["width"] <= outer["x"] + outer["width"]
    expect(page.locator("#suggestion-list")).to_contain_text("VLM · 2 steps")
    expect(page.locator("#suggestion-list input.suggestion-label")).to_have_value("Q5")

    page.get_by_role("button", name="Accept all 1 with these labels").click()
    expect(page.locator("#editor-status")).to_have_text("Accepted every suggested box.")
    expect(page.locator(".suggestion-step")).to_have_count(0)
    expect(page.locator(".box.is-step")).to_have_count(2)
    wait_until(lambda: [step.bbox for step in AnswerBox.objects.filter(exam=demo_exam, parent__label="Q5")
                        .order_by("order")], [tuple(step) for step in steps])
    assert boxes_of(demo_exam) == {"Q5": (142, 1278, 1152, 1432)}
