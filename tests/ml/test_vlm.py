"""The VLM engine: coordinates, prompt, lenient parsing, retry orchestration, and a tiny real Qwen2.5-VL.

There are no real Qwen2.5-VL weights here: the model tests build a tiny random one (``vlm_tiny``) and
load it through the same ``from_pretrained(..., local_files_only=True)`` path as production.
"""

from __future__ import annotations

from dataclasses import replace

import json

import pytest
import torch
from PIL import Image, ImageDraw

from ml.recognition.base import Reading, Region
from ml.recognition.vlm import (
    DEFAULT_MAX_PIXELS,
    HfGenerator,
    VlmConfig,
    VlmOutput,
    VlmPrompt,
    VlmRecognizer,
    _smart_resize_fallback,
    bbox_to_model_frame,
    model_input_size,
    output_decode,
    prompt_build,
    readings_parse,
    readings_parse_spans,
    span_confidence,
)
from ml.recognition.vlm_tiny import tiny_adapter_build, tiny_model_build, tiny_model_teach

A4 = (1240, 1754)
# Test pages are small and the model sees them at most 16 visual tokens (448 px on a side at most).
TINY_PIXELS = 28 * 28 * 16


# --------------------------------------------------------------------------------------------------
# Coordinates


def test_model_input_size_keeps_an_a4_page_at_150_dpi_native():
    assert model_input_size(page_size=A4) == (1232, 1764)
    assert DEFAULT_MAX_PIXELS >= 1232 * 1764


def test_model_input_size_scales_down_above_max_and_up_below_min():
    assert model_input_size(page_size=A4, max_pixels=28 * 28 * 1280) == (840, 1176)
    assert model_input_size(page_size=(20, 30), min_pixels=3136) == (56, 84)


@pytest.mark.parametrize("size", [(1240, 1754), (1754, 1240), (333, 5000), (50, 60), (2480, 3508)])
def test_model_input_size_is_transformers_smart_resize(size):
    width, height = model_input_size(page_size=size, min_pixels=3136, max_pixels=1003520)
    assert (height, width) == _smart_resize_fallback(size[1], size[0], 28, 3136, 1003520)
    assert width % 28 == 0 and height % 28 == 0


def test_bbox_to_model_frame_exact_values():
    frame = {"page_size": A4, "resized_size": (1232, 1764)}
    # 100*1232/1240 = 99.35, 200*1764/1754 = 201.14, 620*1232/1240 = 616, 877*1764/1754 = 882.
    assert bbox_to_model_frame(bbox=(100, 200, 620, 877), **frame) == (99, 201, 616, 882)
    assert bbox_to_model_frame(bbox=(0, 0, 1240, 1754), **frame) == (0, 0, 1232, 1764)
    # Halving: 5 -> 2.5 rounds up to 3 (not to even), 7 -> 3.5 -> 4.
    assert bbox_to_model_frame(bbox=[5, 7, 9, 11], page_size=(200, 100), resized_size=(100, 50)) == (3, 4, 5, 6)


def test_bbox_to_model_frame_clamps_and_keeps_a_pixel():
    frame = {"page_size": (200, 100), "resized_size": (100, 50)}
    assert bbox_to_model_frame(bbox=(-40, -10, 260, 130), **frame) == (0, 0, 100, 50)
    assert bbox_to_model_frame(bbox=(10, 10, 11, 11), **frame) == (5, 5, 6, 6)
    assert bbox_to_model_frame(bbox=(198, 99, 200, 100), **frame) == (99, 49, 100, 50)
    assert bbox_to_model_frame(bbox=(300, 200, 400, 300), **frame) == (99, 49, 100, 50)


# --------------------------------------------------------------------------------------------------
# Prompt

REGIONS = [Region(index=56, bbox=(166, 69, 495, 146)), Region(index=57, bbox=(588, 69, 919, 145))]


def test_prompt_lists_every_region_with_its_box_in_the_english_variant():
    prompt = prompt_build(regions=REGIONS, lang="en")
    assert prompt.startswith("Extract content sequentially from the answer sheet area in the image")
    assert '[{"index": 56, "bbox": [166, 69, 495, 146]}, {"index": 57, "bbox": [588, 69, 919, 145]}]' in prompt
    assert "handwritten in English" in prompt
    assert prompt.endswith("Return only JSON:")
    assert "JSON array only" not in prompt


