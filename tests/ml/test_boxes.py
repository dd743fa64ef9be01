"""Box geometry, validation, and the annotations.json, region list and HG-Bench formats."""

from __future__ import annotations

import json

import pytest

from ml.boxes import (
    AnswerBox,
    BoxFormatError,
    HGBenchBox,
    annotations_dump,
    annotations_load,
    box_area,
    box_clip,
    box_contains,
    box_from_1000,
    box_iou,
    box_to_1000,
    boxes_validate,
    hgbench_dump,
    hgbench_load,
    hgbench_read,
    region_list_dump,
    region_list_labels,
    region_list_load,
)
from ml.demo_data import annotations

A4 = (1240, 1754)
PAGES = [A4, A4]


@pytest.fixture(scope="module")
def demo_boxes() -> list[AnswerBox]:
    return annotations_load(data=json.dumps(annotations()), page_sizes=PAGES)


def _problems(load, data: str, **kwargs) -> list[str]:
    with pytest.raises(BoxFormatError) as caught:
        load(data=data, page_sizes=PAGES, **kwargs)
    return caught.value.problems


def _annotation(**fields) -> dict:
    return {"x": 142, "y": 629, "width": 265, "height": 89, "label": "Q1", **fields}


# --------------------------------------------------------------------------------------------
# Geometry


def test_area_is_width_times_height_and_zero_for_an_inverted_box() -> None:
    assert box_area((10, 20, 40, 30)) == 300
    assert box_area((40, 20, 10, 30)) == 0


def test_iou_of_two_half_overlapping_squares_is_one_third() -> None:
    # 100x100 squares shifted by 50 px: intersection 5000, union 15000.
    assert box_iou((0, 0, 100, 100), (50, 0, 150, 100)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 100, 100), (0, 0, 100, 100)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_contains_allows_each_edge_the_tolerance_and_no_more() -> None:
    outer = (100, 100, 200, 200)
    assert box_contains(outer, (100, 100, 200, 200))
    assert not box_contains(outer, (98, 100, 200, 200))
    assert box_contains(outer, (98, 100, 202, 200), tolerance=2)
    assert not box_contains(outer, (97, 100, 200, 200), tolerance=2)


def test_clip_cuts_a_box_to_its_bounds_and_disjoint_boxes_clip_to_nothing() -> None:
    assert box_clip((-3, 10, 1245, 50), bounds=(0, 0, 1240, 1754)) == (0, 10, 1240, 50)
    assert box_area(box_clip((0, 0, 10, 10), bounds=(20, 20, 30, 30))) == 0


def test_pixels_to_1000_grid_rounds_each_edge_to_the_nearest_unit() -> None:
    # Q1 of the demo: 142*1000/1240 = 114.5 -> 115, 629*1000/1754 = 358.6 -> 359,
    # 407*1000/1240 = 328.2 -> 328, 718*1000/1754 = 409.4 -> 409.
    assert box_to_1000((142, 629, 407, 718), page_size=A4) == (115, 359, 328, 409)
    assert box_to_1000((0, 0, 1240, 1754), page_size=A4) == (0, 0, 1000, 1000)


def test_1000_grid_to_pixels_rounds_to_the_nearest_pixel_within_one_pixel_of_the_original() -> None:
    # 115*1.24 = 142.6 -> 143, 359*1.754 = 629.7 -> 630, 328*1.24 = 406.7 -> 407, 409*1.754 = 717.4 -> 717.
    assert box_from_1000((115, 359, 328, 409), page_size=A4) == (143, 630, 407, 717)
    assert box_to_1000((143, 630, 407, 717), page_size=A4) == (115, 359, 328, 409)


# --------------------------------------------------------------------------------------------
# annotations.json


def test_demo_annotations_load_as_fifteen_boxes_in_page_then_file_order(demo_boxes: list[AnswerBox]) -> None:
    assert [box.label for box in demo_boxes] == ["NAME", "ID", "CLASS"] + [f"Q{n}" for n in range(1, 13)]
    assert demo_boxes[3] == AnswerBox(label="Q1", page=0, bbox=(142, 629, 407, 718))
    assert demo_boxes[9].page == 1 and demo_boxes[9].label == "Q7"


