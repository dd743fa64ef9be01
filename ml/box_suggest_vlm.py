"""Answer boxes suggested by a VLM (Qwen2.5-VL) from filled scripts, as HG-Bench asks a model for them (seed 004).

The pages of one script, each resampled into its template page's frame (``ml.alignment.scan_rectify``),
go into one user turn as images 1..n with HG-Bench's prompt shape: a JSON list of
``complete_answer_box`` items, one per answered question, each with ``page`` (1-based image number),
``box_2d`` ``[x1, y1, x2, y2]`` on the 0-1000 grid of that page and optional ordered ``steps``
(``{"step_id", "box_2d"}``). The reply is read by the evaluator's own rules (``ml.grounding_eval``:
``reply_parse`` and ``boxes_by_page``), so a box the model is credited for in the benchmark is the box
suggested here, and vice versa: pages that were not sent and zero-area boxes are dropped, and grid
boxes become template pixels of their page.

Each question box keeps its own steps, rounded outwards and clipped to it (a step box in the app lies
inside its question box); the steps of an item whose question box the evaluator drops (zero area, a
page not sent) go with it, as nothing is left to hold them.

Several scripts are asked (``VlmBoxConfig.scripts``); the question boxes they give for a page are
pooled greedily at IoU >= 0.5, each pool suggesting the box that encloses it (a template box must hold
every student's answer) with ``score`` = the fraction of asked scripts that gave it. The pooled box's
steps are the steps of its pool's boxes pooled the same way: taken script by script, each box's steps
in their order, a step joins the step pool whose enclosing box it overlaps most at IoU >= 0.5, else
starts one; each step pool gives its enclosing box, so it lies within the pooled question box. Steps
are ordered by their mean step number in the replies that gave them, then top to bottom, left to right.

Coordinates: results are ``(x1, y1, x2, y2)`` in template px (x2/y2 exclusive), 0-based template pages.
The model is called through ``BoxGenerateFn`` (images, prompt) -> reply text, so the orchestration
runs with any callable; ``hf_box_generate`` wraps a loaded ``ml.recognition.vlm.HfGenerator``.
Nothing here imports Django.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from PIL import Image

from ml.grounding_eval import boxes_by_page, pixel_iou, reply_array, reply_parse

Box = tuple[int, int, int, int]
BoxGenerateFn = Callable[[Sequence[Image.Image], str], str]
SOURCE = "vlm"
Member = TypeVar("Member")

PROMPT = """You are a careful annotator of students' handwritten homework and exam answers.
The images are the pages of one student's answer sheet: image 1 is page 1, image 2 is page 2, and so on.
Find every answer the student wrote and return two kinds of boxes, as [xmin, ymin, xmax, ymax] on a
0-1000 grid of the page (x = horizontal, y = vertical; multiply x by the page width and y by the page
height to get pixels):
1. complete_answer_box: the whole handwritten answer to one question.
2. steps: for answers in several steps or blanks, one box per step or blank, numbered step_id 1, 2, ...
   in the order written, each inside its complete_answer_box.
Box only the student's marks (handwriting, crossings-out, ticks, drawings), never the printed questions
or a teacher's marks. Boxes must hold the whole handwriting without cutting characters.
Reply with only a JSON list, one object per question in the order answered, each with "page" (the page
number, from 1), "type": "complete_answer_box", "box_2d" and, where there are steps, "steps":
[{"step_id": 1, "box_2d": [...]}, ...]. Example:
[{"page": 1, "type": "complete_answer_box", "box_2d": [100, 200, 180, 300]},
 {"page": 2, "type": "complete_answer_box", "box_2d": [400, 220, 490, 320], "steps": [
   {"step_id": 1, "box_2d": [410, 230, 440, 320]}, {"step_id": 2, "box_2d": [450, 230, 480, 320]}]}]