def test_prompt_chinese_variant_and_reminder():
    prompt = prompt_build(regions=REGIONS, lang="ch", reminder=True)
    assert prompt.startswith("按顺序提取图片中答题卡区域的内容")
    assert '{"index": 57, "bbox": [588, 69, 919, 145]}' in prompt
    assert "中文手写" in prompt and "只输出JSON数组" in prompt and prompt.endswith("只返回JSON：")
    assert "JSON array only" in prompt_build(regions=REGIONS, lang="en", reminder=True)
    with pytest.raises(ValueError):
        prompt_build(regions=REGIONS, lang="fr")


# --------------------------------------------------------------------------------------------------
# Parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"index": 1, "text": "cat"}, {"index": 2, "text": ""}]', [(1, "cat"), (2, "")]),
        ('```json\n[{"index": 1, "text": "cat"}]\n```', [(1, "cat")]),
        ('Sure! Here is the result:\n[{"index": 1, "text": "cat"}]\nHope this helps [really].', [(1, "cat")]),
        ("Regions [see above]: [{'index': 1, 'text': 'cat'}]", [(1, "cat")]),
        ("[{'index': 1, 'text': 'don't'}, {'index': 2, 'text': 'it's \"ok\"'}]", [(1, "don't"), (2, 'it\'s "ok"')]),
        ('[{"index": 1, "text": "cat",}, {"index": 2, "text": "dog"},]', [(1, "cat"), (2, "dog")]),
        ('[{"index": 1, "text": "cat"}, {"index": 2, "text": "do', [(1, "cat")]),
        ('[{"index": 1, "text": "cat"}, {"index": 2, "te', [(1, "cat")]),
        ('[{"index": 1, "text": "cat"}, {"index": 2', [(1, "cat")]),
        (
            '[{"index": "3", "text": "x"}, {"index": 4.0, "text": 12}, {"index": "#5", "text": null}]',
            [(3, "x"), (4, "12"), (5, "")],
        ),
        ('[{"index": 1, "text": "first"}, {"index": 1, "text": "2nd"}, {"index": "1", "text": "3rd"}]', [(1, "first")]),
        ('[{"index": 1, "text": "  spaced  "}, {index: 2, text: "bare keys"}]', [(1, "spaced"), (2, "bare keys")]),
        ('[{"index": 1, "text": "a\\nb \\u4e2d \\"q\\""}]', [(1, 'a\nb 中 "q"')]),
        ("[{“index”: 1, “text”: “curly”}]", [(1, "curly")]),
        ('[{"index": 1, "text": "cat"}, {"index": 2, "text": oops}, {"index": 3, "text": "x"}]', [(1, "cat"), (3, "x")]),
        ('[{"index": 1}, {"text": "no index"}, {"index": true, "text": "x"}, {"index": 2, "text": ["x"]}, "s"]', None),
        ('[{"index": 1, "content": "alias"}, {"index": 2, "answer": "too"}]', [(1, "alias"), (2, "too")]),
        ('{"results": [{"index": 1, "text": "wrapped"}]}', [(1, "wrapped")]),
        ('[{"index": 1, "text": "答案"}, {"index": 2, "text": "床前明月光"}]', [(1, "答案"), (2, "床前明月光")]),
        ("[]", []),
        ("```json\n[]\n```", []),
        ('{"index": 1, "text": "a lone object"}', None),
        ('"just a string"', None),
        ("42", None),
        ("", None),
        ("I cannot read this page.", None),
        ('[{"index": 1, "bbox": [1, 2, 3, 4]}]', None),
    ],
)
def test_readings_parse(text, expected):
    parsed = readings_parse(text=text)
    if expected is None:
        assert parsed is None
    else:
        assert parsed == [{"index": index, "text": value} for index, value in expected]


def test_readings_parse_spans_point_at_the_text():
    text = '[{"index": 1, "text": " cat "}, {"index": 2, "text": ""}, {"index": 3, "text": 7}]'
    spans = {reading.index: text[slice(*reading.span)] for reading in readings_parse_spans(text=text)}
    assert spans == {1: "cat", 2: '""', 3: "7"}