def test_demo_annotations_round_trip_exactly(demo_boxes: list[AnswerBox]) -> None:
    text = annotations_dump(boxes=demo_boxes)
    assert json.loads(text) == annotations()
    assert annotations_load(data=text, page_sizes=PAGES) == demo_boxes


def test_annotations_dump_writes_parent_boxes_only() -> None:
    box = AnswerBox(label="Q1", page=0, bbox=(100, 100, 500, 300),
                    steps=(AnswerBox(label="1", page=0, bbox=(110, 110, 300, 290)),))
    assert json.loads(annotations_dump(boxes=[box])) == {
        "0": [{"x": 100, "y": 100, "width": 400, "height": 200, "label": "Q1"}]}


def test_annotations_accept_utf8_bytes_with_a_byte_order_mark_and_round_fractional_pixels() -> None:
    data = b"\xef\xbb\xbf" + json.dumps({"0": [_annotation(x=141.6, width=265.2)]}).encode()
    assert annotations_load(data=data, page_sizes=PAGES) == [AnswerBox(label="Q1", page=0, bbox=(142, 629, 407, 718))]


def test_annotations_that_are_not_json_are_rejected() -> None:
    problems = _problems(annotations_load, '{"0": [')
    assert len(problems) == 1 and problems[0].startswith("not valid JSON")


def test_annotations_that_are_a_list_are_rejected() -> None:
    assert _problems(annotations_load, "[]") == ['the file must be an object of pages ({"0": [boxes]}), not a list']


def test_annotations_with_a_bad_page_key_or_page_value_are_rejected() -> None:
    data = json.dumps({"first": [_annotation()], "1": {"x": 1}})
    assert _problems(annotations_load, data) == [
        'page key "first": must be a 0-based page index such as "0"',
        "page 2: must be a list of boxes, not an object",
    ]


def test_annotations_box_missing_keys_names_them() -> None:
    entry = _annotation()
    del entry["height"], entry["label"]
    assert _problems(annotations_load, json.dumps({"0": [entry]})) == ["page 1, box 1: missing height, label"]


@pytest.mark.parametrize("value", ["12", None, True, float("nan")])
def test_annotations_coordinates_that_are_not_finite_numbers_are_rejected(value: object) -> None:
    problems = _problems(annotations_load, json.dumps({"0": [_annotation(y=value)]}))
    assert problems == ["page 1, box 1: y must be a number"]


def test_annotations_box_with_negative_width_is_rejected_with_its_place() -> None:
    data = json.dumps({"0": [_annotation(label="NAME"), _annotation(label="ID"), _annotation(width=-20)]})
    assert _problems(annotations_load, data) == ["page 1, box 3: width must be positive"]


def test_every_problem_of_a_file_is_listed_and_nothing_is_returned() -> None:
    data = json.dumps({"0": [_annotation(label=""), _annotation(label="Q2", height=0)],
                       "2": [_annotation(label="Q3")]})
    assert _problems(annotations_load, data) == [
        "page 1, box 1: label is empty",
        "page 1, box 2: height must be positive",
        "page 3, box 1: page 3 does not exist (the exam has 2 pages)",
    ]


# --------------------------------------------------------------------------------------------
# Validation rules


def test_slight_overflow_past_the_page_edge_is_clipped_on_load() -> None:
    data = json.dumps({"0": [_annotation(x=-6, y=1700, width=1252, height=60)]})
    assert annotations_load(data=data, page_sizes=PAGES)[0].bbox == (0, 1700, 1240, 1754)


def test_a_box_more_than_six_pixels_outside_the_page_is_rejected() -> None:
    # A 300 dpi layout loaded against 150 dpi pages: the bottom box falls off the page.
    data = json.dumps({"0": [_annotation(y=3012, height=178)]})
    assert _problems(annotations_load, data) == [
        "page 1, box 1: lies outside the 1240x1754 px page (more than 6 px past an edge)"]


