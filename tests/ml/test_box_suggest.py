"""Answer boxes are suggested on the template where students wrote, as printed frames or around the ink."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ml.alignment import IDENTITY, Alignment, box_map, page_align
from ml.boxes import box_area, box_clip, box_iou
from ml.demo_data import HAND_FONTS, DemoConfig, demo_build
from ml.grounding_eval import boxes_match
from ml.pages import document_pages
from ml.box_suggest import SuggestConfig, SuggestedBox, boxes_suggest

MAX_PIXELS = 50_000_000
A4 = (1240, 1754)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 6-student demo set: template pages, every script's pages with their alignments, and the true boxes."""
    out = tmp_path_factory.mktemp("suggest-demo")
    truth = demo_build(out_dir=out, config=DemoConfig(students=6, absent=0, seed=3))
    templates = list(document_pages(path=out / "template.pdf", kind="pdf", max_pixels=MAX_PIXELS))
    scans = list(document_pages(path=out / "scans.pdf", kind="pdf", max_pixels=MAX_PIXELS))
    scripts = [[(scans[page["scan_page"]], page_align(template=templates[page["template_page"]],
                                                      scan=scans[page["scan_page"]]))
                for page in script["pages"]] for script in truth["scripts"]]
    annotations = json.loads((out / "annotations.json").read_text())
    boxes = {int(page): [(b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]) for b in entries]
             for page, entries in annotations.items()}
    return {"templates": templates, "scripts": scripts, "boxes": boxes}


@pytest.fixture(scope="module")
def suggested(demo: dict) -> list[SuggestedBox]:
    """The suggestions for the demo set with the default settings."""
    return boxes_suggest(template_pages=demo["templates"], scripts=demo["scripts"])


@pytest.fixture(scope="module")
def ink_suggested(demo: dict) -> list[SuggestedBox]:
    """The suggestions for the demo set with printed frames ignored."""
    return boxes_suggest(template_pages=demo["templates"], scripts=demo["scripts"], config=SuggestConfig(frames=False))


def _scores(suggested: list[SuggestedBox], boxes: dict[int, list[tuple[int, int, int, int]]]) -> tuple[int, int, int]:
    """True positives, spurious suggestions and missed boxes at IoU >= 0.5, matched page by page."""
    found = 0
    for page, gold in boxes.items():
        found += len(boxes_match(gold=gold, pred=[s.bbox for s in suggested if s.page == page], min_iou=0.5))
    gold_count = sum(len(gold) for gold in boxes.values())
    return found, len(suggested) - found, gold_count - found


def test_suggestions_on_a_demo_class_find_the_true_answer_boxes(demo: dict, suggested: list[SuggestedBox]) -> None:
    found, spurious, missed = _scores(suggested, demo["boxes"])
    # NAME, ID, CLASS and Q1-Q12 (today all 15 are found and nothing else is suggested).
    assert found + missed == 15
    assert found >= 14 and spurious <= 1


def test_ink_inside_a_printed_frame_suggests_the_frame_itself(demo: dict, suggested: list[SuggestedBox]) -> None:
    assert {s.source for s in suggested} == {"frame"}
    for suggestion in suggested:
        assert max(box_iou(suggestion.bbox, box) for box in demo["boxes"][suggestion.page]) >= 0.95


def test_scores_count_the_scripts_that_wrote_in_the_box(demo: dict, suggested: list[SuggestedBox]) -> None:
    assert all(0.2 <= s.score <= 1.0 for s in suggested)
    # Every student writes a name; a sixth of a 6-student class is one script.
    name = next(s for s in suggested if s.page == 0 and box_iou(s.bbox, demo["boxes"][0][0]) > 0.9)
    assert name.score == 1.0
    assert all(round(s.score * 6) == pytest.approx(s.score * 6) for s in suggested)


def test_without_frames_ink_regions_lie_inside_the_answer_boxes(demo: dict, ink_suggested: list[SuggestedBox]) -> None:
    assert {s.source for s in ink_suggested} == {"ink"}
    holders = []
    for suggestion in ink_suggested:
        inside = [box_area(box_clip(suggestion.bbox, bounds=box)) / box_area(suggestion.bbox)
                  for box in demo["boxes"][suggestion.page]]
        assert max(inside) >= 0.9
        holders.append((suggestion.page, int(np.argmax(inside))))
    # One region per answer box: letters, words and the two lines of a sentence answer are joined.
    assert sorted(holders) == [(page, index) for page, boxes in demo["boxes"].items() for index in range(len(boxes))]