def test_span_confidence_is_the_mean_probability_of_the_overlapping_tokens():
    #        '[{"index": 1, "text": "' | 'c' | 'at' | '"}]'
    text = '[{"index": 1, "text": "cat"}]'
    output = VlmOutput(text=text, token_ends=(23, 24, 26, 29), token_probs=(0.9, 0.5, 0.7, 0.8))
    (reading,) = readings_parse_spans(text=text)
    assert reading.span == (23, 26)
    assert span_confidence(span=reading.span, output=output) == pytest.approx(0.6)
    assert span_confidence(span=reading.span, output=VlmOutput(text=text)) is None


# --------------------------------------------------------------------------------------------------
# Orchestration, with an injected generate function


class FakeGenerate:
    """Answers each prompt with the next scripted answer; records the prompts."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[list[VlmPrompt]] = []

    def __call__(self, prompts):
        self.calls.append(list(prompts))
        return [self.answers.pop(0) for _ in prompts]


PAGE = Image.new("RGB", A4, "white")
PAGE_REGIONS = [Region(index=1, bbox=(100, 200, 620, 877)), Region(index=2, bbox=(0, 0, 1240, 1754))]


def fake_recognizer(*answers, **config) -> tuple[VlmRecognizer, FakeGenerate]:
    fake = FakeGenerate(*answers)
    return VlmRecognizer(VlmConfig(model_path="unused", **config), generate=fake), fake


def test_garbage_then_valid_json_makes_one_retry():
    recognizer, fake = fake_recognizer("I see a page.", '[{"index": 2, "text": "b"}, {"index": 1, "text": "a"}]')
    readings = recognizer.read_page(page=PAGE, regions=PAGE_REGIONS, lang="en")
    assert readings == [
        Reading(index=1, text="a", confidence=None, engine="vlm"),
        Reading(index=2, text="b", confidence=None, engine="vlm"),
    ]
    assert recognizer.generate_calls == 2 and recognizer.last_attempts == (2,)
    first, retry = fake.calls[0][0], fake.calls[1][0]
    assert first.size == (1232, 1764) and first.image.size == (1232, 1764)
    assert '{"index": 1, "bbox": [99, 201, 616, 882]}, {"index": 2, "bbox": [0, 0, 1232, 1764]}' in first.text
    assert "JSON array only" not in first.text and "JSON array only" in retry.text
    assert retry.image is first.image


def test_the_retry_asks_only_for_the_missing_regions():
    recognizer, fake = fake_recognizer(
        '[{"index": 1, "text": "a"}, {"index": 9, "text": "not asked"}]',
        '[{"index": 2, "text": ""}, {"index": 1, "text": "late"}]',
    )
    readings = recognizer.read_page(page=PAGE, regions=PAGE_REGIONS)
    assert [(reading.index, reading.text) for reading in readings] == [(1, "a"), (2, "")]
    retry = fake.calls[1][0].text
    assert '"index": 2' in retry and '"index": 1' not in retry


def test_regions_still_missing_after_the_retry_are_unread():
    recognizer, fake = fake_recognizer("garbage", '[{"index": 1, "text": "a"}')
    readings = recognizer.read_page(page=PAGE, regions=PAGE_REGIONS)
    assert readings == [
        Reading(index=1, text="a", confidence=None, engine="vlm"),
        Reading(index=2, text=None, confidence=None, engine="vlm"),
    ]
    assert len(fake.calls) == 2 and recognizer.last_attempts == (2,)


def test_no_retry_when_everything_was_read_or_retries_is_zero():
    recognizer, fake = fake_recognizer('[{"index": 1, "text": "a"}, {"index": 2, "text": "b"}]')
    recognizer.read_page(page=PAGE, regions=PAGE_REGIONS)
    assert len(fake.calls) == 1
    recognizer, fake = fake_recognizer("garbage", retries=0)
    assert [reading.text for reading in recognizer.read_page(page=PAGE, regions=PAGE_REGIONS)] == [None, None]
    assert len(fake.calls) == 1


def test_pages_are_batched_and_a_page_without_regions_costs_nothing():
    recognizer, fake = fake_recognizer(
        '[{"index": 1, "text": "p1"}]', "nothing", "[]", '[{"index": 7, "text": "p2"}]', "[]", batch_size=2
    )
    small = Image.new("L", (300, 200), "white")
    results = recognizer.read_pages(
        pages=[(PAGE, PAGE_REGIONS[:1]), (small, [Region(index=7, bbox=(10, 10, 100, 50))]), (PAGE, []), (PAGE, [])]
        + [(small, [Region(index=8, bbox=(0, 0, 10, 10))])],
        lang="ch",
    )
    assert [[(reading.index, reading.text) for reading in page] for page in results] == [
        [(1, "p1")], [(7, "p2")], [], [], [(8, None)]
    ]
    # Attempt 1: pages 1 and 2 in one call, page 5 in a second (batch_size 2); retry: pages 2 and 5.
    assert [len(call) for call in fake.calls] == [2, 1, 2]
    assert recognizer.last_attempts == (1, 2, 0, 0, 2)
    assert fake.calls[0][1].image.mode == "RGB" and fake.calls[0][1].size == (308, 196)
    assert all(prompt.text.startswith("按顺序提取") for call in fake.calls for prompt in call)


def test_repeated_indices_are_asked_once_and_read_into_every_copy():
    regions = [Region(index=3, bbox=(0, 0, 10, 10)), Region(index=3, bbox=(20, 20, 40, 40))]
    recognizer, fake = fake_recognizer('[{"index": 3, "text": "x"}]')
    assert [reading.text for reading in recognizer.read_page(page=PAGE, regions=regions)] == ["x", "x"]
    assert fake.calls[0][0].text.count('"index": 3') == 1


def test_a_token_ends_where_its_text_does_and_inside_a_character_where_the_character_does():
    from ml.recognition.vlm_tiny import tiny_tokenizer_build

    tokenizer = tiny_tokenizer_build()
    ids = tokenizer("ok ü", add_special_tokens=False)["input_ids"]  # "ü" is two byte tokens here
    assert [tokenizer.decode([token]) for token in ids[-2:]] == ["\ufffd", "\ufffd"]

    output = output_decode(tokenizer=tokenizer, ids=ids, probs=[0.5] * len(ids))

    assert output.text == "ok ü" and output.token_ends == (1, 2, 3, 3, 4)
    answer = '[{"index": 56, "text": "the electrons in metals can move freely"}]' * 10
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ends = output_decode(tokenizer=tokenizer, ids=ids, probs=[0.5] * len(ids)).token_ends
    assert ends == tuple(len(tokenizer.decode(ids[: count + 1])) for count in range(len(ids)))


def test_confidence_comes_from_the_generated_token_probabilities():
    pieces = ['[{"index": 1, "text": "', "c", "at", '"}, {"index": 2, "text": ', '""', "}]"]
    ends = tuple(len("".join(pieces[: count + 1])) for count in range(len(pieces)))
    output = VlmOutput(text="".join(pieces), token_ends=ends, token_probs=(0.9, 0.5, 0.7, 0.8, 0.4, 1.0))
    recognizer, _ = fake_recognizer(output)
    one, two = recognizer.read_page(page=PAGE, regions=PAGE_REGIONS)
    assert one.confidence == pytest.approx(0.6) and two.confidence == pytest.approx(0.4)


def test_lang_is_checked():
    recognizer, _ = fake_recognizer()
    with pytest.raises(ValueError):
        recognizer.read_page(page=PAGE, regions=PAGE_REGIONS, lang="de")


# --------------------------------------------------------------------------------------------------
# The tiny real model


def tiny_page() -> Image.Image:
    page = Image.new("RGB", (400, 560), "white")
    ImageDraw.Draw(page).text((30, 40), "ok", fill="black")
    return page


TINY_REGIONS = [Region(index=1, bbox=(10, 10, 200, 100)), Region(index=2, bbox=(10, 150, 390, 300))]
TAUGHT_ANSWER = '[{"index": 1, "text": "ok"}, {"index": 2, "text": ""}]'


def tiny_config(model_path, **overrides) -> VlmConfig:
    return VlmConfig(**{"model_path": str(model_path), "max_pixels": TINY_PIXELS, "max_new_tokens": 16, **overrides})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Model directories: a random base, a LoRA adapter for it, and a base taught ``TAUGHT_ANSWER``."""
    root = tmp_path_factory.mktemp("vlm")
    base = tiny_model_build(root / "base")
    adapter = tiny_adapter_build(model_path=base, path=root / "adapter")
    taught = tiny_model_build(root / "taught")
    page = tiny_page()
    size = model_input_size(page_size=page.size, max_pixels=TINY_PIXELS)
    framed = [
        Region(index=region.index, bbox=bbox_to_model_frame(bbox=region.bbox, page_size=page.size, resized_size=size))
        for region in TINY_REGIONS
    ]
    example = (page.resize(size, Image.Resampling.BICUBIC), prompt_build(regions=framed, lang="en"), TAUGHT_ANSWER)
    tiny_model_teach(model_path=taught, examples=[example])
    return {"base": base, "adapter": adapter, "taught": taught, "root": root}