def test_a_box_within_the_tolerance_but_wholly_past_the_edge_is_rejected() -> None:
    data = json.dumps({"0": [_annotation(x=1242, width=3)]})
    assert _problems(annotations_load, data) == [
        "page 1, box 1: lies outside the 1240x1754 px page (more than 6 px past an edge)"]


def test_labels_must_be_unique_across_pages_and_at_most_32_characters() -> None:
    data = json.dumps({"0": [_annotation(label="Q1")], "1": [_annotation(label="Q1"), _annotation(label="Q" * 33)]})
    assert _problems(annotations_load, data) == [
        'page 2, box 1: label "Q1" is already used by page 1, box 1',
        "page 2, box 2: label is longer than 32 characters",
    ]


def test_validate_names_boxes_by_page_position_and_label() -> None:
    boxes = [AnswerBox(label="Q1", page=1, bbox=(100, 100, 50, 200)),
             AnswerBox(label="NAME", page=1, bbox=(100, 300, 500, 400),
                       steps=(AnswerBox(label="1", page=1, bbox=(100, 300, 200, 400)),))]
    assert boxes_validate(boxes=boxes, page_sizes=PAGES) == [
        "page 2, box 1 (Q1): width must be positive",
        "page 2, box 2 (NAME): NAME is an identity field and cannot have steps",
    ]


def test_steps_share_their_box_page_lie_inside_it_within_two_pixels_and_have_no_steps() -> None:
    step = AnswerBox(label="1", page=0, bbox=(98, 100, 202, 150))
    box = AnswerBox(label="Q1", page=0, bbox=(100, 100, 200, 200), steps=(
        step,
        AnswerBox(label="2", page=0, bbox=(97, 150, 200, 200)),
        AnswerBox(label="3", page=1, bbox=(100, 150, 200, 200)),
        AnswerBox(label="4", page=0, bbox=(100, 150, 200, 200), steps=(step,)),
    ))
    assert boxes_validate(boxes=[box], page_sizes=PAGES) == [
        "page 1, box 1 (Q1), step 2: is not inside its box (more than 2 px past an edge)",
        "page 1, box 1 (Q1), step 3: is on page 2, not on its box's page 1",
        "page 1, box 1 (Q1), step 4: a step cannot have steps of its own",
    ]


def test_step_labels_may_repeat_across_boxes() -> None:
    boxes = [AnswerBox(label=f"Q{n}", page=0, bbox=(100, 100 * n, 200, 100 * n + 90),
                       steps=(AnswerBox(label="1", page=0, bbox=(100, 100 * n, 200, 100 * n + 40)),))
             for n in (1, 2)]
    assert boxes_validate(boxes=boxes, page_sizes=PAGES) == []


# --------------------------------------------------------------------------------------------
# Region list


@pytest.mark.parametrize("page", [0, 1])
def test_demo_pages_round_trip_through_region_lists(demo_boxes: list[AnswerBox], page: int) -> None:
    text = region_list_dump(boxes=demo_boxes, page=page)
    labels = region_list_labels(boxes=demo_boxes, page=page)
    loaded = region_list_load(data=text, page=page, labels=labels, page_sizes=PAGES)
    assert loaded == [box for box in demo_boxes if box.page == page and box.label.startswith("Q")]


def test_region_list_dump_numbers_the_questions_from_one_and_leaves_identity_boxes_out(
        demo_boxes: list[AnswerBox]) -> None:
    regions = json.loads(region_list_dump(boxes=demo_boxes, page=0))
    assert [region["index"] for region in regions] == [1, 2, 3, 4, 5, 6]
    assert regions[0] == {"index": 1, "bbox": [142, 629, 407, 718]}
    assert region_list_labels(boxes=demo_boxes, page=0) == {n: f"Q{n}" for n in range(1, 7)}


