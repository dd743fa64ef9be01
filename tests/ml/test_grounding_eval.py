"""HG-Bench scoring: page-aware greedy matching, F_A, F_S micro and macro, parse success, composite, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml.grounding_eval import boxes_match, grounding_scores, hgbench_parse_lenient, main, samples_load

REPO = Path(__file__).resolve().parents[2]

# Three disjoint 100x100 boxes on the 0-1000 grid.
A, B, C = [0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100]
# A parent box and four disjoint step boxes inside it.
PARENT = [0, 0, 500, 500]
STEPS = [[0, 100 * k, 100, 100 * k + 80] for k in range(4)]


def _item(box: list[float], *, page: int = 1, steps: list[list[float]] = ()) -> dict:
    item = {"type": "complete_answer_box", "page": page, "box_2d": box}
    if steps:
        item["steps"] = [{"step_id": k, "box_2d": step} for k, step in enumerate(steps, 1)]
    return item


# --------------------------------------------------------------------------------------------
# Matching and F_A


def test_a_perfect_prediction_scores_one_everywhere() -> None:
    gold = {"s1": [_item(PARENT, steps=STEPS[:2])], "s2": [_item(A), _item(B, page=2)]}
    scores = grounding_scores(gold=gold, pred=gold)
    assert (scores.answer_f1, scores.step_f1_micro, scores.step_f1_macro) == (1.0, 1.0, 1.0)
    assert (scores.parse_success, scores.composite) == (1.0, 1.0)
    assert (scores.answer_tp, scores.answer_fp, scores.answer_fn) == (3, 0, 0)
    assert (scores.step_tp, scores.step_fp, scores.step_fn) == (2, 0, 0)


def test_one_missed_box_of_two_gives_f1_two_thirds() -> None:
    # TP 1, FP 0, FN 1: F1 = 2 / (2 + 0 + 1).
    scores = grounding_scores(gold={"s": [_item(A), _item(B)]}, pred={"s": [_item(A)]})
    assert scores.answer_f1 == pytest.approx(2 / 3)
    assert (scores.answer_tp, scores.answer_fp, scores.answer_fn) == (1, 0, 1)
    assert scores.composite == pytest.approx(2 / 3)


def test_one_extra_box_gives_f1_two_thirds() -> None:
    scores = grounding_scores(gold={"s": [_item(A)]}, pred={"s": [_item(A), _item(C)]})
    assert scores.answer_f1 == pytest.approx(2 / 3)
    assert (scores.answer_tp, scores.answer_fp, scores.answer_fn) == (1, 1, 0)


@pytest.mark.parametrize(("bottom", "expected"), [(51, 1.0), (50, 1.0), (49, 0.0)])
def test_a_box_matches_at_iou_of_exactly_one_half_but_not_below(bottom: int, expected: float) -> None:
    # The prediction is the top part of the gold box: IoU = bottom / 100.
    scores = grounding_scores(gold={"s": [_item(A)]}, pred={"s": [_item([0, 0, 100, bottom])]})
    assert scores.answer_f1 == expected


def test_a_box_on_the_wrong_page_does_not_match() -> None:
    # Page 1: TP 1, FP 1 -> 2/3. Page 2: FN 1 -> 0. F_A = (2/3 + 0) / 2.
    scores = grounding_scores(gold={"s": [_item(A), _item(B, page=2)]}, pred={"s": [_item(A), _item(B)]})
    assert scores.answer_f1 == pytest.approx(1 / 3)


def test_a_box_on_a_page_without_gold_boxes_makes_that_page_score_zero() -> None:
    # Pages 1 and 3 count: (1 + 0) / 2.
    scores = grounding_scores(gold={"s": [_item(A)]}, pred={"s": [_item(A), _item(C, page=3)]})
    assert scores.answer_f1 == 0.5


def test_greedy_matching_takes_the_highest_iou_pair_first_not_the_first_gold_box() -> None:
    # IoU(g1, p1) = 0.82, IoU(g2, p1) = 0.90, IoU(g1, p2) = 0.54, IoU(g2, p2) = 0.36.
    # Highest IoU first pairs g2-p1 then g1-p2; taking gold boxes in order would pair g1-p1 and
    # leave g2 unmatched (F1 0.5).
    g1, g2 = [10, 0, 110, 100], [0, 0, 90, 100]
    p1, p2 = [0, 0, 100, 100], [40, 0, 140, 100]
    assert boxes_match(gold=[g1, g2], pred=[p1, p2]) == [(1, 0), (0, 1)]
    scores = grounding_scores(gold={"s": [_item(g1), _item(g2)]}, pred={"s": [_item(p1), _item(p2)]})
    assert scores.answer_f1 == 1.0


def test_a_sample_empty_in_gold_and_prediction_scores_one() -> None:
    scores = grounding_scores(gold={"s": []}, pred={"s": "[]"})
    assert (scores.answer_f1, scores.composite, scores.parse_success) == (1.0, 1.0, 1.0)
    assert (scores.step_f1_micro, scores.step_f1_macro) == (None, None)


# --------------------------------------------------------------------------------------------
# F_S and the composite


@pytest.fixture
def step_case() -> tuple[dict, dict]:
    """s1: page 1 has 4 gold steps, all found; page 2 has 2, none predicted.
    s2: page 1 has 1 gold step, found; page 2 has none, yet one is predicted there."""
    gold = {"s1": [_item(PARENT, steps=STEPS), _item(PARENT, page=2, steps=STEPS[:2])],
            "s2": [_item(PARENT, steps=STEPS[:1]), _item(PARENT, page=2)]}
    pred = {"s1": [_item(PARENT, steps=STEPS), _item(PARENT, page=2)],
            "s2": [_item(PARENT, steps=STEPS[:1]), _item(PARENT, page=2, steps=STEPS[:1])]}
    return gold, pred


def test_step_micro_f1_pools_counts_over_step_bearing_pages_only(step_case: tuple[dict, dict]) -> None:
    # TP 4 + 0 + 1 = 5, FN 2, and s2's page 2 (no gold steps) is not counted: 10 / 12.
    scores = grounding_scores(gold=step_case[0], pred=step_case[1])
    assert scores.step_f1_micro == pytest.approx(5 / 6)
    assert (scores.step_tp, scores.step_fp, scores.step_fn, scores.step_pages) == (5, 0, 2, 3)


def test_step_macro_f1_averages_pages_within_a_sample_then_samples(step_case: tuple[dict, dict]) -> None:
    # s1: (1 + 0) / 2 = 0.5; s2: 1. Mean 0.75.
    scores = grounding_scores(gold=step_case[0], pred=step_case[1])
    assert scores.step_f1_macro == 0.75
    assert scores.step_samples == 2


def test_composite_weighs_step_f1_into_step_bearing_pages_only(step_case: tuple[dict, dict]) -> None:
    # s1: page 1 = 1, page 2 = 0.5 * 1 + 0.5 * 0 -> 0.75; s2: pages 1 and 2 = 1. Mean 0.875.
    assert grounding_scores(gold=step_case[0], pred=step_case[1]).composite == 0.875
    # With step weight 0.2, s1's page 2 is 0.8 -> s1 0.9 -> mean 0.95.
    assert grounding_scores(gold=step_case[0], pred=step_case[1], step_weight=0.2).composite == pytest.approx(0.95)


def test_steps_match_across_all_boxes_of_a_page_not_within_their_parents() -> None:
    left, right = [0, 0, 500, 500], [500, 0, 1000, 500]
    step_left, step_right = [0, 0, 100, 80], [500, 0, 600, 80]
    gold = {"s": [_item(left, steps=[step_left]), _item(right, steps=[step_right])]}
    pred = {"s": [_item(left, steps=[step_right]), _item(right, steps=[step_left])]}
    assert grounding_scores(gold=gold, pred=pred).step_f1_micro == 1.0


# --------------------------------------------------------------------------------------------
# Parse failures and the lenient parser


def test_unparsable_missing_and_off_schema_predictions_fail_and_a_truncated_reply_keeps_its_complete_items() -> None:
    gold = {sample: [_item(A), _item(B)] for sample in ("s1", "s2", "s3", "s4", "s5")}
    pred = {
        "s1": [_item(A), _item(B)],
        "s2": "I could not find any handwritten answers.",
        "s4": '```json\n[{"page": 1, "box_2d": [0, 0, 100, 100]}, {"page": 1, "box_2d": [200, 0, 3',
        "s5": [{"page": 1, "box_2d": [0, 0, 100]}],
    }
    scores = grounding_scores(gold=gold, pred=pred)
    assert (scores.samples, scores.parsed, scores.missing) == (5, 2, 1)
    assert scores.parse_success == 0.4
    # F_A over parsed samples: (1 + 2/3) / 2. Composite over all five, failures as 0: (1 + 2/3) / 5.
    assert scores.answer_f1 == pytest.approx(5 / 6)
    assert scores.composite == pytest.approx(1 / 3)


def test_no_parsed_sample_leaves_f_a_undefined_and_the_composite_zero() -> None:
    scores = grounding_scores(gold={"s": [_item(A)]}, pred={"s": "no"})
    assert (scores.answer_f1, scores.parse_success, scores.composite) == (None, 0.0, 0.0)


def test_malformed_gold_is_an_error_naming_the_sample() -> None:
    with pytest.raises(ValueError, match="gold sample 'page-7': item 1: missing box_2d"):
        grounding_scores(gold={"page-7": [{"page": 1}]}, pred={})
    with pytest.raises(ValueError, match="no samples"):
        grounding_scores(gold={}, pred={})


def test_lenient_parser_skips_prose_brackets_and_code_fences() -> None:
    text = ('Coordinates are [xmin, ymin, xmax, ymax] in [0, 1000].\n```json\n'
            '[{"type": "complete_answer_box", "page": 1, "box_2d": [1, 2, 3, 4]}]\n```\nHope this helps [1].')
    assert hgbench_parse_lenient(text=text) == [{"type": "complete_answer_box", "page": 1, "box_2d": [1, 2, 3, 4]}]


def test_lenient_parser_drops_trailing_commas() -> None:
    text = '[{"page": 1, "box_2d": [1, 2, 3, 4,],}, ]'
    assert hgbench_parse_lenient(text=text) == [{"page": 1, "box_2d": [1, 2, 3, 4]}]


def test_lenient_parser_reads_single_quoted_strings() -> None:
    text = "[{'page': 1, 'label': 'say \"hi\"', 'note': \"it's\", 'box_2d': [1, 2, 3, 4]}]"
    assert hgbench_parse_lenient(text=text) == [
        {"page": 1, "label": 'say "hi"', "note": "it's", "box_2d": [1, 2, 3, 4]}]


def test_lenient_parser_recovers_the_complete_items_of_a_truncated_array() -> None:
    text = ('[{"page": 1, "box_2d": [1, 2, 3, 4], "steps": [{"step_id": 1, "box_2d": [1, 2, 3, 3]}]},\n'
            ' {"page": 1, "box_2d": [5, 6, 7, 8], "steps": [{"step_id": 1, "box_2d": [5, 6')
    assert hgbench_parse_lenient(text=text) == [
        {"page": 1, "box_2d": [1, 2, 3, 4], "steps": [{"step_id": 1, "box_2d": [1, 2, 3, 3]}]}]


@pytest.mark.parametrize("text", ["I cannot see any handwriting.", '[{"page": 1, "box_2d": [1, 2',
                                  '{"page": 1, "box_2d": [1, 2, 3, 4]}', "[1, 2, 3, 4]", ""])
def test_lenient_parser_gives_none_without_a_recoverable_array_of_objects(text: str) -> None:
    assert hgbench_parse_lenient(text=text) is None


def test_lenient_parser_reads_an_empty_array() -> None:
    assert hgbench_parse_lenient(text="```json\n[]\n```") == []


# --------------------------------------------------------------------------------------------
# Files and the command line


def test_samples_load_reads_the_object_and_the_list_form() -> None:
    assert samples_load(data='{"a": []}') == {"a": []}
    assert samples_load(data='[{"id": 7, "boxes": "[]"}]') == {"7": "[]"}
    with pytest.raises(ValueError, match="id '7' appears twice"):
        samples_load(data='[{"id": 7, "boxes": []}, {"id": "7", "boxes": []}]')


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """Sample a: 1 of 2 boxes found (F1 2/3). Sample b: a fenced raw reply with its 1 box (F1 1)."""
    gold, pred = tmp_path / "gold.json", tmp_path / "pred.json"
    gold.write_text(json.dumps({"a": [_item(A), _item(B)], "b": [_item(A)]}))
    reply = "Here you go:\n```json\n" + json.dumps([_item(A)]) + "\n```"
    pred.write_text(json.dumps([{"id": "a", "boxes": [_item(A)]}, {"id": "b", "boxes": reply}]))
    return gold, pred


def test_cli_prints_the_scores_times_one_hundred(files: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    main(["--gold", str(files[0]), "--pred", str(files[1])])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("F_A             83.33")
    assert lines[1].startswith("F_S micro      n/a")
    assert lines[3].startswith("parse success  100.00  2 of 2 samples")
    assert lines[4].startswith("composite       83.33")


def test_cli_json_output_holds_fractions_and_counts(files: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    main(["--gold", str(files[0]), "--pred", str(files[1]), "--json"])
    scores = json.loads(capsys.readouterr().out)
    assert scores["answer_f1"] == pytest.approx(5 / 6)
    assert scores["step_f1_micro"] is None
    assert (scores["samples"], scores["parsed"], scores["answer_fn"]) == (2, 2, 1)


def test_cli_runs_as_a_module(files: tuple[Path, Path]) -> None:
    result = subprocess.run([sys.executable, "-m", "ml.grounding_eval", "--gold", str(files[0]),
                             "--pred", str(files[1])], cwd=REPO, capture_output=True, text=True, check=True)
    assert "F_A             83.33" in result.stdout


def test_cli_rejects_an_unreadable_prediction_file(files: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    files[1].write_text("{not json")
    with pytest.raises(SystemExit) as caught:
        main(["--gold", str(files[0]), "--pred", str(files[1])])
    assert caught.value.code == 2
    assert "pred file" in capsys.readouterr().err