@pytest.fixture(scope="module")
def base_recognizer(tiny) -> VlmRecognizer:
    recognizer = VlmRecognizer(tiny_config(tiny["base"]))
    recognizer.load()
    return recognizer


def test_the_model_loads_from_its_directory(base_recognizer):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    generator = base_recognizer.load()
    assert isinstance(generator, HfGenerator)
    assert base_recognizer.load() is generator  # loaded once
    assert type(generator.model) is Qwen2_5_VLForConditionalGeneration
    assert isinstance(generator.processor, Qwen2_5_VLProcessor)
    assert generator.model.dtype == (torch.float32 if generator.device == "cpu" else torch.bfloat16)
    assert generator.factor == 28 and generator.processor.tokenizer.padding_side == "left"
    assert generator.processor.image_processor.size["longest_edge"] == TINY_PIXELS


def test_random_model_answers_garbage_so_regions_are_unread_after_one_retry(base_recognizer):
    calls = base_recognizer.generate_calls
    readings = base_recognizer.read_page(page=tiny_page(), regions=TINY_REGIONS)
    assert readings == [Reading(index=index, text=None, confidence=None, engine="vlm") for index in (1, 2)]
    assert base_recognizer.last_attempts == (2,) and base_recognizer.generate_calls == calls + 2


