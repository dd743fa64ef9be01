"""A new teacher takes a brand-new exam from an empty database to emailed scored scripts, with the keyboard
only after logging in: roster, key, blank exam, boxes and scans chosen through the file inputs, every
answer graded, the exam finished and every student emailed. Keystrokes per graded answer are counted.

Reading runs as the rest of the browser tests run it: tasks eager, in the live server's thread, with the
real EasyOCR engine (remembered across tests)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from grader.models import Exam, User
from grader.reading.models import Answer
from ml.demo_data import teacher_file
from tests.conftest import pdf_first_page_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp/screens")
# The teacher's budget: on average at most this many keys per graded answer (digits, Enter, and the
# keys that move between questions), on questions scored as a whole; a rubric answer takes its points
# dimension by dimension, and is counted apart.
KEYS_PER_ANSWER = 2.0


class Keyboard:
    """The teacher's hands: every key pressed goes through here and is counted, and reaching a control
    is done with Tab alone, failing when Tab never gets there (a control the keyboard cannot reach)."""

    def __init__(self, page):
        self.page = page
        self.keys = 0
        self.tabs: list[tuple[str, str, int]] = []  # (page, control, Tabs it took), for the report

    def press(self, *names: str) -> None:
        for name in names:
            self.page.keyboard.press(name)
            self.keys += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.keys += len(text)

    def focused(self, locator) -> bool:
        return locator.evaluate("element => element === document.activeElement")

    def tab_to(self, locator, *, limit: int = 40) -> int:
        """Press Tab until ``locator`` has the focus; how many presses it took."""
        locator.wait_for(state="attached")
        for presses in range(limit + 1):
            if self.focused(locator):
                self.tabs.append((self.page.url.split("/", 3)[-1], locator.evaluate("e => e.textContent.trim() || e.id"), presses))
                return presses
            self.press("Tab")
        where = self.page.evaluate("() => document.activeElement && document.activeElement.outerHTML.slice(0, 200)")
        raise AssertionError(f"{limit} Tabs never reached {locator}; the focus is on {where}")

    def activate(self, locator, *, key: str = "Enter") -> None:
        self.tab_to(locator)
        self.press(key)


@pytest.fixture
def demo_folder(demo_folder_for) -> Path:
    return demo_folder_for(students=3, absent=0, seed=5)


def test_a_new_teacher_takes_a_new_exam_to_emailed_scripts_with_the_keyboard_only(
    page, live_server, department, demo_folder, remembered_ocr, smtp
):
    from playwright.sync_api import expect

    SHOTS.mkdir(exist_ok=True)
    User.objects.create_user("hannah", password="a-long-password", department=department, first_name="Hannah",
                             last_name="Reyes", email="hannah@school.example")
    truth = json.loads((demo_folder / "truth.json").read_text())
    keyboard = Keyboard(page)

    # Log in (typing into the fields is what anyone does).
    page.goto(f"{live_server.url}/")
    expect(page.get_by_text("grade scanned, handwritten answer sheets")).to_be_visible()
    _shot(page, "login.png")
    page.get_by_label("Username").fill("hannah")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Exams")).to_be_visible()

    # A new exam.
    keyboard.activate(page.get_by_role("link", name="New exam"))
    expect(page.get_by_role("heading", name="New exam")).to_be_visible()
    keyboard.tab_to(page.get_by_label("Title"))
    keyboard.type("Year 9 Science mock")
    keyboard.tab_to(page.get_by_label("Pages per script"))
    keyboard.press("Control+a")
    keyboard.type("2")
    _shot(page, "exam-form.png")
    keyboard.activate(page.get_by_role("button", name="Create exam"))
    expect(page.get_by_role("heading", name="Year 9 Science mock")).to_be_visible()
    exam = Exam.objects.get(title="Year 9 Science mock")
    _shot(page, "exam-new.png")

    next_steps = page.get_by_role("region", name="What's next")

    def next_step(text: str):
        """The first step in 'What's next' is ``text``; the teacher goes there."""
        first = next_steps.get_by_role("link").first
        expect(first).to_contain_text(text)
        keyboard.activate(first)

    def back_to_exam():
        keyboard.activate(page.get_by_role("link", name="Year 9 Science mock").first)
        expect(page.get_by_role("heading", name="Year 9 Science mock")).to_be_visible()

    # Roster, then the answer key, each from 'What's next'.
    next_step("Import the class roster")
    keyboard.tab_to(page.get_by_label(re.compile(r"Roster \(.xlsx\)")))
    page.get_by_label(re.compile(r"Roster \(.xlsx\)")).set_input_files(demo_folder / "roster.xlsx")
    keyboard.activate(page.get_by_role("button", name="Import"))
    expect(page.get_by_text("Imported roster: 3 added")).to_be_visible()
    back_to_exam()

    next_step("Import the answer key")
    keyboard.tab_to(page.get_by_label(re.compile(r"Answer key \(.xlsx\)")))
    page.get_by_label(re.compile(r"Answer key \(.xlsx\)")).set_input_files(demo_folder / "answers.xlsx")
    keyboard.activate(page.get_by_role("button", name="Import"))
    expect(page.get_by_text("Imported answer key: 12 added")).to_be_visible()
    back_to_exam()

    # The blank exam: the step leads down the same page to its form.
    next_step("Upload the blank exam")
    keyboard.tab_to(page.get_by_label("Blank exam (PDF)"))
    page.get_by_label("Blank exam (PDF)").set_input_files(demo_folder / "template.pdf")
    keyboard.activate(page.get_by_role("button", name="Upload", exact=True))
    expect(page.get_by_text("Blank exam stored: 2 pages.")).to_be_visible()

    # The boxes: imported from the file the paper was made with.
    next_step("Draw the answer boxes")
    expect(page.get_by_role("heading", name=re.compile("Answer boxes"))).to_be_visible()
    box_file = page.get_by_label("Box file (.json)")
    keyboard.tab_to(box_file, limit=80)
    box_file.set_input_files(demo_folder / "annotations.json")
    keyboard.tab_to(page.get_by_label("Format"))
    keyboard.activate(page.get_by_role("button", name="Import", exact=True))
    expect(page.get_by_text("Imported 15 boxes from annotations.json; 0 removed.")).to_be_visible()
    _shot(page, "box-editor.png")
    back_to_exam()

    # The scans: split into scripts, read, and matched to the roster (tasks run eagerly here).
    next_step("Upload the scanned scripts")
    scans = page.get_by_label(re.compile("Scanned scripts"))
    keyboard.tab_to(scans)
    scans.set_input_files(demo_folder / "scans.pdf")
    keyboard.activate(page.get_by_role("button", name="Upload scans"))
    expect(page.get_by_text("6 pages read, 3 scripts made.")).to_be_visible(timeout=120_000)
    # Every script was matched to its student from the handwriting: no identity step is left.
    for script in truth["scripts"]:
        expect(page.locator("#scripts")).to_contain_text(script["student_name"])
    expect(next_steps).not_to_contain_text("identity")
    _shot(page, "exam-page.png")

    # Grading: the teacher reads each answer's handwriting and knows its score (the demo's truth stands
    # in for their eyes: full marks for a right or misspelt answer, else 0), accepting a suggestion that
    # agrees with Enter and typing the score where it does not.
    right = _right_scores(exam=exam, truth=truth)
    next_step("Grade: 36 answers without your score yet")
    expect(page.get_by_role("heading", name="Grade Q1", exact=True)).to_be_visible()
    _shot(page, "grading-form.png")
    keys = {"plain": 0, "rubric": 0}  # keys pressed on questions scored as a whole, and by a rubric
    answers = {"plain": 0, "rubric": 0}
    pulled = 0
    for question in exam.questions.order_by("order"):
        expect(page.get_by_role("heading", name=f"Grade {question.label}", exact=True)).to_be_visible()
        before = keyboard.keys
        kind = "rubric" if page.locator("#rubric-count").count() else "plain"
        if kind == "rubric":
            _shot(page, "grading-rubric.png")
        pulled += _grade_question(page, keyboard, right)
        keyboard.press("]")  # on to the next question; after the last, the completeness check
        keys[kind] += keyboard.keys - before
        answers[kind] += question.answers.count()
    per_answer = keys["plain"] / answers["plain"]
    print(f"keystrokes per graded answer: {per_answer:.2f} ({keys['plain']} keys, {answers['plain']} answers, "
          f"{pulled} pulled out of a group); rubric answers: {keys['rubric'] / max(1, answers['rubric']):.2f} "
          f"({keys['rubric']} keys, {answers['rubric']} answers, every dimension typed)")
    assert per_answer <= KEYS_PER_ANSWER
    assert answers["plain"] + answers["rubric"] == len(right)
    assert {answer.pk: answer.score for answer in Answer.objects.filter(script__exam=exam)} == right

    # Completeness, then finishing.
    expect(page.get_by_role("heading", name="Is the exam finished?")).to_be_visible()
    expect(page.get_by_role("heading", name="Nothing left to settle")).to_be_visible()
    _shot(page, "completeness.png")
    keyboard.activate(page.get_by_role("button", name="Mark the exam finished"))
    expect(page.get_by_text(re.compile(r"^Finished \d")).first).to_be_visible()
    keyboard.activate(page.get_by_role("link", name="Scored scripts, spreadsheet and emails"))
    expect(page.get_by_role("heading", name=re.compile("Results"))).to_be_visible()
    # The actions precede the scripts table for Tab (its stops grow with the class) yet sit on its right.
    table, actions = page.locator("#scripts").bounding_box(), page.locator(".outputs-side").bounding_box()
    assert table["x"] + table["width"] <= actions["x"] and abs(table["y"] - actions["y"]) < 2
    _shot(page, "results.png")
    keyboard.activate(page.get_by_role("link", name="Email students…"))
    expect(page.get_by_role("heading", name="Email students their scored scripts")).to_be_visible()
    keyboard.activate(page.get_by_role("button", name="Save and send a test to me"))
    expect(page.get_by_text("Last test sent to hannah@school.example")).to_be_visible()
    assert [received.recipients for received in smtp.received] == [["hannah@school.example"]]
    keyboard.activate(page.get_by_role("button", name="Send to students"))
    expect(page.locator("tr[data-state=sent]")).to_have_count(3, timeout=60_000)
    expect(page.locator(".email-summary")).to_contain_text("3 sent")
    _shot(page, "emails.png")
    print("Tabs to reach each control:", *(f"  /{where} {what[:40]!r}: {n}" for where, what, n in keyboard.tabs), sep="\n")
    # Each student got one email, with their own scored script.
    for student in exam.students.all():
        (received,) = smtp.to(student.email)
        name, data = received.attachment
        assert name.endswith(".pdf") and student.name in pdf_first_page_text(data)
    document = pdfium.PdfDocument(data)
    document[1].render(scale=1.5).to_pil().save(SHOTS / "scored-page-1.png")
    document[2].render(scale=1.5).to_pil().save(SHOTS / "scored-page-2.png")