This sheet has {pages} page(s)."""

# HG-Bench's protocol: a reply without a readable list is asked for once more with this reminder appended.
RETRY_REMINDER = """
Your previous reply could not be read as a JSON list. Reply with only the JSON list described above,
with no text before or after it and no code fences."""


@dataclass(frozen=True)
class VlmBoxConfig:
    """``scripts``: how many complete scripts to ask about (each is one model call with all its pages);
    ``min_iou``: boxes from different scripts pool at this IoU."""

    scripts: int = 2
    min_iou: float = 0.5


@dataclass(frozen=True)
class ReplyBox:
    """A question box of one reply: ``bbox`` in template px, ``steps`` its step boxes in the reply's
    order, in template px, each inside ``bbox``."""

    bbox: Box
    steps: tuple[Box, ...] = ()


@dataclass(frozen=True)
class VlmBox:
    """A suggested answer box: 0-based template ``page``, ``bbox`` in template px, ``score`` the fraction
    of asked scripts whose reply held it, ``steps`` its ordered step boxes (template px, inside ``bbox``)."""

    page: int
    bbox: Box
    score: float
    source: str = SOURCE
    steps: tuple[Box, ...] = ()


def prompt_build(*, pages: int) -> str:
    """The user message for a script of ``pages`` pages (the images come before it)."""
    return PROMPT.replace("{pages}", str(pages))


def _outward(box: Sequence[float], *, within: Box) -> Box | None:
    """``box`` rounded outwards to whole pixels and clipped to ``within``; None when nothing is left."""
    clipped = (max(within[0], math.floor(box[0])), max(within[1], math.floor(box[1])),
               min(within[2], math.ceil(box[2])), min(within[3], math.ceil(box[3])))
    return clipped if clipped[2] > clipped[0] and clipped[3] > clipped[1] else None


def reply_boxes(*, reply: str, page_sizes: Sequence[tuple[int, int]]) -> dict[int, list[ReplyBox]]:
    """Question boxes of a reply with their steps, per 0-based page, in template px rounded outwards and
    clipped to the page (steps to their question box).

    ``page_sizes`` are the (width, height) px of the pages sent, in order; each item is read by
    ``ml.grounding_eval``'s rules (``boxes_by_page``), so the boxes are those the benchmark scores.
    """
    sizes = {number: (float(width), float(height)) for number, (width, height) in enumerate(page_sizes, 1)}
    found: dict[int, list[ReplyBox]] = {}
    for item in reply_parse(text=reply):
        titles, steps = boxes_by_page(items=[item], page_sizes=sizes)
        for page, (title,) in titles.items():
            width, height = page_sizes[page - 1]
            bbox = _outward(title, within=(0, 0, width, height))
            if bbox is not None:
                kept = (_outward(step, within=bbox) for step in steps.get(page, []))
                found.setdefault(page - 1, []).append(ReplyBox(bbox=bbox, steps=tuple(s for s in kept if s)))
    return found


@dataclass
class _Pool(Generic[Member]):
    box: list[int]
    members: list[Member] = field(default_factory=list)


def _pooled(boxes: Sequence[tuple[Box, Member]], *, min_iou: float) -> list[_Pool[Member]]:
    """Greedy pooling of one page's boxes, in the order given: a box joins the pool whose enclosing box
    it overlaps most at IoU >= ``min_iou`` (the first such on a tie), else starts one."""
    pools: list[_Pool[Member]] = []
    for box, member in boxes:
        iou, best = max(((pixel_iou(pool.box, box), pool) for pool in pools), key=lambda pair: pair[0],
                        default=(0.0, None))
        if best is None or iou < min_iou:
            best = _Pool(box=list(box))
            pools.append(best)
        best.box[:] = [min(best.box[0], box[0]), min(best.box[1], box[1]),
                       max(best.box[2], box[2]), max(best.box[3], box[3])]
        best.members.append(member)
    return pools


def _steps_pooled(members: Sequence[ReplyBox], *, min_iou: float) -> tuple[Box, ...]:
    """The pooled steps of a question pool's boxes (see the module's docstring for the rule)."""
    steps = [(step, number) for member in members for number, step in enumerate(member.steps, start=1)]
    pools = _pooled(steps, min_iou=min_iou)
    pools.sort(key=lambda pool: (sum(pool.members) / len(pool.members), pool.box[1], pool.box[0]))
    return tuple(tuple(pool.box) for pool in pools)


def boxes_pool(*, replies: Sequence[dict[int, list[ReplyBox]]], min_iou: float = 0.5) -> list[VlmBox]:
    """Pool the boxes of several scripts' replies (``reply_boxes``) page by page, with their steps, as the
    module's docstring says. Sorted by page, top, left."""
    by_page: dict[int, list[tuple[Box, tuple[int, ReplyBox]]]] = {}
    for script, pages in enumerate(replies):
        for page, found in sorted(pages.items()):
            by_page.setdefault(page, []).extend((answer.bbox, (script, answer)) for answer in found)
    count = max(1, len(replies))
    suggested = [
        VlmBox(page=page, bbox=tuple(pool.box), score=len({script for script, _ in pool.members}) / count,
               steps=_steps_pooled([answer for _, answer in pool.members], min_iou=min_iou))
        for page, boxes in by_page.items() for pool in _pooled(boxes, min_iou=min_iou)
    ]
    return sorted(suggested, key=lambda found: (found.page, found.bbox[1], found.bbox[0]))