def test_several_pages_of_different_sizes_share_one_generate_call(base_recognizer):
    calls = base_recognizer.generate_calls
    pages = [(tiny_page(), TINY_REGIONS), (Image.new("L", (300, 300), "white"), TINY_REGIONS[:1])]
    results = base_recognizer.read_pages(pages=pages, lang="ch")
    assert [len(readings) for readings in results] == [2, 1]
    assert base_recognizer.last_attempts == (2, 2) and base_recognizer.generate_calls == calls + 2


def test_generator_reports_token_probabilities_and_checks_the_resize(base_recognizer):
    generator = base_recognizer.load()
    image = Image.new("RGB", (84, 112), "white")
    (output,) = generator([VlmPrompt(image=image, text="hello", size=(84, 112))])
    assert 0 < len(output.token_probs) == len(output.token_ends) <= 16
    assert all(0.0 < prob <= 1.0 for prob in output.token_probs)
    assert list(output.token_ends) == sorted(output.token_ends) and output.token_ends[-1] == len(output.text)
    with pytest.raises(RuntimeError, match="resized"):
        generator([VlmPrompt(image=Image.new("RGB", (448, 448)), text="hello", size=(448, 448))])


def test_a_model_that_answers_well_is_read_end_to_end(tiny):
    recognizer = VlmRecognizer(tiny_config(tiny["taught"], max_new_tokens=32, device="cpu"))
    readings = recognizer.read_page(page=tiny_page(), regions=TINY_REGIONS)
    assert [(reading.index, reading.text) for reading in readings] == [(1, "ok"), (2, "")]
    assert all(0.5 < reading.confidence <= 1.0 for reading in readings)
    assert recognizer.last_attempts == (1,) and recognizer.generate_calls == 1