def _shot(page, name: str) -> None:
    """A full-page screenshot in SHOTS once every image on the page has loaded (lazy ones included)."""
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach((img) => { img.loading = 'eager'; })")
    page.wait_for_function("() => Array.from(document.images).every((img) => img.complete)")
    page.screenshot(path=SHOTS / name, full_page=True)


def _right_scores(*, exam: Exam, truth: dict) -> dict[int, Decimal]:
    """Each answer's score as the demo's teacher gives it, by answer pk."""
    from grader.selectors import script_scan_pages

    by_pages = {tuple(script["pages"]): script for script in teacher_file(truth=truth)["scripts"]}
    right = {}
    for answer in Answer.objects.filter(script__exam=exam).select_related("script", "question"):
        score = by_pages[script_scan_pages(script=answer.script)]["answers"][answer.question.label]["score"]
        right[answer.pk] = Decimal(score)
    return right


def _text(score: Decimal) -> str:
    return format(score.normalize(), "f")


def _grade_question(page, keyboard: Keyboard, right: dict[int, Decimal]) -> int:
    """Score every answer of the question on screen from where the focus is, as the teacher would: the
    focused box's right score, by Enter alone when the suggestion shown is right. A group whose members
    do not all deserve the same score has the odd one pulled out first. Returns how many were pulled out."""
    count = page.locator("#grading-count, #rubric-count")
    pulled = 0
    for _ in range(60):
        # A save is over once htmx has swapped and settled its row (the page then moves the focus on).
        page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
        if "Question done" in count.inner_text():
            return pulled
        box = page.evaluate("""() => {
            const box = document.activeElement;
            if (!box || !box.matches('input.grading-score, input.rubric-points')) return null;
            const group = box.closest('tr.grading-group');
            const members = group ? Array.from(group.querySelectorAll('button.grading-pullout'),
                                               (b) => Number(b.getAttribute('hx-post').match(/(\\d+)\\/detach/)[1])) : null;
            const dimensions = box.matches('.rubric-points') ? Array.from(box.form.querySelectorAll('input.rubric-points'),
                (b) => ({max: b.dataset.max, placeholder: b.placeholder, value: b.value})) : null;
            return {id: box.id, placeholder: box.placeholder, value: box.value, members, dimensions};
        }""")
        assert box, f"the focus left the score boxes: {count.inner_text()!r}"
        if box["dimensions"]:
            # A rubric question: the full score is every dimension's maximum, no score is 0 in each.
            score = right[int(box["id"].split("-")[1])]
            full = sum(Decimal(d["max"]) for d in box["dimensions"])
            assert score in (0, full), f"the demo's teacher gives a rubric answer 0 or full marks, not {score}"
            for index, dimension in enumerate(box["dimensions"]):
                points = dimension["max"] if score else "0"
                if dimension["value"] or dimension["placeholder"] != points:
                    keyboard.type(points)  # the box's text is selected on arrival
                if index + 1 < len(box["dimensions"]):
                    keyboard.press("Tab")
            keyboard.press("Enter")
            continue
        if box["members"]:
            scores = [right[pk] for pk in box["members"]]
            odd = [index for index, score in enumerate(scores) if scores.count(score) * 2 <= len(scores)]
            if odd:
                keyboard.press("p")
                keyboard.press(*["ArrowRight"] * odd[0], "Enter")
                pulled += 1
                continue
            score = scores[0]
        else:
            score = right[int(box["id"].removeprefix("score-"))]
        if box["value"] or box["placeholder"] != _text(score):
            if box["value"]:
                keyboard.press("Control+a")
            keyboard.type(_text(score))
        keyboard.press("Enter")
    raise AssertionError(f"the question was not done after 60 scores: {count.inner_text()!r}")
