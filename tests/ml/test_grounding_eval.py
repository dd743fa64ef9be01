"""HG-Bench scoring follows the official evaluate.py's rules; every expected value is worked out by hand from them.

Page sizes are chosen so that the 0-1000 grid and pixels differ. Percentages are the official units.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.grounding_eval import (
    EvalConfig,
    Sample,
    boxes_by_page,
    boxes_match,
    dataset_scores,
    jsonl_read,
    main,
    page_sizes_read,
    reply_parse,
    sample_score,
    samples_combined,
    samples_merge,
)

REPO = Path(__file__).resolve().parents[2]
PAGE = {1: (2000.0, 1000.0)}  # one page, 2000 px wide and 1000 px high
TWO_PAGES = {1: (2000.0, 1000.0), 2: (1000.0, 2000.0)}
# Three disjoint boxes and a parent with step boxes inside it, on the 0-1000 grid.
A, B, C = [0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100]
PARENT = [0, 0, 500, 500]
STEPS = [[0, 100 * k, 100, 100 * k + 80] for k in range(4)]
KEYS = ["report", "title_f1", "step_f1_micro_gt_step_pages", "step_f1_macro_gt_step_samples", "success_rate",
        "report_all", "num_total", "num_success"]


def _item(box: list, *, page: object = 1, steps: list = (), **fields: object) -> dict:
    item = {"type": "complete_answer_box", "page": page, "box_2d": box, **fields}
    if steps:
        item["steps"] = [{"step_id": k, "box_2d": step} for k, step in enumerate(steps, 1)]
    return item


def _scores(*pairs: tuple[list, list | str], sizes: dict = PAGE, **config: object) -> dict:
    samples = [Sample(gt=json.dumps(gold), pred=pred if isinstance(pred, str) else json.dumps(pred), page_sizes=sizes)
               for gold, pred in pairs]
    return dataset_scores(samples=samples, config=EvalConfig(**config))


def _one(gold: list, pred: list | str, *, sizes: dict = PAGE, **config: object):
    return sample_score(sample=Sample(gt=json.dumps(gold), pred=pred if isinstance(pred, str) else json.dumps(pred),
                                      page_sizes=sizes), config=EvalConfig(**config))


# --------------------------------------------------------------------------------------------
# Results in the official keys and units


def test_a_perfect_prediction_scores_one_hundred_in_the_official_keys() -> None:
    gold = [_item(PARENT, steps=STEPS[:2]), _item(A, page=2)]
    scores = _scores((gold, gold), sizes=TWO_PAGES)
    assert list(scores) == KEYS
    assert scores == {"report": 100.0, "title_f1": 100.0, "step_f1_micro_gt_step_pages": 100.0,
                      # Page 2 has no steps: its step F1 is 0 and the sample's is (1 + 0) / 2.
                      "step_f1_macro_gt_step_samples": 50.0,
                      "success_rate": 1.0, "report_all": 100.0, "num_total": 1, "num_success": 1}


def test_one_missed_box_of_two_gives_two_thirds_rounded_to_two_decimals() -> None:
    scores = _scores(([_item(A), _item(B)], [_item(A)]))
    # P = 1, R = 1/2, F1 = 2/3.
    assert (scores["title_f1"], scores["report"], scores["report_all"]) == (66.67, 66.67, 66.67)


def test_success_rate_is_a_fraction_rounded_to_four_decimals() -> None:
    scores = _scores(*[([_item(A)], [_item(A)])] * 2, ([_item(A)], "FAIL_STR"))
    assert scores["success_rate"] == 0.6667
    assert (scores["num_total"], scores["num_success"]) == (3, 2)
    # report covers the two parsed samples, report_all all three.
    assert (scores["report"], scores["report_all"]) == (100.0, 66.67)


# --------------------------------------------------------------------------------------------
# Cause 1: only the fail sentinel fails a sample; the lenient parser drops bad items one at a time


@pytest.mark.parametrize("reply", ["FAIL_STR", "  FAIL_STR\n"])
def test_only_the_fail_sentinel_fails_a_sample(reply: str) -> None:
    assert _one([_item(A)], reply).success is False


def test_the_fail_sentinel_can_be_changed() -> None:
    assert _one([_item(A)], "ERROR", fail_str="ERROR").success is False
    assert _one([_item(A)], "FAIL_STR", fail_str="ERROR").success is True


@pytest.mark.parametrize("reply", ["", "no boxes here", '{"page": 1}', "[1, 2, 3]", "[", '[{"type": '])
def test_a_reply_without_boxes_is_parsed_and_scores_zero_not_a_failure(reply: str) -> None:
    scores = _scores(([_item(A)], reply))
    assert (scores["success_rate"], scores["num_success"]) == (1.0, 1)
    assert (scores["title_f1"], scores["report_all"]) == (0.0, 0.0)


def test_a_missing_page_means_page_one_as_the_prompt_asks_on_one_page() -> None:
    item = _item(A)
    del item["page"]
    assert _one([_item(A)], [item]).title_f1 == 1.0


@pytest.mark.parametrize(("page", "read_as"), [("2", 2), ("two", 1), (0, 1), (None, 1), (2.9, 2), ([], 1), (True, 1)])
def test_pages_are_read_as_the_official_code_reads_them(page: object, read_as: int) -> None:
    titles, _ = boxes_by_page(items=[_item(A, page=page)], page_sizes=TWO_PAGES)
    assert list(titles) == [read_as]


def test_items_of_another_type_are_dropped_and_type_2d_stands_in_for_a_missing_type() -> None:
    stranger = _item(B, type="answer")
    untyped = {"type_2d": "complete_answer_box", "page": 1, "box_2d": C}
    # Gold A, B, C; prediction finds A and C, the B of another type is not a prediction: P 1, R 2/3, F1 0.8.
    assert _one([_item(A), _item(B), _item(C)], [_item(A), stranger, untyped]).title_f1 == pytest.approx(0.8)


def test_a_polygon_box_counts_as_its_envelope() -> None:
    polygon = [[0, 0], [100, 0], [100, 100], [0, 100]]
    assert _one([_item(A)], [_item(polygon)]).title_f1 == 1.0


def test_steps_need_no_step_id_and_repeated_step_ids_are_kept() -> None:
    pred = [_item(PARENT, steps=[])]
    pred[0]["steps"] = [{"box_2d": STEPS[0]}, {"step_id": 1, "box_2d": STEPS[1]}]
    score = _one([_item(PARENT, steps=STEPS[:2])], pred)
    assert (score.step_f1, score.step_counts) == (1.0, (2, 0, 0))


def test_an_item_whose_box_cannot_be_read_is_dropped_with_its_steps_and_the_others_stay() -> None:
    broken = _item([0, 0, 100], steps=STEPS[:2])
    score = _one([_item(A), _item(PARENT, steps=STEPS[:2])], [_item(A), broken])
    # Titles: TP 1 (A), FN 1 (PARENT): F1 2/3. Steps: FN 2, F1 0. Composite (2/3 + 0) / 2.
    assert (score.title_f1, score.step_counts) == (pytest.approx(2 / 3), (0, 0, 2))
    assert score.composite == pytest.approx(1 / 3)


@pytest.mark.parametrize("text", [
    '```json\n[{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]}]\n```',
    'I look at [the page] first.</think>[{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]}]',
    '<|begin_of_box|>[{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]}]<|end_of_box|>',
    '[{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]}, {"type": "complete_answer_box", "box_2d": [2',
    '[{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]},]',
])
def test_fences_special_tokens_thinking_and_a_cut_off_array_are_tolerated(text: str) -> None:
    assert reply_parse(text=text) == [{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]}]


@pytest.mark.parametrize("text", [
    'Sure: [{"type": "complete_answer_box", "box_2d": [0, 0, 100, 100]}]',  # prose before the array
    "[{'type': 'complete_answer_box', 'box_2d': [0, 0, 100, 100]}]",  # single quotes
])
def test_replies_the_official_parser_cannot_read_give_no_boxes(text: str) -> None:
    assert reply_parse(text=text) == []


def test_an_array_mixing_objects_and_other_values_keeps_the_objects() -> None:
    assert reply_parse(text='[1, {"page": 2}, "x"]') == [{"page": 2}]


# --------------------------------------------------------------------------------------------
# Cause 2: IoU on pixels


def test_iou_is_taken_in_pixels_so_a_half_on_the_grid_can_fall_just_short_on_the_page() -> None:
    sizes = {1: (1320.0, 2023.0)}
    # On the grid IoU = 90 / 180 = 0.5 exactly; in pixels of this page it is 0.49999999999999994.
    assert _one([_item([0, 0, 100, 180])], [_item([0, 0, 100, 90])], sizes=sizes).title_f1 == 0.0
    assert _one([_item([0, 0, 100, 180])], [_item([0, 0, 100, 90])], sizes=sizes, coord_format="pixel").title_f1 == 1.0


def test_pixel_coordinates_are_read_as_they_are() -> None:
    # In pixels on a 2000 x 1000 page, grid A is [0, 0, 200, 100].
    assert boxes_by_page(items=[_item(A)], page_sizes=PAGE)[0] == {1: [(0.0, 0.0, 200.0, 100.0)]}
    assert boxes_by_page(items=[_item(A)], page_sizes=PAGE, coord_format="pixel")[0] == {1: [(0.0, 0.0, 100.0, 100.0)]}


def test_yxyx_flags_swap_the_axes_of_their_side_only() -> None:
    tall = [0, 0, 100, 300]
    assert _one([_item(tall)], [_item([0, 0, 300, 100])], pred_box_yxyx=True).title_f1 == 1.0
    assert _one([_item([0, 0, 300, 100])], [_item(tall)], gt_box_yxyx=True).title_f1 == 1.0
    assert _one([_item(tall)], [_item([0, 0, 300, 100])]).title_f1 == 0.0


# --------------------------------------------------------------------------------------------
# Cause 3: F_S^M averages a sample's step F1 over all its pages; F_S^mu counts step-bearing pages only


@pytest.fixture
def two_page_steps() -> tuple[list, list]:
    """Page 1: gold PARENT with 4 steps, predicted with 2 of them and one stray step. Page 2: a question box
    without steps, predicted with one stray step."""
    gold = [_item(PARENT, steps=STEPS), _item(A, page=2)]
    pred = [_item(PARENT, steps=[*STEPS[:2], [800, 800, 900, 900]]), _item(A, page=2, steps=[[500, 500, 600, 600]])]
    return gold, pred


def test_step_micro_f1_counts_pages_with_gold_steps_only(two_page_steps: tuple[list, list]) -> None:
    # Page 1 only: TP 2, FP 1, FN 2 -> P 2/3, R 1/2, F1 4/7 (the stray step of page 2 is not counted).
    assert _scores(two_page_steps, sizes=TWO_PAGES)["step_f1_micro_gt_step_pages"] == 57.14


def test_step_macro_f1_averages_over_all_the_samples_pages(two_page_steps: tuple[list, list]) -> None:
    # Page 1 step F1 4/7, page 2 (TP 0, FP 1) 0: the sample's (4/7 + 0) / 2 = 2/7.
    assert _scores(two_page_steps, sizes=TWO_PAGES)["step_f1_macro_gt_step_samples"] == 28.57


def test_samples_without_gold_steps_are_outside_the_step_macro(two_page_steps: tuple[list, list]) -> None:
    no_steps = ([_item(A)], [_item(A, steps=[B])])
    assert _scores(two_page_steps, no_steps, sizes=TWO_PAGES)["step_f1_macro_gt_step_samples"] == 28.57


# --------------------------------------------------------------------------------------------
# Cause 4: a page's composite mixes in step F1 whenever it has any step, gold or predicted


def test_predicted_steps_on_a_page_without_gold_steps_count_in_its_composite() -> None:
    score = _one([_item(A)], [_item(A, steps=[B])])
    # Title F1 1, step TP 0 FP 1 -> step F1 0; composite 0.5 * 1 + 0.5 * 0.
    assert (score.title_f1, score.composite) == (1.0, 0.5)


def test_a_page_without_any_step_scores_its_title_f1_alone() -> None:
    assert _one([_item(A), _item(B)], [_item(A)]).composite == pytest.approx(2 / 3)


def test_the_step_weight_sets_the_step_share_of_a_page() -> None:
    gold = [_item(PARENT, steps=STEPS[:2])]
    pred = [_item(PARENT, steps=STEPS[:1])]
    # Title F1 1, step F1 2/3: 0.7 * 1 + 0.3 * 2/3 = 0.9.
    assert _scores((gold, pred), step_weight=0.3)["report"] == 90.0


def test_two_pages_composite_is_their_mean(two_page_steps: tuple[list, list]) -> None:
    # Page 1: 0.5 * 1 + 0.5 * 4/7 = 11/14; page 2: 0.5 * 1 + 0.5 * 0 = 1/2; mean 9/14.
    assert _scores(two_page_steps, sizes=TWO_PAGES)["report_all"] == 64.29


# --------------------------------------------------------------------------------------------
# Cause 5: a sample with no box anywhere scores 0 and still counts as parsed


def test_an_empty_sample_scores_zero_and_counts_as_parsed() -> None:
    scores = _scores(([], []), ([_item(A)], [_item(A)]))
    assert (scores["title_f1"], scores["report"], scores["report_all"]) == (50.0, 50.0, 50.0)
    assert (scores["success_rate"], scores["num_success"]) == (1.0, 2)


def test_boxes_that_all_drop_out_leave_an_empty_sample() -> None:
    # No gold, and the only prediction is on a page that does not exist.
    score = _one([], [_item(A, page=3)])
    assert (score.success, score.composite, score.title_f1) == (True, 0.0, 0.0)


# --------------------------------------------------------------------------------------------
# Cause 6: greedy matching by IoU, ties from the highest gold then prediction index


def test_equal_ious_are_taken_from_the_last_gold_box_first() -> None:
    p0, p1 = [0, 0, 100, 100], [0, 0, 100, 60]
    g0, g1 = [0, 0, 100, 80], [0, 20, 100, 100]
    # IoU(g0, p0) = IoU(g1, p0) = 0.8; IoU(g0, p1) = 0.75; IoU(g1, p1) = 0.4.
    # Official order: (g1, p0) first, then (g0, p1): two matches where gold order would find one.
    assert boxes_match(gold=[g0, g1], pred=[p0, p1]) == [(1, 0), (0, 1)]
    assert _one([_item(g0), _item(g1)], [_item(p0), _item(p1)], sizes={1: (1000.0, 1000.0)}).title_f1 == 1.0


def test_equal_ious_take_the_last_prediction_first() -> None:
    assert boxes_match(gold=[A], pred=[A, A]) == [(0, 1)]


def test_the_highest_iou_pair_is_matched_first() -> None:
    g1, g2 = [0, 0, 100, 100], [50, 0, 150, 100]
    p1, p2 = [40, 0, 140, 100], [0, 0, 90, 100]
    # IoU(g1, p2) = 0.9 goes first, then IoU(g2, p1) = 90/110.
    assert boxes_match(gold=[g1, g2], pred=[p1, p2]) == [(0, 1), (1, 0)]


@pytest.mark.parametrize(("bottom", "matches"), [(51, 1), (50, 1), (49, 0)])
def test_a_pair_matches_at_the_threshold_but_not_below(bottom: int, matches: int) -> None:
    assert len(boxes_match(gold=[A], pred=[[0, 0, 100, bottom]], min_iou=0.5)) == matches


def test_the_iou_threshold_is_a_setting() -> None:
    assert _one([_item(A)], [_item([0, 0, 100, 40])], iou_thr=0.4).title_f1 == 1.0
    assert _one([_item(A)], [_item([0, 0, 100, 40])]).title_f1 == 0.0


# --------------------------------------------------------------------------------------------
# Cause 7: pages without an image drop their boxes; zero-area boxes drop, their steps stay


def test_boxes_on_a_page_that_does_not_exist_are_dropped_not_false_positives() -> None:
    assert _one([_item(A)], [_item(A), _item(B, page=2)]).title_f1 == 1.0


def test_a_page_with_zero_size_has_no_boxes() -> None:
    assert _one([_item(A)], [_item(A)], sizes={1: (0.0, 1000.0)}).composite == 0.0


def test_a_zero_area_question_box_is_dropped_but_its_steps_are_kept() -> None:
    score = _one([_item(PARENT, steps=STEPS[:2])], [_item([0, 0, 0, 500], steps=STEPS[:2])])
    # Title: FN 1 -> 0. Steps: TP 2 -> 1. Composite 0.5 * 0 + 0.5 * 1.
    assert (score.title_f1, score.step_f1, score.composite) == (0.0, 1.0, 0.5)


def test_inverted_boxes_have_no_area_and_are_dropped() -> None:
    assert _one([_item(A)], [_item([100, 100, 0, 0])]).title_f1 == 0.0


# --------------------------------------------------------------------------------------------
# Files: page sizes, joining by uuid, opt-in stricter rules


def test_page_sizes_follow_media_map_order_with_height_first() -> None:
    metadata = {"media_map": {"b": [], "a": []}, "media_size": {"a": [100, 50], "b": [300, 200]}}
    assert page_sizes_read(metadata=metadata) == {1: (200.0, 300.0), 2: (50.0, 100.0)}


def test_without_media_map_the_first_usable_size_is_page_one() -> None:
    assert page_sizes_read(metadata={"media_size": {"x": [], "y": [30, 40]}}) == {1: (40.0, 30.0)}
    assert page_sizes_read(metadata={"imgsize_wh": [40, 30]}) == {1: (40.0, 30.0)}
    assert page_sizes_read(metadata={}) == {}


def _gt_line(uuid: str, gold: list) -> dict:
    return {"uuid": uuid, "metadata": {"answer": json.dumps(gold), "media_size": {"img": [1000, 2000]},
                                       "media_map": {"img": ["id", "file.jpg"]}}}


def test_predictions_join_gold_by_uuid_and_gold_without_a_prediction_is_outside_n() -> None:
    gt = [_gt_line("a", [_item(A)]), _gt_line("b", [_item(B)])]
    pred = [{"uuid": "a", "predict": json.dumps([_item(A)])}, {"uuid": "zzz", "predict": "[]"}]
    samples, unknown = samples_merge(gt=gt, pred=pred)
    assert unknown == 1
    scores = dataset_scores(samples=samples)
    assert (scores["num_total"], scores["title_f1"]) == (1, 100.0)
    strict = dataset_scores(samples=samples, config=EvalConfig(missing_as_failure=True))
    assert (strict["num_total"], strict["success_rate"], strict["report_all"]) == (2, 0.5, 50.0)


def test_a_repeated_prediction_line_counts_twice() -> None:
    pred = [{"uuid": "a", "predict": json.dumps([_item(A)])}, {"uuid": "a", "predict": "[]"}]
    scores = dataset_scores(samples=samples_merge(gt=[_gt_line("a", [_item(A)])], pred=pred)[0])
    assert (scores["num_total"], scores["title_f1"]) == (2, 50.0)


def test_success_false_is_ignored_as_the_official_code_does_unless_honoured() -> None:
    pred = [{"uuid": "a", "predict": json.dumps([_item(A)]), "success": False}]
    samples, _ = samples_merge(gt=[_gt_line("a", [_item(A)])], pred=pred)
    assert dataset_scores(samples=samples)["num_success"] == 1
    assert dataset_scores(samples=samples, config=EvalConfig(honour_success=True))["num_success"] == 0


def test_strict_schema_fails_replies_the_paper_would_not_call_valid() -> None:
    no_page = {"type": "complete_answer_box", "box_2d": A}
    assert _one([_item(A)], [no_page], strict_schema=True).success is False
    assert _one([_item(A)], "no array", strict_schema=True).success is False
    assert _one([_item(A)], "[]", strict_schema=True).success is True
    assert _one([_item(A)], [_item(A, steps=[B])], strict_schema=True).success is True


def test_combined_lines_carry_gold_and_prediction() -> None:
    line = {**_gt_line("a", [_item(A)]), "predict": json.dumps([_item(A)])}
    assert dataset_scores(samples=samples_combined(records=[line]))["title_f1"] == 100.0


def test_unreadable_lines_are_refused_with_their_line_number() -> None:
    with pytest.raises(ValueError, match="line 2: not JSON"):
        jsonl_read(data='{"uuid": "a"}\n{oops\n')
    with pytest.raises(ValueError, match="line 1: expected an object"):
        jsonl_read(data="[1]\n")


# --------------------------------------------------------------------------------------------
# Command line


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    gold = [_item(PARENT, steps=STEPS[:2]), _item(A)]
    pred = [_item(PARENT, steps=STEPS[:1]), _item(C)]
    gt_line, pred_line = _gt_line("a", gold), {"uuid": "a", "predict": json.dumps(pred)}
    paths = {"gt": tmp_path / "gt.jsonl", "pred": tmp_path / "pred.jsonl", "combined": tmp_path / "c.jsonl"}
    paths["gt"].write_text(json.dumps(gt_line) + "\n")
    paths["pred"].write_text(json.dumps(pred_line) + "\n\n")
    paths["combined"].write_text(json.dumps({**gt_line, **pred_line}) + "\n")
    return paths


# Titles: PARENT matched, A missed, C extra -> F1 1/2. Steps: TP 1, FN 1 -> 2/3. Composite 0.5/2 + (2/3)/2 = 7/12.
EXPECTED = {"report": 58.33, "title_f1": 50.0, "step_f1_micro_gt_step_pages": 66.67,
            "step_f1_macro_gt_step_samples": 66.67, "success_rate": 1.0, "report_all": 58.33,
            "num_total": 1, "num_success": 1}


def test_cli_writes_the_official_keys_from_gt_and_pred_files(files: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "scores.json"
    assert main(["--gt", str(files["gt"]), "--pred", str(files["pred"]), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == EXPECTED
    printed = capsys.readouterr().out
    assert "F_A   (title_f1)       : 50.00" in printed and "S_bar (report_all)     : 58.33" in printed


def test_cli_reads_a_combined_file_with_the_same_result(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "scores.json"
    assert main(["--combined", str(files["combined"]), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == EXPECTED


def test_cli_flags_reach_the_scores(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "scores.json"
    main(["--combined", str(files["combined"]), "--step-weight", "1", "--iou-thr", "0.9", "--out", str(out)])
    # Titles unchanged at IoU 0.9 (exact boxes); with weight 1 the composite is the step F1 2/3.
    assert json.loads(out.read_text())["report"] == 66.67


def test_cli_runs_as_a_module(files: dict[str, Path]) -> None:
    result = subprocess.run([sys.executable, "-m", "ml.grounding_eval", "--combined", str(files["combined"])],
                            capture_output=True, text=True, cwd=REPO, check=True)
    assert "F_S^mu (micro_gt_pages): 66.67" in result.stdout


def test_cli_refuses_a_malformed_file_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--combined", str(bad)])
    assert exit_info.value.code == 2
    assert "line 1: not JSON" in capsys.readouterr().err


def test_cli_needs_combined_or_both_gt_and_pred(files: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--gt", str(files["gt"])])
    assert exit_info.value.code == 2


def test_cli_says_when_there_is_no_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["--combined", str(empty)]) == 1
    assert "No samples" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The official example (not redistributable: the repository has no licence)

OFFICIAL = os.environ.get("HGBENCH_EXAMPLES")


@pytest.mark.skipif(not OFFICIAL, reason="set HGBENCH_EXAMPLES to the official repository's examples/ folder")
def test_the_official_five_samples_give_the_published_figures(tmp_path: Path) -> None:
    folder = Path(OFFICIAL or "")
    published = {"title_f1": 20.0, "step_f1_micro_gt_step_pages": 4.0, "step_f1_macro_gt_step_samples": 2.78,
                 "report_all": 10.83, "report": 10.83, "success_rate": 1.0, "num_total": 5, "num_success": 5}
    runs = [["--combined", str(folder / "sample_combined.jsonl")]]
    if (folder / "sample_gt.jsonl").exists():
        runs.append(["--gt", str(folder / "sample_gt.jsonl"), "--pred", str(folder / "sample_predictions.jsonl")])
    for number, args in enumerate(runs):
        out = tmp_path / f"{number}.json"
        assert main([*args, "--out", str(out)]) == 0
        assert json.loads(out.read_text()) == published