def test_greedy_token_probabilities_equal_those_of_the_full_logits_without_keeping_them(tiny):
    generator = VlmRecognizer(tiny_config(tiny["taught"], max_new_tokens=32, device="cpu")).load()
    page = tiny_page()
    size = model_input_size(page_size=page.size, max_pixels=TINY_PIXELS)
    prompt = VlmPrompt(image=page.resize(size, Image.Resampling.BICUBIC), text="read this", size=size)
    kept = []
    generate = generator.model.generate
    generator.model.generate = lambda **kwargs: kept.append(kwargs.get("output_logits")) or generate(**kwargs)

    (fast,) = generator([prompt])
    generator.config = replace(generator.config, do_sample=True, temperature=1e-6, top_p=1.0)
    (full,) = generator([prompt])

    assert kept == [False, True]
    assert fast.text == full.text and len(fast.token_probs) == len(full.token_probs) > 0
    assert fast.token_probs == pytest.approx(full.token_probs, abs=1e-4)


def test_batching_pads_on_the_left_without_changing_an_answer(tiny):
    recognizer = VlmRecognizer(tiny_config(tiny["taught"], max_new_tokens=32, device="cpu"))
    # A bigger page with more regions makes the longer prompt, so the taught page is padded.
    bigger = (Image.new("RGB", (448, 448), "white"), [Region(index=n, bbox=(n, n, 100 + n, 100 + n)) for n in range(5)])
    results = recognizer.read_pages(pages=[bigger, (tiny_page(), TINY_REGIONS)])
    assert [(reading.index, reading.text) for reading in results[1]] == [(1, "ok"), (2, "")]
    assert recognizer.last_attempts == (2, 1) and recognizer.generate_calls == 2


def test_bfloat16_loads_and_generates(tiny):
    generator = VlmRecognizer(tiny_config(tiny["base"], dtype="bfloat16", max_new_tokens=4)).load()
    assert generator.model.dtype == torch.bfloat16
    (output,) = generator([VlmPrompt(image=Image.new("RGB", (84, 112), "white"), text="hello", size=(84, 112))])
    assert len(output.token_probs) == 4


def _logits(model, processor) -> torch.Tensor:
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": json.dumps(TAUGHT_ANSWER)}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = processor(text=[text], images=[Image.new("RGB", (84, 112), "gray")], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def test_adapter_loads_and_merging_gives_the_same_model(tiny):
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ml.vlm_merge import main

    adapted = VlmRecognizer(tiny_config(tiny["base"], adapter_path=str(tiny["adapter"]), device="cpu")).load()
    assert isinstance(adapted.model, PeftModel)
    processor = adapted.processor
    with_adapter = _logits(adapted.model, processor)
    base = _logits(Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny["base"], local_files_only=True), processor)
    assert not torch.allclose(with_adapter, base, atol=1e-3)

    out = tiny["root"] / "merged"
    assert main(["--model", str(tiny["base"]), "--adapter", str(tiny["adapter"]), "--out", str(out)]) == 0
    merged = VlmRecognizer(tiny_config(out, device="cpu")).load()
    assert type(merged.model) is Qwen2_5_VLForConditionalGeneration
    assert not any("lora" in name for name, _ in merged.model.named_parameters())
    torch.testing.assert_close(_logits(merged.model, merged.processor), with_adapter, atol=1e-5, rtol=1e-4)
    assert main(["--model", str(tiny["base"]), "--adapter", str(tiny["adapter"]), "--out", str(out)]) == 2


def test_candidates_are_scored_by_how_likely_the_model_finds_them_as_its_reading(tmp_path):
    model = tiny_model_build(tmp_path / "names")
    page = tiny_page()
    region = Region(index=1, bbox=(10, 10, 200, 100))
    size = model_input_size(page_size=page.size, max_pixels=TINY_PIXELS)
    framed = Region(index=1, bbox=bbox_to_model_frame(bbox=region.bbox, page_size=page.size, resized_size=size))
    taught = '[{"index": 1, "text": "Wei Tanaka"}]'
    tiny_model_teach(model_path=model, examples=[(page.resize(size, Image.Resampling.BICUBIC),
                                                  prompt_build(regions=[framed], lang="en"), taught)])
    recognizer = VlmRecognizer(tiny_config(model, device="cpu"))

    scores = recognizer.candidates_score(page=page, region=region, candidates=["Noah Chen", "Wei Tanaka", "Mei Chen"])
    one_by_one = [recognizer.load().answers_score(
        VlmPrompt(image=page.resize(size, Image.Resampling.BICUBIC), text=prompt_build(regions=[framed]), size=size),
        [f'[{{"index": 1, "text": "{name}"}}]'], batch_size=1)[0] for name in ("Noah Chen", "Wei Tanaka")]

    assert max(range(3), key=scores.__getitem__) == 1
    assert all(score < 0 for score in scores)
    assert scores[:2] == pytest.approx(one_by_one, abs=1e-3)  # left padding in a batch changes nothing