def boxes_suggest_vlm(*, scripts: Sequence[Sequence[Image.Image]], generate: BoxGenerateFn,
                      config: VlmBoxConfig = VlmBoxConfig()) -> list[VlmBox]:
    """Suggest answer boxes from up to ``config.scripts`` scripts, each a list of its pages resampled into
    the template frame (page i = template page i, so their sizes are the template's). A reply holding no
    JSON list of objects is asked for once more with ``RETRY_REMINDER``."""
    replies = []
    for pages in list(scripts)[: config.scripts]:
        reply = generate(pages, prompt_build(pages=len(pages)))
        if reply_array(text=reply) is None:
            reply = generate(pages, prompt_build(pages=len(pages)) + RETRY_REMINDER)
        replies.append(reply_boxes(reply=reply, page_sizes=[page.size for page in pages]))
    return boxes_pool(replies=replies, min_iou=config.min_iou)


def hf_box_generate(generator: Any) -> BoxGenerateFn:
    """A ``BoxGenerateFn`` on a loaded ``HfGenerator``: all pages in one user turn, greedy decoding up to
    its config's ``max_new_tokens`` (a reply cut off there keeps its complete items, as the evaluator reads it).

    The processor resizes each page within the generator's min/max pixels; 0-1000 boxes do not depend on it.
    """

    def generate(pages: Sequence[Image.Image], text: str) -> str:
        import torch

        processor = generator.processor
        content = [*({"type": "image"} for _ in pages), {"type": "text", "text": text}]
        chat = processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
        inputs = processor(text=[chat], images=[page.convert("RGB") for page in pages], return_tensors="pt")
        inputs = inputs.to(generator.model.device)
        with torch.inference_mode():
            out = generator.model.generate(**inputs, max_new_tokens=generator.config.max_new_tokens,
                                           do_sample=False, top_p=None, temperature=None, top_k=None)
        ids = out[0, inputs["input_ids"].shape[1]:].tolist()
        length = next((position for position, token in enumerate(ids) if token in generator.stop_ids), len(ids))
        return processor.tokenizer.decode(ids[:length], skip_special_tokens=True, clean_up_tokenization_spaces=False)

    return generate


def main(argv: list[str] | None = None) -> None:
    """``python -m ml.box_suggest_vlm --model DIR PAGE.png [PAGE.png ...]``: one script's pages (already in
    the template frame) to the model; prints the reply and the boxes (with their steps) read from it as
    JSON (template px)."""
    from ml.recognition.vlm import HfGenerator, VlmConfig

    parser = argparse.ArgumentParser(prog="python -m ml.box_suggest_vlm", description=main.__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Qwen2.5-VL directory (merged fine-tune or base)")
    parser.add_argument("--adapter", help="optional LoRA adapter directory")
    parser.add_argument("--max-new-tokens", type=int, default=2048, help="the reply's limit in tokens")
    parser.add_argument("pages", nargs="+", type=Path, help="page images, page 1 first")
    args = parser.parse_args(argv)
    try:
        pages = [Image.open(path).convert("RGB") for path in args.pages]
    except OSError as error:
        parser.error(str(error))
    generator = HfGenerator(VlmConfig(model_path=args.model, adapter_path=args.adapter, confidence=False,
                                      max_new_tokens=args.max_new_tokens))
    reply = hf_box_generate(generator)(pages, prompt_build(pages=len(pages)))
    boxes = reply_boxes(reply=reply, page_sizes=[page.size for page in pages])
    print(json.dumps({"reply": reply, "boxes": [
        {"page": page, "bbox": list(answer.bbox), "steps": [list(step) for step in answer.steps]}
        for page, found in sorted(boxes.items()) for answer in found]}, indent=2))


if __name__ == "__main__":
    main()