def test_region_list_dump_reads_rows_top_to_bottom_and_left_to_right() -> None:
    # Seed 000's Chinese answer sheet: two columns whose boxes differ by a few pixels in height
    # (box 6 starts one pixel above box 5); the seed numbers them row by row.
    seed = [[78, 65, 493, 139], [546, 67, 964, 139], [76, 140, 496, 232],
            [545, 141, 962, 234], [78, 235, 495, 318], [543, 234, 961, 319]]
    boxes = [AnswerBox(label=f"Q{n}", page=0, bbox=tuple(seed[n - 1])) for n in (6, 3, 1, 5, 2, 4)]
    assert json.loads(region_list_dump(boxes=boxes, page=0)) == [
        {"index": n, "bbox": bbox} for n, bbox in enumerate(seed, 1)]


def test_region_list_index_becomes_the_given_label_or_q_and_the_index() -> None:
    data = json.dumps([{"index": 56, "bbox": [166, 69, 495, 146]}, {"index": 57, "bbox": [588, 69, 919, 145]}])
    loaded = region_list_load(data=data, page=1, labels={57: "ID"}, page_sizes=PAGES)
    assert [(box.label, box.page) for box in loaded] == [("Q56", 1), ("ID", 1)]


def test_region_list_that_is_an_object_is_rejected() -> None:
    assert _problems(region_list_load, '{"index": 1}', page=0) == ["the file must be a list of regions, not an object"]


def test_region_list_entries_with_missing_keys_or_bad_values_are_rejected() -> None:
    data = json.dumps([{"bbox": [1, 2, 3, 4]}, {"index": 0, "bbox": [1, 2, 3, 4]},
                       {"index": 3, "bbox": [1, 2, 3]}, {"index": 4, "bbox": [1, "2", 3, 4]}, "Q5"])
    assert _problems(region_list_load, data, page=0) == [
        "region 1: missing index",
        "region 2: index must be a whole number from 1",
        "region 3: bbox must be four numbers [x1, y1, x2, y2]",
        "region 4: bbox must be four numbers [x1, y1, x2, y2]",
        "region 5: must be an object, not text",
    ]


# --------------------------------------------------------------------------------------------
# HG-Bench


def test_demo_boxes_round_trip_through_hgbench_within_one_pixel(demo_boxes: list[AnswerBox]) -> None:
    text = hgbench_dump(boxes=demo_boxes, page_sizes=PAGES)
    loaded = hgbench_load(data=text, page_sizes=PAGES)
    assert [(box.label, box.page) for box in loaded] == [(box.label, box.page) for box in demo_boxes]
    for before, after in zip(demo_boxes, loaded, strict=True):
        assert max(abs(a - b) for a, b in zip(before.bbox, after.bbox, strict=True)) <= 1
    assert hgbench_dump(boxes=loaded, page_sizes=PAGES) == text


def test_hgbench_dump_writes_one_based_pages_labels_and_the_1000_grid(demo_boxes: list[AnswerBox]) -> None:
    items = json.loads(hgbench_dump(boxes=demo_boxes, page_sizes=PAGES))
    assert items[3] == {"type": "complete_answer_box", "page": 1, "label": "Q1", "box_2d": [115, 359, 328, 409]}
    assert items[9]["page"] == 2


def test_two_level_boxes_round_trip_through_hgbench() -> None:
    # Q5 of the demo (a sentence box) split into its two written lines, then a second step-free box.
    steps = (AnswerBox(label="1", page=0, bbox=(150, 1285, 1140, 1355)),
             AnswerBox(label="2", page=0, bbox=(150, 1360, 1140, 1425)))
    boxes = [AnswerBox(label="Q5", page=0, bbox=(142, 1279, 1152, 1432), steps=steps),
             AnswerBox(label="Q7", page=1, bbox=(142, 198, 407, 286))]
    text = hgbench_dump(boxes=boxes, page_sizes=PAGES)
    assert [step["step_id"] for step in json.loads(text)[0]["steps"]] == [1, 2]
    loaded = hgbench_load(data=text, page_sizes=PAGES)
    assert [step.label for step in loaded[0].steps] == ["1", "2"] and loaded[1].steps == ()
    for before, after in zip([*boxes, *steps], [*loaded, *loaded[0].steps], strict=True):
        assert max(abs(a - b) for a, b in zip(before.bbox, after.bbox, strict=True)) <= 1
    assert hgbench_dump(boxes=loaded, page_sizes=PAGES) == text