def test_an_answer_scores_what_the_whole_conversation_gives_its_tokens_in_one_pass(tiny):
    generator = VlmRecognizer(tiny_config(tiny["taught"], device="cpu")).load()
    page = tiny_page()
    size = model_input_size(page_size=page.size, max_pixels=TINY_PIXELS)
    prompt = VlmPrompt(image=page.resize(size, Image.Resampling.BICUBIC), text="read this", size=size)
    answers = [TAUGHT_ANSWER, '[{"index": 1, "text": "no"}]', "x"]
    processor, tokenizer = generator.processor, generator.processor.tokenizer
    prefix = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt.text}]}],
        tokenize=False, add_generation_prompt=True,
    )
    whole = []
    for answer in answers:
        inputs = processor(text=[prefix + answer], images=[prompt.image], return_tensors="pt")
        length = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            log_probs = torch.log_softmax(generator.model(**inputs).logits[0, :-1].float(), dim=-1)
        targets = inputs["input_ids"][0, 1:]
        whole.append(float(log_probs.gather(1, targets.unsqueeze(-1))[-length:].sum()))

    scores = generator.answers_score(prompt, answers, batch_size=2)

    assert scores == pytest.approx(whole, abs=1e-3)
    assert scores[0] > scores[1]  # the taught answer is the likelier
    assert generator.answers_score(prompt, []) == []


def test_a_static_kv_cache_reads_exactly_what_the_dynamic_one_reads(tiny):
    dynamic = VlmRecognizer(tiny_config(tiny["taught"], max_new_tokens=32, device="cpu")).load()
    static = HfGenerator(tiny_config(tiny["taught"], max_new_tokens=32, device="cpu", static_cache=True))
    page = tiny_page()
    size = model_input_size(page_size=page.size, max_pixels=TINY_PIXELS)
    prompts = [VlmPrompt(image=page.resize(size, Image.Resampling.BICUBIC), text=text, size=size)
               for text in (prompt_build(regions=[Region(index=1, bbox=(5, 5, 50, 50))]), "read this")]

    expected, got = dynamic(prompts), static(prompts)

    assert [output.text for output in got] == [output.text for output in expected]
    for fast, slow in zip(got, expected, strict=True):
        assert fast.token_probs == pytest.approx(slow.token_probs, abs=1e-4)
    answers = [TAUGHT_ANSWER, "no"]  # the page is read left-padded to the bucket for scoring too
    assert static.answers_score(prompts[1], answers) == pytest.approx(dynamic.answers_score(prompts[1], answers),
                                                                      abs=1e-3)
    assert static._generate_kwargs()["cache_implementation"] == "static"
    assert static._generate_kwargs()["disable_compile"] and "cache_implementation" not in dynamic._generate_kwargs()


def test_compiling_needs_a_static_cache_and_the_back_end_must_be_known():
    with pytest.raises(ValueError, match="compile needs static_cache"):
        VlmConfig(model_path="m", compile=True)
    with pytest.raises(ValueError, match="backend must be one of"):
        VlmConfig(model_path="m", backend="onnx")
    assert VlmConfig(model_path="m", static_cache=True, compile=True).backend == "transformers"


def test_a_generate_function_without_scoring_cannot_score_candidates():
    recognizer = VlmRecognizer(VlmConfig(model_path="unused"), generate=lambda prompts: [])

    with pytest.raises(TypeError, match="cannot score"):
        recognizer.candidates_score(page=tiny_page(), region=Region(index=1, bbox=(0, 0, 10, 10)), candidates=["a"])
