"""``manage.py grade_folder``: a demo folder graded in-process into results.json, and folders it refuses."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from django.core.management import CommandError, call_command
from model_bakery import baker
from openpyxl import Workbook

from grader.models import Exam, User
from grader.reading.models import ScriptIdentity


pytestmark = pytest.mark.usefixtures("remembered_ocr")


@pytest.fixture
def demo_folder(demo_folder_for):
    return demo_folder_for(students=5, absent=1, seed=11)


@pytest.fixture
def truth(demo_folder):
    return json.loads((demo_folder / "truth.json").read_text())


@pytest.fixture
def admin(db):
    return baker.make(User, username="admin", role=User.Role.ADMIN, is_active=True)


@pytest.fixture
def copy_of(demo_folder, tmp_path):
    """A copy of the demo folder to spoil."""
    folder = tmp_path / "Spoilt exam"
    shutil.copytree(demo_folder, folder)
    return folder


def _grade(folder, out, *args):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("grade_folder", str(folder), "--out", str(out), *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), json.loads((out / "results.json").read_text())


@pytest.fixture
def graded(admin, demo_folder, tmp_path):
    summary, results = _grade(demo_folder, tmp_path / "out")
    return summary, results


def test_results_json_has_the_documented_form(graded):
    _, results = graded

    assert set(results) == {"scripts", "absent", "unmatched_scripts"}
    for script in results["scripts"]:
        assert set(script) == {"pages", "student_id", "identity_confidence", "answers"}
        assert script["student_id"] is None or isinstance(script["student_id"], str)
        assert script["identity_confidence"] is None or 0 <= script["identity_confidence"] <= 1
        assert [answer["question"] for answer in script["answers"]] == [f"Q{n}" for n in range(1, 13)]
        for answer in script["answers"]:
            assert set(answer) == {
                "question", "text", "blank", "flagged", "similarity", "suggested_score", "max_score", "box"
            }
            assert isinstance(answer["text"], str)
            assert isinstance(answer["blank"], bool) and isinstance(answer["flagged"], bool)
            assert 0 <= answer["similarity"] <= 1
            assert isinstance(answer["suggested_score"], int | float) and isinstance(answer["max_score"], int | float)
            assert 0 <= answer["suggested_score"] <= answer["max_score"]
            assert set(answer["box"]) == {"page", "bbox"} and answer["box"]["page"] in script["pages"]
            x1, y1, x2, y2 = answer["box"]["bbox"]
            assert all(isinstance(v, int) for v in answer["box"]["bbox"]) and 0 <= x1 < x2 <= 1240 and 0 <= y1 < y2 <= 1754
    assert results["unmatched_scripts"] == [
        n for n, script in enumerate(results["scripts"]) if script["student_id"] is None
    ]


def test_every_script_is_there_with_its_scan_pages_and_boxes_where_the_truth_has_them(graded, truth):
    _, results = graded

    assert [script["pages"] for script in results["scripts"]] == [script["scan_pages"] for script in truth["scripts"]]
    for script, expected in zip(results["scripts"], truth["scripts"], strict=True):
        for answer, record in zip(script["answers"], expected["answers"], strict=True):
            assert answer["box"]["page"] == expected["scan_pages"][record["template_page"]]
            # The aligned box lies within a few pixels of the printed box's true place on the scan.
            assert max(abs(a - b) for a, b in zip(answer["box"]["bbox"], record["scan_box"], strict=True)) <= 6


def test_blank_answers_are_found_and_suggested_zero(graded, truth):
    _, results = graded

    blanks = 0
    for script, expected in zip(results["scripts"], truth["scripts"], strict=True):
        for answer, record in zip(script["answers"], expected["answers"], strict=True):
            assert answer["blank"] == record["blank"], (answer, record["text"])
            if answer["blank"]:
                blanks += 1
                assert answer["text"] == "" and answer["suggested_score"] == 0 and not answer["flagged"]
    assert blanks


def test_matched_scripts_are_matched_to_their_true_students_and_absent_students_are_listed(graded, truth):
    _, results = graded

    matched = [
        (script["student_id"], expected["student_id"])
        for script, expected in zip(results["scripts"], truth["scripts"], strict=True)
        if script["student_id"] is not None
    ]
    assert matched and all(found == expected for found, expected in matched)  # never a wrong student
    assert set(truth["absent"]) <= set(results["absent"])
    unmatched_students = {truth["scripts"][n]["student_id"] for n in results["unmatched_scripts"]}
    assert set(results["absent"]) == set(truth["absent"]) | unmatched_students


def test_the_best_roster_candidate_of_nearly_every_script_is_its_true_student(graded, truth):
    """The matching ranks the true student first for >= 90 % of scripts, confident or not."""
    exam = Exam.objects.get()
    identities = ScriptIdentity.objects.filter(script__exam=exam).order_by("script__number")
    best = [identity.candidates[0]["student"] if identity.candidates else None for identity in identities]

    right = sum(found == script["student_id"] for found, script in zip(best, truth["scripts"], strict=True))
    assert right >= 0.9 * len(truth["scripts"])


def test_the_exam_is_kept_for_review_and_a_summary_printed(graded, demo_folder, admin):
    summary, results = graded

    exam = Exam.objects.get()
    assert exam.title == demo_folder.name and exam.owner == admin and exam.pages_per_script == 2
    assert exam.scripts.count() == len(results["scripts"]) and exam.students.count() == 5
    assert f"{len(results['scripts'])} scripts" in summary and "matched to the roster" in summary
    assert "answers flagged" in summary and " s." in summary


def test_the_spreadsheet_and_one_scored_pdf_per_script_are_written_beside_results(graded, tmp_path):
    import pypdfium2
    from openpyxl import load_workbook

    _, results = graded
    out = tmp_path / "out"
    names = {f"{script['student_id']}.pdf" if script["student_id"] else f"script-{number}.pdf"
             for number, script in enumerate(results["scripts"], start=1)}
    assert {path.name for path in (out / "scripts").iterdir()} == names
    for script in results["scripts"]:
        if script["student_id"]:
            document = pypdfium2.PdfDocument(out / "scripts" / f"{script['student_id']}.pdf")
            assert script["student_id"] in document[0].get_textpage().get_text_range()
            assert len(document) == 1 + len(script["pages"])
    workbook = load_workbook(out / "scores.xlsx")
    assert {"Scores", "Answers", "Questions"} <= set(workbook.sheetnames)
    ids = {row[0] for row in workbook["Scores"].iter_rows(min_row=2, values_only=True)}
    assert {script["student_id"] for script in results["scripts"] if script["student_id"]} <= ids
    assert not list(out.glob("**/*.part"))


def test_owner_can_be_named_and_an_unknown_owner_is_refused(demo_folder, tmp_path, teacher):
    with pytest.raises(CommandError, match="There is no user 'ghost'"):
        call_command("grade_folder", str(demo_folder), "--out", str(tmp_path / "out"), "--owner", "ghost")
    assert not Exam.objects.exists()


def test_without_an_administrator_the_owner_must_be_given(demo_folder, tmp_path, teacher):
    with pytest.raises(CommandError, match="pass --owner USERNAME"):
        call_command("grade_folder", str(demo_folder), "--out", str(tmp_path / "out"))


# ---------------------------------------------------------------- refused folders


def _no_exam_left(settings):
    assert not Exam.objects.exists()
    exams_dir = settings.MEDIA_ROOT / "exams"
    assert not exams_dir.exists() or not any(exams_dir.iterdir())


def test_a_folder_missing_answers_xlsx_is_refused_naming_it(admin, copy_of, tmp_path, settings):
    (copy_of / "answers.xlsx").unlink()

    with pytest.raises(CommandError, match=r"is missing answers\.xlsx"):
        call_command("grade_folder", str(copy_of), "--out", str(tmp_path / "out"))

    _no_exam_left(settings)
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_roster_with_problems_is_refused_with_row_numbers_and_nothing_kept(admin, copy_of, tmp_path, settings):
    workbook = Workbook()
    for row in (["ID", "NAME", "CLASS", "EMAIL"], ["S1001", "Ann Lee", "9A", ""], ["S1001", "Bo Chan", "9A", ""],
                ["S1003", "", "9B", "not-an-email"]):
        workbook.active.append(row)
    workbook.save(copy_of / "roster.xlsx")

    with pytest.raises(CommandError) as refused:
        call_command("grade_folder", str(copy_of), "--out", str(tmp_path / "out"))

    message = str(refused.value)
    assert message.startswith("roster.xlsx has problems")
    assert "Row 3: the ID S1001 is also used in row 2." in message
    assert "Row 4: the NAME is empty." in message and "Row 4: 'not-an-email' is not a valid email address." in message
    _no_exam_left(settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "annotations.json is not usable"),
        (b'{"0": [{"x": 10, "y": 10, "width": -5, "height": 20, "label": "Q1"}]}', "annotations.json is not usable"),
        (b'{"0": [{"x": 10, "y": 10, "width": 50, "height": 20, "label": "NAME"}]}', "annotations.json has no question boxes"),
    ],
)
def test_a_bad_annotations_json_is_refused_after_the_template_and_nothing_is_kept(
    admin, copy_of, tmp_path, settings, content, message
):
    (copy_of / "annotations.json").write_bytes(content)

    with pytest.raises(CommandError, match=message):
        call_command("grade_folder", str(copy_of), "--out", str(tmp_path / "out"))

    _no_exam_left(settings)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scans.pdf", b"%PDF-1.4\n%broken beyond repair\n", "scans.pdf is damaged and cannot be read as a PDF."),
        ("scans.pdf", b"PK\x03\x04 a zip file", "scans.pdf is not a PDF: it looks like a ZIP or Office file."),
        ("template.pdf", b"%PDF-1.4\n%broken beyond repair\n", "template.pdf is damaged and cannot be read as a PDF."),
        ("answers.xlsx", b"not a spreadsheet", "answers.xlsx has problems"),
    ],
)
def test_a_corrupt_file_is_refused_naming_it(admin, copy_of, tmp_path, settings, name, content, message):
    (copy_of / name).write_bytes(content)

    with pytest.raises(CommandError) as refused:
        call_command("grade_folder", str(copy_of), "--out", str(tmp_path / "out"))

    assert message in str(refused.value)
    _no_exam_left(settings)


def test_a_failure_while_reading_deletes_the_exam_it_created(admin, demo_folder, tmp_path, settings, monkeypatch):
    from grader.reading import services as reading

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reading, "exam_identity_match", broken)

    with pytest.raises(RuntimeError, match="disk full"):
        call_command("grade_folder", str(demo_folder), "--out", str(tmp_path / "out"))

    _no_exam_left(settings)


# ---------------------------------------------------------------- --replay


def test_a_replayed_teacher_writes_replay_json_and_leaves_the_teachers_scores(admin, demo_folder, truth, tmp_path):
    from grader.reading.models import Answer
    from ml.demo_data import teacher_file

    teacher = tmp_path / "teacher.json"
    teacher.write_text(json.dumps(teacher_file(truth=truth)))
    out = tmp_path / "out"

    summary, results = _grade(demo_folder, out, "--replay", str(teacher))

    replay = json.loads((out / "replay.json").read_text())
    answers = sum(len(script["answers"]) for script in truth["scripts"])
    assert replay["answers"] == answers
    assert 0 < replay["keystrokes"] <= 2 * answers
    assert replay["keystrokes_per_answer"] == pytest.approx(replay["keystrokes"] / answers, abs=1e-3)
    assert 0 <= replay["agreement_before_teacher"] <= 1 and 0 <= replay["cer"] <= 1
    assert set(replay["per_question"]) == {f"Q{n}" for n in range(1, 13)}
    assert "Replay:" in summary
    # Every answer now carries exactly the teacher's score; results.json kept the suggestions before.
    exam = Exam.objects.get()
    expected = {(tuple(s["pages"]), label): a["score"]
                for s in teacher_file(truth=truth)["scripts"] for label, a in s["answers"].items()}
    for answer in Answer.objects.filter(script__exam=exam).select_related("question", "script"):
        pages = tuple(answer.script.pages.order_by("position").values_list("source_index", flat=True))
        assert answer.score == expected[(pages, answer.question.label)]
    assert all(a["suggested_score"] is not None for s in results["scripts"] for a in s["answers"])


@pytest.mark.parametrize(("content", "message"), [
    (b"not json", "not JSON"),
    (b'{"scripts": [{"pages": [99, 100], "answers": {}}]}', "no script has pages"),
    (b'{"scripts": [{"pages": [0, 1], "answers": {"Q1": {"score": 7}}}]}', "above the maximum"),
    (b'{"scripts": "all"}', '{"scripts": [...]}'),
])
def test_a_teacher_file_that_does_not_fit_is_refused_and_the_exam_removed(admin, demo_folder, tmp_path, content,
                                                                         message):
    teacher = tmp_path / "teacher.json"
    teacher.write_bytes(content)

    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        _grade(demo_folder, tmp_path / "out", "--replay", str(teacher))

    assert not Exam.objects.exists()


def test_learning_after_some_scripts_writes_learning_json_for_the_rest(admin, demo_folder, truth, tmp_path):
    from ml.demo_data import teacher_file

    teacher = tmp_path / "teacher.json"
    teacher.write_text(json.dumps(teacher_file(truth=truth)))
    out = tmp_path / "out"

    _grade(demo_folder, out, "--replay", str(teacher), "--learn-after", "4")

    learning = json.loads((out / "learning.json").read_text())
    assert learning["learn_after"] == 4
    assert {"train_lines", "val_lines", "cer_before", "cer_after", "improved"} <= set(learning["reader"])
    rest = sum(len(script["answers"]) for script in truth["scripts"][4:])
    assert learning["before"]["answers"] == learning["after"]["answers"] == rest
    assert learning["replay_after"]["answers"] == rest
    replay = json.loads((out / "replay.json").read_text())
    assert replay["answers"] == sum(len(script["answers"]) for script in truth["scripts"][:4])
    assert replay["texts_corrected"] > 0


def test_learn_after_needs_a_replay(admin, demo_folder, tmp_path):
    with pytest.raises(CommandError, match="--learn-after K needs --replay"):
        _grade(demo_folder, tmp_path / "out", "--learn-after", "2")