def test_hgbench_without_labels_numbers_items_by_position_and_steps_by_step_id() -> None:
    data = json.dumps([
        {"type": "complete_answer_box", "page": 1, "box_2d": [0, 0, 500, 500]},
        {"page": 2, "box_2d": [100, 100, 900, 300], "steps": [
            {"step_id": 2, "box_2d": [500, 100, 900, 300]},
            {"step_id": 1, "label": "first blank", "box_2d": [100, 100, 500, 300]}]},
    ])
    loaded = hgbench_load(data=data, page_sizes=PAGES)
    assert loaded == [
        AnswerBox(label="Q1", page=0, bbox=(0, 0, 620, 877)),
        AnswerBox(label="Q2", page=1, bbox=(124, 175, 1116, 526), steps=(
            AnswerBox(label="first blank", page=1, bbox=(124, 175, 620, 526)),
            AnswerBox(label="2", page=1, bbox=(620, 175, 1116, 526)))),
    ]


def test_hgbench_read_keeps_the_grid_coordinates_unrounded() -> None:
    items = hgbench_read(value=[{"page": 1, "box_2d": [0.5, 1, 2, 3.25]}])
    assert items == [HGBenchBox(page=1, box_2d=(0.5, 1, 2, 3.25))]


def test_hgbench_that_is_an_object_is_rejected() -> None:
    assert _problems(hgbench_load, '{"page": 1}') == ["the file must be a list of boxes, not an object"]


def test_hgbench_items_with_missing_keys_or_bad_values_are_rejected() -> None:
    data = json.dumps([
        {"page": 1},
        {"type": "step_box", "page": 0, "box_2d": [0, 0, 10]},
        {"page": 1, "box_2d": [0, 0, 10, 10], "label": 5},
        {"page": 1, "box_2d": [0, 0, 500, 500], "steps": [{"box_2d": [0, 0, 10, 10]},
                                                         {"step_id": 0, "box_2d": [0, 0, 9, 9]}]},
        {"page": 1, "box_2d": [0, 0, 500, 500], "steps": [{"step_id": 1, "box_2d": [0, 0, 10, 10]},
                                                         {"step_id": 1, "box_2d": [0, 20, 10, 30]}]},
        {"page": 3, "box_2d": [0, 0, 10, 10]},
    ])
    assert _problems(hgbench_load, data) == [
        "item 1: missing box_2d",
        'item 2: type must be "complete_answer_box"',
        "item 2: page must be a whole number from 1",
        "item 2: box_2d must be four numbers [x1, y1, x2, y2]",
        "item 3: label must be text",
        "item 4, step 1: missing step_id",
        "item 4, step 2: step_id must be a whole number from 1",
        "item 5: step_id values must differ",
        "item 6: page 3 does not exist (the exam has 2 pages)",
    ]


def _one_step(step_box: list[int]) -> str:
    return json.dumps([{"page": 1, "box_2d": [100, 100, 500, 500], "steps": [{"step_id": 1, "box_2d": step_box}]}])


def test_hgbench_step_overflowing_its_box_by_two_pixels_is_clipped_to_it() -> None:
    # On a 1000x1000 px page grid units are pixels.
    loaded = hgbench_load(data=_one_step([98, 100, 300, 502]), page_sizes=[(1000, 1000)])
    assert loaded[0].steps[0].bbox == (100, 100, 300, 500)


def test_hgbench_step_overflowing_its_box_by_three_pixels_is_rejected() -> None:
    with pytest.raises(BoxFormatError) as caught:
        hgbench_load(data=_one_step([97, 100, 300, 300]), page_sizes=[(1000, 1000)])
    assert caught.value.problems == ["item 1, step 1: is not inside its box (more than 2 px past an edge)"]
