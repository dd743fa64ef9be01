"""A VLM suggests answer boxes HG-Bench style: its reply is read by the evaluator's rules and pooled over scripts."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ml.box_suggest_vlm import (
    RETRY_REMINDER,
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
         "steps": [{"step_id": 1, "box_2d": [0, 500, 500, 600]}]},
    ])
    # x * 1240 / 1000, y * 1754 / 1000, rounded outwards.
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {0: [(124, 175, 620, 351)], 1: [(0, 877, 1240, 1754)]}


def test_a_reply_is_read_by_the_evaluators_rules() -> None:
    reply = _reply([
        {"type": "complete_answer_box", "box_2d": [100, 100, 500, 200]},  # no page: page 1
        {"page": 3, "type": "complete_answer_box", "box_2d": [100, 100, 500, 200]},  # not sent: dropped
        {"page": 1, "type": "answer", "box_2d": [600, 600, 700, 700]},  # another type: dropped
        {"page": 2, "type": "complete_answer_box", "box_2d": [300, 300, 300, 400]},  # no area: dropped
    ])
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {0: [(124, 175, 620, 351)]}


@pytest.mark.parametrize("reply", ["", "I cannot see any answers.", "FAIL_STR", '{"page": 1}', "[1, 2]"])
def test_a_reply_without_boxes_suggests_nothing(reply: str) -> None:
    assert reply_boxes(reply=reply, page_sizes=PAGES) == {}


def test_boxes_of_several_scripts_pool_into_their_enclosing_box_scored_by_how_many_gave_them() -> None:
    first = {0: [(100, 100, 300, 200), (100, 400, 300, 500)]}
    second = {0: [(110, 105, 310, 205)], 1: [(50, 50, 100, 100)]}
    assert boxes_pool(replies=[first, second]) == [
        VlmBox(page=0, bbox=(100, 100, 310, 205), score=1.0),
        VlmBox(page=0, bbox=(100, 400, 300, 500), score=0.5),
        VlmBox(page=1, bbox=(50, 50, 100, 100), score=0.5),
    ]


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