@pytest.mark.parametrize("kind", ["suggested", "ink_suggested"])
def test_suggestions_come_in_reading_order_without_overlapping(demo: dict, kind: str,
                                                               request: pytest.FixtureRequest) -> None:
    suggested = request.getfixturevalue(kind)
    for i, a in enumerate(suggested):
        for b in suggested[i + 1 :]:
            assert a.page != b.page or not box_area(box_clip(a.bbox, bounds=b.bbox))
    # annotations.json lists each page's boxes in reading order: NAME, then ID and CLASS side by
    # side, then the questions; every suggestion takes the place of the box it covers most.
    holders = []
    for suggestion in suggested:
        boxes = demo["boxes"][suggestion.page]
        overlaps = [box_area(box_clip(suggestion.bbox, bounds=box)) for box in boxes]
        holders.append((suggestion.page, int(np.argmax(overlaps))))
    assert holders == [(page, index) for page, boxes in sorted(demo["boxes"].items()) for index in range(len(boxes))]


def test_a_mark_on_one_script_only_is_not_suggested(demo: dict) -> None:
    scan, alignment = demo["scripts"][0][0]
    marked = scan.copy()
    # A doodle between Q1 and its marks column, where the template is blank, on the first script only.
    doodle = box_map(bbox=(650, 640, 950, 700), matrix=alignment.matrix)
    ImageDraw.Draw(marked).line([doodle[:2], doodle[2:], (doodle[0], doodle[3])], fill=(20, 20, 120), width=5)
    scripts = [[(marked, alignment), demo["scripts"][0][1]], *demo["scripts"][1:]]

    def at_doodle(config: SuggestConfig) -> list[SuggestedBox]:
        suggested = boxes_suggest(template_pages=demo["templates"], scripts=scripts, config=config)
        return [s for s in suggested if s.page == 0 and box_area(box_clip(s.bbox, bounds=(650, 640, 950, 700)))]

    assert at_doodle(SuggestConfig()) == []
    assert [s.score for s in at_doodle(SuggestConfig(min_support=0.0))] == [pytest.approx(1 / 6)]


def test_pages_that_did_not_align_give_no_suggestions(demo: dict) -> None:
    failed = Alignment(matrix=IDENTITY, inliers=3, ok=False, reason="only 3 matching features", template_size=A4)
    scripts = [[(scan, failed) for scan, _ in script] for script in demo["scripts"]]
    assert boxes_suggest(template_pages=demo["templates"], scripts=scripts) == []
    only_first_page = [[script[0]] for script in demo["scripts"]]
    assert {s.page for s in boxes_suggest(template_pages=demo["templates"], scripts=only_first_page)} == {0}


def _form() -> Image.Image:
    """A blank form: three answer frames, a panel framing a fourth, a ring, a rule and a line of print."""
    page = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(page)
    for frame in ((150, 300, 700, 400), (150, 500, 700, 600), (800, 500, 1100, 600), (100, 1100, 1140, 1500),
                  (700, 1300, 1000, 1400)):
        draw.rectangle(frame, outline=(30, 30, 30), width=3)
    draw.ellipse((900, 150, 1050, 300), outline=(30, 30, 30), width=3)
    draw.line((100, 250, 1140, 250), fill=(30, 30, 30), width=3)
    font = ImageFont.truetype("/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf", 26)
    draw.text((150, 200), "Answer every question in its box.", font=font, fill=(20, 20, 20))
    return page


def test_frames_that_students_wrote_in_are_suggested_and_empty_ones_are_not() -> None:
    form = _form()
    font = ImageFont.truetype(str(next(path for path in HAND_FONTS if path.exists())), 40)
    scripts = []
    working = []  # where each script's unframed working went
    for number in range(4):
        filled = form.copy()
        draw = ImageDraw.Draw(filled)
        draw.text((180 + 10 * number, 320), "photosynthesis", font=font, fill=(30, 40, 130))
        draw.text((830, 520), f"{number + 2}0 km", font=font, fill=(30, 40, 130))
        draw.text((740, 1320), "x = 4", font=font, fill=(30, 40, 130))
        place = (200, 800 + 5 * number)
        draw.text(place, "working: 3 x 4 = 12", font=font, fill=(30, 40, 130))
        working.append(draw.textbbox(place, "working: 3 x 4 = 12", font=font))
        scripts.append([(filled, Alignment(matrix=IDENTITY, inliers=999, ok=True, reason="", template_size=A4))])
    suggested = boxes_suggest(template_pages=[form], scripts=scripts)
    # The middle-left frame stays empty, the ring is no frame, and the panel holds ink only in its inner frame.
    assert [(s.source, s.score) for s in suggested] == [("frame", 1.0), ("frame", 1.0), ("ink", 1.0), ("frame", 1.0)]
    assert suggested[0].bbox == (150, 300, 701, 401)
    assert suggested[1].bbox == (800, 500, 1101, 601)
    assert suggested[3].bbox == (700, 1300, 1001, 1401)
    ink = (min(b[0] for b in working), min(b[1] for b in working), max(b[2] for b in working),
           max(b[3] for b in working))
    # The working of all four scripts, with SuggestConfig.pad_px of room around it.
    assert suggested[2].bbox == pytest.approx((ink[0] - 8, ink[1] - 8, ink[2] + 8, ink[3] + 8), abs=3)
