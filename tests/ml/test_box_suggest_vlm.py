"""A VLM suggests answer boxes HG-Bench style: its reply is read by the evaluator's rules and pooled over scripts."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ml.box_suggest_vlm import (
    RETRY_REMINDER,
    ReplyBox,
    VlmBox,
    VlmBoxConfig,
    boxes_pool,
    boxes_suggest_vlm,
    hf_box_generate,
    prompt_build,
    reply_boxes,
)

PAGES = [(1240, 1754), (1240, 1754)]


def _reply(items: list[dict]) -> str:
    return "```json\n" + json.dumps(items) + "\n```"


def test_the_prompt_asks_for_hg_bench_boxes_on_the_0_1000_grid_with_pages_and_steps() -> None:
    text = prompt_build(pages=3)
    for phrase in ("complete_answer_box", "0-1000", '"page"', "step_id", "box_2d", "This sheet has 3 page(s)."):
        assert phrase in text


def test_a_reply_becomes_template_pixels_of_its_page() -> None:
    reply = _reply([
        {"page": 1, "type": "complete_answer_box", "box_2d": [100, 100, 500, 200]},
        {"page": 2, "type": "complete_answer_box", "box_2d": [0, 500, 1000, 1000],
         "steps": [{"step_id": 1, "box_2d": [0, 500, 500, 600]}, {"step_id": 2, "box_2d": [500, 601, 999, 700]}]},
    ])
    # x * 1240 / 1000, y * 1754 / 1000, rounded outwards; steps stay with their question box, in order.
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {
        0: [ReplyBox(bbox=(124, 175, 620, 351))],
        1: [ReplyBox(bbox=(0, 877, 1240, 1754), steps=((0, 877, 620, 1053), (620, 1054, 1239, 1228)))],
    }


def test_steps_are_clipped_to_their_question_box_and_go_with_a_dropped_one() -> None:
    reply = _reply([
        {"page": 1, "type": "complete_answer_box", "box_2d": [100, 100, 500, 200], "steps": [
            {"step_id": 1, "box_2d": [50, 120, 300, 180]},  # overhangs on the left: clipped
            {"step_id": 2, "box_2d": [600, 120, 700, 180]},  # outside the box: nothing left
            {"step_id": 3, "box_2d": [300, 150, 300, 190]},  # no area: dropped by the evaluator too
            {"step_id": 4, "box_2d": [300, 120, 480, 190]}]},
        {"page": 2, "type": "complete_answer_box", "box_2d": [300, 300, 300, 400],  # no area
         "steps": [{"step_id": 1, "box_2d": [300, 300, 400, 400]}]},
    ])
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {
        0: [ReplyBox(bbox=(124, 175, 620, 351), steps=((124, 210, 372, 316), (372, 210, 596, 334)))],
    }


def test_a_reply_is_read_by_the_evaluators_rules() -> None:
    reply = _reply([
        {"type": "complete_answer_box", "box_2d": [100, 100, 500, 200]},  # no page: page 1
        {"page": 3, "type": "complete_answer_box", "box_2d": [100, 100, 500, 200]},  # not sent: dropped
        {"page": 1, "type": "answer", "box_2d": [600, 600, 700, 700]},  # another type: dropped
        {"page": 2, "type": "complete_answer_box", "box_2d": [300, 300, 300, 400]},  # no area: dropped
    ])
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {0: [ReplyBox(bbox=(124, 175, 620, 351))]}


@pytest.mark.parametrize("reply", ["", "I cannot see any answers.", "FAIL_STR", '{"page": 1}', "[1, 2]"])
def test_a_reply_without_boxes_suggests_nothing(reply: str) -> None:
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {}


def test_boxes_of_several_scripts_pool_into_their_enclosing_box_scored_by_how_many_gave_them() -> None:
    first = {0: [ReplyBox(bbox=(100, 100, 300, 200)), ReplyBox(bbox=(100, 400, 300, 500))]}
    second = {0: [ReplyBox(bbox=(110, 105, 310, 205))], 1: [ReplyBox(bbox=(50, 50, 100, 100))]}
    assert boxes_pool(replies=[first, second]) == [
        VlmBox(page=0, bbox=(100, 100, 310, 205), score=1.0),
        VlmBox(page=0, bbox=(100, 400, 300, 500), score=0.5),
        VlmBox(page=1, bbox=(50, 50, 100, 100), score=0.5),
    ]


def test_the_steps_of_a_pooled_box_pool_the_same_way_ordered_by_their_mean_step_number() -> None:
    first = {0: [ReplyBox(bbox=(100, 100, 400, 300), steps=((100, 100, 200, 300), (300, 100, 400, 300)))]}
    # The same answer in three steps: its first matches the first's first, its third the first's second,
    # and its second, between them, is new.
    second = {0: [ReplyBox(bbox=(90, 100, 400, 310),
                           steps=((90, 100, 190, 310), (200, 100, 300, 310), (310, 100, 400, 310)))]}
    third = {0: [ReplyBox(bbox=(100, 600, 400, 700), steps=((100, 600, 400, 650),))]}
    assert boxes_pool(replies=[first, second, third]) == [
        VlmBox(page=0, bbox=(90, 100, 400, 310), score=2 / 3,
               steps=((90, 100, 200, 310), (200, 100, 300, 310), (300, 100, 400, 310))),
        VlmBox(page=0, bbox=(100, 600, 400, 700), score=1 / 3, steps=((100, 600, 400, 650),)),
    ]


def test_pooled_steps_lie_within_their_pooled_box() -> None:
    replies = [
        {0: [ReplyBox(bbox=(100 + shift, 100, 500 + shift, 300),
                      steps=tuple((100 + shift, 100 + 40 * n, 500 + shift, 140 + 40 * n) for n in range(3)))]}
        for shift in (0, 30, -25, 60)
    ]
    (pooled,) = boxes_pool(replies=replies)
    assert pooled.bbox == (75, 100, 560, 300) and len(pooled.steps) == 3
    assert all(pooled.bbox[0] <= x1 < x2 <= pooled.bbox[2] and pooled.bbox[1] <= y1 < y2 <= pooled.bbox[3]
               for x1, y1, x2, y2 in pooled.steps)
    assert [step[1] for step in pooled.steps] == [100, 140, 180]


def test_each_script_is_one_call_with_all_its_pages() -> None:
    calls = []

    def generate(pages, text):
        calls.append((len(pages), text))
        return _reply([{"page": 2, "type": "complete_answer_box", "box_2d": [100, 100, 200, 200]}])

    scripts = [[Image.new("RGB", size, "white") for size in PAGES] for _ in range(3)]
    found = boxes_suggest_vlm(scripts=scripts, generate=generate, config=VlmBoxConfig(scripts=2))
    assert calls == [(2, prompt_build(pages=2))] * 2
    assert found == [VlmBox(page=1, bbox=(124, 175, 248, 351), score=1.0)]


@pytest.mark.parametrize(("first", "asked"), [("Sorry, I cannot.", 2), ("[]", 1), ('[{"page": 1}]', 1)])
def test_a_reply_without_a_json_list_is_asked_for_once_more_with_a_reminder(first: str, asked: int) -> None:
    prompts = []
    answers = iter([first, _reply([{"page": 1, "type": "complete_answer_box", "box_2d": [0, 0, 500, 500]}])])

    def generate(pages, text):
        prompts.append(text)
        return next(answers)

    found = boxes_suggest_vlm(scripts=[[Image.new("RGB", (1000, 1000), "white")]], generate=generate)
    assert prompts == [prompt_build(pages=1), prompt_build(pages=1) + RETRY_REMINDER][:asked]
    assert found == ([VlmBox(page=0, bbox=(0, 0, 500, 500), score=1.0)] if asked == 2 else [])


def test_the_tiny_model_answers_a_two_page_prompt_and_its_reply_is_parsed(tmp_path) -> None:
    from ml.recognition.vlm import HfGenerator, VlmConfig
    from ml.recognition.vlm_tiny import tiny_model_build

    model = tiny_model_build(tmp_path / "tiny")
    generator = HfGenerator(VlmConfig(model_path=str(model), max_pixels=28 * 28 * 16, max_new_tokens=12,
                                      confidence=False))
    generate = hf_box_generate(generator)
    pages = [Image.new("RGB", (280, 396), "white"), Image.new("RGB", (280, 396), "white")]
    reply = generate(pages, prompt_build(pages=2))
    assert isinstance(reply, str)
    # A random model writes no HG-Bench list; the same reply read again gives the same (empty) boxes.
    assert reply_boxes(reply=reply, page_sizes=[page.size for page in pages]) == {}
    assert generate(pages, prompt_build(pages=2)) == reply
