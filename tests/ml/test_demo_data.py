"""The demo exam generator writes a consistent folder whose truth matches its scans."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pypdfium2 as pdfium
import pytest

from ml.demo_data import (
    BOXES,
    QUESTIONS,
    TEMPLATE_DPI,
    DemoConfig,
    annotations,
    demo_build,
    main,
    page_size_px,
)

SMALL = DemoConfig(students=4, absent=1, seed=11)
FILES = ("template.pdf", "annotations.json", "roster.xlsx", "answers.xlsx", "scans.pdf", "truth.json")
# Paper stays far above this grey level even with tint and noise; pen and pencil go below it.
DARK = 160


def _render_gray(path: Path, *, dpi: int) -> list[np.ndarray]:
    width, height = page_size_px(dpi=dpi)
    document = pdfium.PdfDocument(path)
    try:
        return [np.array(document[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L"))
                [:height, :width] for i in range(len(document))]
    finally:
        document.close()


def _interior_mask(box: list[int], transform: np.ndarray, shape: tuple[int, int], *,
                   inset: int = 5) -> np.ndarray:
    """Scan-space mask of a template box shrunk by ``inset`` px, so its printed border is out."""
    x1, y1, x2, y2 = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], dtype=float)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(corners @ transform.T).astype(np.int32), 1)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    return out, demo_build(out_dir=out, config=SMALL)


@pytest.fixture(scope="module")
def built_with_backs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo-backs")
    return out, demo_build(out_dir=out, config=DemoConfig(students=3, absent=1, seed=5, blank_backs=True))


@pytest.fixture(scope="module")
def scans(built: tuple[Path, dict]) -> list[np.ndarray]:
    out, truth = built
    return _render_gray(out / "scans.pdf", dpi=truth["dpi"])


@pytest.fixture(scope="module")
def ink_counts(built: tuple[Path, dict], scans: list[np.ndarray]) -> list[tuple[dict, int, int]]:
    """(entry, dark px inside the box on the scan, dark px there on the clean warped template)."""
    out, truth = built
    template = _render_gray(out / "template.pdf", dpi=TEMPLATE_DPI)
    counts = []
    for script in truth["scripts"]:
        for entry in script["fields"] + script["answers"]:
            page = script["pages"][entry["template_page"]]
            transform = np.array(page["transform"])
            scan = scans[page["scan_page"]]
            reference = cv2.warpAffine(template[entry["template_page"]], transform,
                                       scan.shape[::-1], borderValue=255)
            mask = _interior_mask(entry["box"], transform, scan.shape)
            counts.append((entry, int(((scan < DARK) & mask).sum()),
                           int(((reference < DARK) & mask).sum())))
    return counts


def test_build_writes_all_six_files(built: tuple[Path, dict]) -> None:
    out, _ = built
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_template_has_two_a4_pages_of_1240_by_1754_px_at_150_dpi(built: tuple[Path, dict]) -> None:
    out, _ = built
    document = pdfium.PdfDocument(out / "template.pdf")
    sizes = [(round(document[i].get_width() * 150 / 72), round(document[i].get_height() * 150 / 72))
             for i in range(len(document))]
    document.close()
    assert sizes == [(1240, 1754), (1240, 1754)]
    assert page_size_px(dpi=150) == (1240, 1754)


def test_scans_hold_two_a4_pages_per_present_student(built: tuple[Path, dict]) -> None:
    out, truth = built
    document = pdfium.PdfDocument(out / "scans.pdf")
    present = SMALL.students - SMALL.absent
    assert len(document) == truth["scan_page_count"] == 2 * present
    assert {(round(document[i].get_width() * truth["dpi"] / 72),
             round(document[i].get_height() * truth["dpi"] / 72)) for i in range(len(document))} \
        == {page_size_px(dpi=truth["dpi"])}
    document.close()
    assert [p for s in truth["scripts"] for p in s["scan_pages"]] == list(range(2 * present))


def test_blank_backs_follow_every_scanned_page_and_are_nearly_white(
        built_with_backs: tuple[Path, dict]) -> None:
    out, truth = built_with_backs
    pages = _render_gray(out / "scans.pdf", dpi=truth["dpi"])
    assert len(pages) == 4 * 2
    assert truth["blank_back_pages"] == [1, 3, 5, 7]
    assert [p for s in truth["scripts"] for p in s["scan_pages"]] == [0, 2, 4, 6]
    for index, page in enumerate(pages):
        dark_share = float((page < DARK).mean())
        if index in truth["blank_back_pages"]:
            assert dark_share < 0.0005
        else:
            assert dark_share > 0.005


def test_absent_students_have_no_script_and_are_not_first_or_last(built: tuple[Path, dict]) -> None:
    _, truth = built
    scripted = {s["student_id"] for s in truth["scripts"]}
    assert len(truth["absent"]) == SMALL.absent
    assert not scripted & set(truth["absent"])
    assert scripted | set(truth["absent"]) == set(truth["students"])
    assert truth["students"][0] not in truth["absent"]
    assert truth["students"][-1] not in truth["absent"]


def test_roster_has_its_header_and_one_row_per_student(built: tuple[Path, dict]) -> None:
    out, truth = built
    rows = list(openpyxl.load_workbook(out / "roster.xlsx").active.iter_rows(values_only=True))
    assert rows[0] == ("ID", "NAME", "CLASS", "EMAIL")
    assert [r[0] for r in rows[1:]] == truth["students"] == [f"S{1001 + i}" for i in range(SMALL.students)]
    names = {s["student_id"]: s["student_name"] for s in truth["scripts"]}
    for student_id, name, klass, email in rows[1:]:
        assert klass in {"9A", "9B"}
        assert names.get(student_id, name) == name
        first, last = name.lower().replace("'", "").split(" ")
        assert email == f"{first}.{last}@students.example.org"
    assert len({r[1] for r in rows[1:]}) == SMALL.students


def test_answer_key_lists_every_question_with_its_max_score(built: tuple[Path, dict]) -> None:
    out, _ = built
    rows = list(openpyxl.load_workbook(out / "answers.xlsx").active.iter_rows(values_only=True))
    assert rows[0] == ("QUESTION", "ANSWER", "MAX_SCORE", "ACCEPT")
    assert [r[0] for r in rows[1:]] == [f"Q{i}" for i in range(1, 13)]
    by_label = {q.label: q for q in QUESTIONS}
    for label, answer, max_score, accept in rows[1:]:
        assert answer == by_label[label].answer
        assert max_score in (1, 2) and max_score == by_label[label].max_score
        assert (accept or "").split("|") == list(by_label[label].accept or [""])
    assert {r[0]: r[3] for r in rows[1:]}["Q2"] == "CO2|CO\u2082"


def test_annotation_boxes_lie_inside_the_page_and_match_truth(built: tuple[Path, dict]) -> None:
    out, truth = built
    saved = json.loads((out / "annotations.json").read_text())
    assert saved == annotations()
    assert sorted(saved) == ["0", "1"]
    labels = [b["label"] for page in saved.values() for b in page]
    assert labels == ["NAME", "ID", "CLASS"] + [f"Q{i}" for i in range(1, 13)]
    width, height = page_size_px(dpi=TEMPLATE_DPI)
    by_label = {}
    for page, boxes in saved.items():
        for b in boxes:
            assert 0 <= b["x"] and b["x"] + b["width"] <= width
            assert 0 <= b["y"] and b["y"] + b["height"] <= height
            by_label[b["label"]] = (int(page), [b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]])
    for script in truth["scripts"]:
        for entry in script["fields"] + script["answers"]:
            assert (entry["template_page"], entry["box"]) == by_label[entry["label"]]


def test_answer_boxes_do_not_overlap_each_other() -> None:
    for i, a in enumerate(BOXES):
        for b in BOXES[i + 1:]:
            if a.page == b.page:
                ax1, ay1, ax2, ay2 = a.px()
                bx1, by1, bx2, by2 = b.px()
                assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1, (a.label, b.label)


def test_the_printed_template_draws_each_box_border_where_annotated(built: tuple[Path, dict]) -> None:
    out, _ = built
    template = _render_gray(out / "template.pdf", dpi=TEMPLATE_DPI)
    for box in BOXES:
        x1, y1, x2, y2 = box.px()
        page = template[box.page]
        middle_y, middle_x = (y1 + y2) // 2, (x1 + x2) // 2
        # The border is a ~2 px dark line just inside each edge; the interior is empty paper.
        assert page[middle_y, x1:x1 + 3].min() < 128 and page[middle_y, x2 - 3:x2].min() < 128
        assert page[y1:y1 + 3, middle_x].min() < 128 and page[y2 - 3:y2, middle_x].min() < 128
        assert page[y1 + 4:y2 - 4, x1 + 4:x2 - 4].min() > 200


def test_scan_boxes_are_the_transformed_template_boxes(built: tuple[Path, dict]) -> None:
    _, truth = built
    for script in truth["scripts"]:
        for entry in script["fields"] + script["answers"]:
            transform = np.array(script["pages"][entry["template_page"]]["transform"])
            x1, y1, x2, y2 = entry["box"]
            corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]]) @ transform.T
            assert np.allclose(entry["scan_box"], [corners[:, 0].min(), corners[:, 1].min(),
                                                   corners[:, 0].max(), corners[:, 1].max()], atol=1)


def test_every_written_answer_has_ink_inside_its_true_scan_box(
        ink_counts: list[tuple[dict, int, int]]) -> None:
    written = [(entry, scan, clean) for entry, scan, clean in ink_counts if entry["text"]]
    assert written
    for entry, scan, clean in written:
        assert clean == 0, entry["label"]
        assert scan >= 30, (entry["label"], entry["text"], scan)


def test_blank_answers_leave_their_scan_box_empty(ink_counts: list[tuple[dict, int, int]]) -> None:
    blanks = [(entry, scan) for entry, scan, _ in ink_counts if not entry["text"]]
    assert blanks, "seed 11 is expected to produce at least one blank answer"
    for entry, scan in blanks:
        assert entry["blank"] and entry["kind"] == "blank" and entry["ink_box"] is None
        assert scan <= 3, (entry["label"], scan)


def test_written_ink_lies_within_its_scan_ink_box(built: tuple[Path, dict], scans: list[np.ndarray]) -> None:
    _, truth = built
    for script in truth["scripts"]:
        for entry in script["fields"] + script["answers"]:
            if entry["scan_ink_box"] is None:
                continue
            page = script["pages"][entry["template_page"]]
            scan = scans[page["scan_page"]]
            x1, y1, x2, y2 = entry["box"]
            assert x1 < entry["ink_box"][0] < entry["ink_box"][2] < x2
            assert y1 < entry["ink_box"][1] < entry["ink_box"][3] < y2
            dark = (scan < DARK) & _interior_mask(entry["box"], np.array(page["transform"]), scan.shape)
            ix1, iy1, ix2, iy2 = entry["scan_ink_box"]
            inside = int(dark[max(iy1 - 3, 0):iy2 + 3, max(ix1 - 3, 0):ix2 + 3].sum())
            assert inside >= 0.98 * int(dark.sum()), entry["label"]


def test_truth_records_what_each_student_wrote(built: tuple[Path, dict]) -> None:
    _, truth = built
    kinds = {"correct", "misspelt", "wrong", "blank"}
    for script in truth["scripts"]:
        assert [a["label"] for a in script["answers"]] == [q.label for q in QUESTIONS]
        assert [f["label"] for f in script["fields"]] == ["NAME", "ID", "CLASS"]
        assert script["written_name"] == script["fields"][0]["text"]
        assert script["written_class"].replace(" ", "") in {"9A", "9B"}
        assert all(a["kind"] in kinds for a in script["answers"])
        if script["id_variant"] == "wrong_digit":
            assert script["written_id"] not in truth["students"]
            assert sum(a != b for a, b in zip(script["written_id"], script["student_id"])) == 1
        else:
            assert script["written_id"] == script["student_id"]
    assert {s["name_variant"] for s in truth["scripts"]} - {"exact"}


def test_same_seed_gives_identical_truth(built: tuple[Path, dict], tmp_path: Path) -> None:
    _, truth = built
    assert demo_build(out_dir=tmp_path, config=SMALL) == truth
    assert json.loads((tmp_path / "truth.json").read_text()) == truth


def test_another_seed_gives_other_scripts(built: tuple[Path, dict], tmp_path: Path) -> None:
    _, truth = built
    other = demo_build(out_dir=tmp_path, config=DemoConfig(students=4, absent=1, seed=12))
    assert [s["answers"] for s in other["scripts"]] != [s["answers"] for s in truth["scripts"]]


def test_command_line_builds_a_folder_and_says_what_it_wrote(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path), "--students", "3", "--absent", "1", "--seed", "3", "--blank-backs"])
    printed = capsys.readouterr().out
    for name in FILES:
        assert (tmp_path / name).exists() and name in printed
    assert len(json.loads((tmp_path / "truth.json").read_text())["blank_back_pages"]) == 4
