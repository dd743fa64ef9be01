"""The VLM engine: a (LoRA fine-tuned) Qwen2.5-VL reads the answer regions of a page as JSON.

The approach of the seed paper (``shared/seeds/000``): the page image and the list of answer regions
``[{"index", "bbox": [x1, y1, x2, y2]}]`` go into one user turn, and the model answers
``[{"index": n, "text": "..."}]``. A fine-tuned model is used either merged (``ml.vlm_merge``, the
paper's merge-then-infer; the fastest) or as base model + peft adapter.

Pieces, each usable alone:

- ``model_input_size`` / ``bbox_to_model_frame``: Qwen2.5-VL sees boxes in absolute pixels of the
  image *as the processor resized it* (dimensions multiples of 28, area within min/max pixels), so
  page boxes are mapped into that frame before they go into the prompt. The engine resizes the page
  to exactly that size itself, so the processor's own resize is the identity, and checks the vision
  grid the processor produced against it.
- ``prompt_build``: the user message, English or Chinese (``lang`` "en" / "ch", as in the paper's API).
- ``readings_parse``: a lenient parser for the model's answer.
- ``HfGenerator``: loads model (+ adapter) and processor once, runs batched ``generate`` and reports
  the decoded answer with per-token probabilities.
- ``VlmRecognizer``: the ``Recognizer``; orchestrates prompts, batching, parsing and the one retry.
  Its ``generate`` callable can be injected, which is how the orchestration is tested without a model.

Nothing here imports Django; transformers, torch and peft are imported only when a model is loaded
(``model_input_size`` imports transformers' ``smart_resize``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from ml.recognition.base import Lang, Reading, Region

logger = logging.getLogger(__name__)

ENGINE = "vlm"
Box = tuple[int, int, int, int]

# Qwen2.5-VL: 14 px patches, 2x2 patches merged into one visual token, so sizes are multiples of 28.
QWEN_FACTOR = 28
DEFAULT_MIN_PIXELS = 4 * 28 * 28  # 3136, Qwen's own minimum
# Large enough that an A4 page at 150 dpi (1240x1754) goes in at native resolution (1232x1764, 2772
# visual tokens): handwriting loses legibility quickly when downscaled. Bigger pages are scaled down.
DEFAULT_MAX_PIXELS = 3072 * 28 * 28  # 2,408,448
BACKENDS = ("transformers", "vllm")
# Prompt lengths round up to this many tokens with a static KV cache (see ``HfGenerator.__call__``).
STATIC_CACHE_BUCKET = 256


@dataclass(frozen=True)
class VlmConfig:
    """How to load and run the model.

    ``model_path`` is a local directory holding a Qwen2.5-VL (the base Instruct model or a merged
    fine-tune) and normally its processor; ``adapter_path`` an optional peft LoRA adapter directory
    applied on top (its directory is also where the processor is looked for when the model directory
    has none). ``device`` "auto" is CUDA when available, else CPU; ``dtype`` "auto" is bfloat16 on
    CUDA (float16 on GPUs without bf16) and float32 on CPU, or name one ("bfloat16", "float16",
    "float32").

    Generation: ``do_sample`` is False by default, i.e. greedy decoding. Readings must be
    reproducible (the same page gives the same text on every run, and a teacher's review is not
    undone by a re-run), and greedy is the usual choice for extraction. ``top_p``/``temperature``
    carry the paper's values (0.7 / 0.95) and are used only when ``do_sample`` is True (nucleus
    sampling; top-k is then switched off so that a checkpoint's ``top_k: 1`` does not silently make
    it greedy). ``max_new_tokens`` 1024 as in the paper.

    ``min_pixels``/``max_pixels`` bound the area of the image the model sees (see
    ``DEFAULT_MAX_PIXELS``); they override what the saved processor says. ``retries`` is how many
    follow-up prompts a page gets for regions still unread (1: one retry). ``batch_size`` is the most
    pages in one ``generate`` call. ``confidence`` False skips the per-token probabilities.

    Serving: ``backend`` "transformers" (``HfGenerator``, the tested default) or "vllm"
    (``ml.recognition.vlm_vllm.VllmGenerator``, optional: needs the ``vllm`` package on a CUDA node).
    ``static_cache`` and ``compile`` (transformers only) decode with a preallocated KV cache and a
    ``torch.compile``d forward: they pay on a GPU once the same batch shapes repeat (``bench/vlm.py``
    measures both), and cost a compilation per new shape.
    """

    model_path: str
    adapter_path: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 1024
    top_p: float = 0.7
    temperature: float = 0.95
    do_sample: bool = False
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    retries: int = 1
    batch_size: int = 4
    confidence: bool = True
    backend: str = "transformers"
    static_cache: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.compile and not self.static_cache:
            raise ValueError("compile needs static_cache: only a static KV cache keeps the decoding shapes fixed")


# --------------------------------------------------------------------------------------------------
# Coordinates


def _smart_resize_fallback(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's ``smart_resize`` (transformers' and qwen-vl-utils' are the same), for when it cannot be imported."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError("absolute aspect ratio must be smaller than 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _smart_resize() -> Callable[..., tuple[int, int]]:
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize
    except ImportError:  # pragma: no cover - depends on the installed transformers
        return _smart_resize_fallback
    return smart_resize


def model_input_size(
    *, page_size: tuple[int, int], min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS,
    factor: int = QWEN_FACTOR,
) -> tuple[int, int]:
    """``(width, height)`` the Qwen2-VL image processor resizes a ``(width, height)`` page to.

    Both sides become multiples of ``factor`` (patch size x merge size, 28), the aspect ratio is kept
    as well as that allows, and the area ends within ``[min_pixels, max_pixels]``. This is
    transformers' own ``smart_resize``, called with the processor's parameters.
    """
    width, height = page_size
    resized_height, resized_width = _smart_resize()(
        height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return int(resized_width), int(resized_height)


def _scale(value: int, new: int, old: int) -> int:
    """``value * new / old`` rounded half up, in exact integer arithmetic."""
    return (2 * value * new + old) // (2 * old)


def bbox_to_model_frame(*, bbox: Sequence[int], page_size: tuple[int, int], resized_size: tuple[int, int]) -> Box:
    """Map a page box ``[x1, y1, x2, y2]`` (pixels of a ``(width, height)`` page) into the resized image.

    Each coordinate is scaled by its axis' ratio and rounded half up (exact integer arithmetic, so
    the same box always gives the same prompt); the result is clamped to the resized image and a box
    that would collapse keeps at least one pixel of width and height.
    """
    page_width, page_height = page_size
    width, height = resized_size
    x1, y1, x2, y2 = (int(value) for value in bbox)
    x1, x2 = (min(max(_scale(x, width, page_width), 0), width) for x in (x1, x2))
    y1, y2 = (min(max(_scale(y, height, page_height), 0), height) for y in (y1, y2))
    if x2 <= x1:
        x1, x2 = (x1, x1 + 1) if x1 < width else (width - 1, width)
    if y2 <= y1:
        y1, y2 = (y1, y1 + 1) if y1 < height else (height - 1, height)
    return x1, y1, x2, y2


# --------------------------------------------------------------------------------------------------
# Prompt

# The seed paper's instruction ("Extract content sequentially from the answer sheet area in the image
# and return it in JSON format. Return only JSON:"), with the region list and the answer shape spelt out.
PROMPTS: dict[str, tuple[str, str, str]] = {
    "en": (
        "Extract content sequentially from the answer sheet area in the image and return it in JSON format.\n"
        "Answer sheet regions (index, and box [x1, y1, x2, y2] in pixels of this image):\n",
        '\nGive one object per region, in this order: [{"index": <index>, "text": "<handwritten text>"}]. '
        'Use "" for a region with nothing written in it. The answers are handwritten in English.',
        " Return only JSON:",
    ),
    "ch": (
        "按顺序提取图片中答题卡区域的内容，并以JSON格式返回。\n"
        "答题卡区域（编号，以及本图像素坐标框 [x1, y1, x2, y2]）：\n",
        '\n每个区域输出一个对象，按上述顺序：[{"index": <编号>, "text": "<手写内容>"}]。'
        '区域内没有书写时 text 为 ""。答案为中文手写。',
        "只返回JSON：",
    ),
}

# Added to the prompt of the retry.
REMINDERS: dict[str, str] = {
    "en": (
        " Reply with the JSON array only: no explanation and no code fence, every region listed above "
        "exactly once, strings in double quotes, no trailing comma."
    ),
    "ch": "只输出JSON数组：不要解释，不要代码块，上面列出的每个区域恰好一个对象，字符串用双引号，末尾不要多余的逗号。",
}


def regions_json(regions: Sequence[Region]) -> str:
    """The region list as the prompt shows it: ``[{"index": 1, "bbox": [x1, y1, x2, y2]}, ...]``."""
    return json.dumps([{"index": region.index, "bbox": list(region.bbox)} for region in regions], ensure_ascii=False)


def prompt_build(*, regions: Sequence[Region], lang: Lang = "en", reminder: bool = False) -> str:
    """The user message for ``regions``, whose boxes must already be in the model's frame.

    ``reminder`` adds the format reminder the retry uses. The region kind is not shown: the paper's
    format has index and box only, and a fine-tuned model expects exactly that.
    """
    if lang not in PROMPTS:
        raise ValueError(f"lang must be one of {sorted(PROMPTS)}, not {lang!r}")
    head, answer, tail = PROMPTS[lang]
    return head + regions_json(regions) + answer + (REMINDERS[lang] if reminder else "") + tail


# --------------------------------------------------------------------------------------------------
# Lenient parser


class _Truncated(Exception):
    """The text ended inside a value."""


class _Invalid(Exception):
    """Something that is not JSON, nor a forgivable near miss."""


class _Obj(dict):
    """A parsed object that remembers where each value's literal sits in the text."""

    spans: dict[str, tuple[int, int]]


_CLOSERS = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"', "'": "'"}
_WORDS = {"true": True, "false": False, "null": None, "none": None}
# A quote closes a string only where a value may end; other quotes are taken as part of the text.
_AFTER_VALUE = ",}]:"
# Bounds the work on long garbage: the first this many "[" are tried as the start of the answer.
_MAX_STARTS = 64


class _Scanner:
    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        if self.pos >= len(self.text):
            raise _Truncated
        return self.text[self.pos]

    def value(self) -> Any:
        char = self.peek()
        if char == "{":
            return self.obj()
        if char == "[":
            return self.arr()
        if char in _CLOSERS:
            return self.string()
        if char.isdigit() or char in "-+.":
            return self.number()
        if char.isalpha():
            word = self.word()
            if word.lower() in _WORDS:
                return _WORDS[word.lower()]
        raise _Invalid

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        if self.pos >= len(self.text):
            raise _Truncated
        return self.text[start : self.pos]

    def number(self) -> int | float:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isdigit() or self.text[self.pos] in "+-.eE"):
            self.pos += 1
        if self.pos >= len(self.text):
            raise _Truncated
        literal = self.text[start : self.pos]
        try:
            return int(literal)
        except ValueError:
            pass
        try:
            return float(literal)
        except ValueError:
            raise _Invalid from None

    def string(self) -> str:
        closer = _CLOSERS[self.text[self.pos]]
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise _Truncated
            char = text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(text):
                    raise _Truncated
                code = text[self.pos + 1]
                if code == "u":
                    digits = text[self.pos + 2 : self.pos + 6]
                    if len(digits) < 4:
                        raise _Truncated
                    try:
                        out.append(chr(int(digits, 16)))
                    except ValueError:
                        out.append(code)
                        self.pos += 2
                        continue
                    self.pos += 6
                    continue
                out.append(_ESCAPES.get(code, code))
                self.pos += 2
                continue
            if char == closer:
                after = self.pos + 1
                while after < len(text) and text[after].isspace():
                    after += 1
                if after >= len(text) or text[after] in _AFTER_VALUE:
                    self.pos += 1
                    return "".join(out)
            out.append(char)
            self.pos += 1

    def obj(self) -> _Obj:
        self.pos += 1  # "{"
        result = _Obj()
        result.spans = {}
        while True:
            char = self.peek()
            if char == "}":
                self.pos += 1
                return result
            if char == ",":
                self.pos += 1
                continue
            if char in _CLOSERS:
                key = self.string()
            elif char.isalpha() or char == "_":
                key = self.word()
            else:
                raise _Invalid
            if self.peek() not in ":=":
                raise _Invalid
            self.pos += 1
            self.ws()
            start = self.pos
            value = self.value()
            result[key] = value
            result.spans[key] = (start, self.pos)

    def arr(self) -> list[Any]:
        self.pos += 1  # "["
        items: list[Any] = []
        while True:
            char = self.peek()
            if char == "]":
                self.pos += 1
                return items
            if char == ",":
                self.pos += 1
                continue
            items.append(self.value())


def _array_scan(text: str, start: int) -> tuple[list[Any], bool]:
    """The complete elements of the array opening at ``start``, and whether its "]" was reached.

    An element cut off by the end of the text ends the scan (the complete ones are kept); an
    element that cannot be read makes the scan skip to the next "{".
    """
    scanner = _Scanner(text, start + 1)
    items: list[Any] = []
    while True:
        try:
            char = scanner.peek()
        except _Truncated:
            return items, False
        if char == "]":
            return items, True
        if char == ",":
            scanner.pos += 1
            continue
        begin = scanner.pos
        try:
            items.append(scanner.value())
        except _Truncated:
            return items, False
        except _Invalid:
            resume = text.find("{", max(scanner.pos, begin + 1))
            if resume < 0:
                return items, False
            scanner.pos = resume


@dataclass(frozen=True)
class ParsedReading:
    """One object of the answer: the region ``index``, its ``text``, and where the text sits in the answer."""

    index: int
    text: str
    span: tuple[int, int]  # characters of the answer the text was read from


_TEXT_KEYS = ("text", "content", "answer")


def _index_normalise(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        digits = value.strip().lstrip("#")
        if digits.lstrip("-").isdigit():
            return int(digits)
    return None


def _reading_from(item: Any, text: str) -> ParsedReading | None:
    if not isinstance(item, _Obj):
        return None
    keys = {key.strip().lower(): key for key in item}
    index = _index_normalise(item[keys["index"]]) if "index" in keys else None
    key = next((keys[name] for name in _TEXT_KEYS if name in keys), None)
    if index is None or key is None:
        return None
    value = item[key]
    if value is None:
        value = ""
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    start, end = item.spans[key]
    literal = text[start:end]
    if isinstance(value, str) and len(literal) >= 2 and literal[0] in _CLOSERS:
        stripped = value.strip()
        if stripped:  # the characters of the text itself (inside the quotes, without surrounding blanks)
            inner_start = start + 1 + (len(literal) - 2 - len(literal[1:-1].lstrip()))
            start, end = inner_start, inner_start + len(literal[1:-1].strip())
        value = stripped
    return ParsedReading(index=index, text=str(value), span=(start, end))


def readings_parse_spans(*, text: str) -> list[ParsedReading] | None:
    """``readings_parse``, keeping where each text was read from (for confidences)."""
    found_empty = False
    start = text.find("[")
    tries = 0
    while start >= 0 and tries < _MAX_STARTS:
        tries += 1
        items, closed = _array_scan(text, start)
        readings: list[ParsedReading] = []
        seen: set[int] = set()
        for item in items:
            reading = _reading_from(item, text)
            if reading is not None and reading.index not in seen:
                seen.add(reading.index)
                readings.append(reading)
        if readings:
            return readings
        found_empty = found_empty or (closed and not items)
        start = text.find("[", start + 1)
    return [] if found_empty else None


def readings_parse(*, text: str) -> list[dict] | None:
    """Read the model's answer as ``[{"index": int, "text": str}, ...]``, forgiving the usual slips.

    Rules:
    - the answer is the first JSON array in the text that holds at least one reading object, so
      code fences (```json ... ```) and prose before or after it are ignored, and so is any "[" in
      the prose that does not start such an array;
    - strings may use double, single or curly quotes; a quote inside a string that is not followed
      by "," "}" "]" or ":" is taken as part of the text (an unescaped quote or an apostrophe);
    - trailing and doubled commas are ignored; keys may be unquoted; true/false/null and Python's
      True/False/None are read;
    - an answer cut off mid-way (max_new_tokens reached) keeps every object completed before the cut;
    - an element that cannot be read is skipped (reading resumes at the next "{");
    - "index" may be an int, an integral float or a string of digits ("3", "#3"); "text" may also be
      called "content" or "answer"; a number is turned into its text, null into "" (answered empty);
      text is stripped of surrounding blanks; objects without a usable index or text are dropped;
    - the first object for an index wins, later duplicates are dropped.

    Returns None when no such array is found (no array at all, or a lone object, string or number);
    ``[]`` when the answer is an empty array.
    """
    readings = readings_parse_spans(text=text)
    if readings is None:
        return None
    return [{"index": reading.index, "text": reading.text} for reading in readings]


# --------------------------------------------------------------------------------------------------
# Generation


@dataclass(frozen=True)
class VlmPrompt:
    """One page for ``generate``: the image already resized to ``size`` (width, height), and the user message."""

    image: Image.Image
    text: str
    size: tuple[int, int]


@dataclass(frozen=True)
class VlmOutput:
    """The decoded answer to one prompt.

    ``token_ends[i]`` is the end (in characters of ``text``) of the text decoded up to generated token
    i, ``token_probs[i]`` the model's probability of that token (softmax of the raw logits: before
    repetition penalty, temperature or top-p). Both are empty when not recorded.
    """

    text: str
    token_ends: tuple[int, ...] = ()
    token_probs: tuple[float, ...] = ()


GenerateFn = Callable[[Sequence[VlmPrompt]], Sequence[VlmOutput | str]]


def span_confidence(*, span: tuple[int, int], output: VlmOutput) -> float | None:
    """Mean probability of the generated tokens that overlap ``span`` (characters of the answer).

    None when the output has no token probabilities or no token overlaps the span.
    """
    if not output.token_probs:
        return None
    start, end = span
    probs: list[float] = []
    previous = 0
    for token_end, prob in zip(output.token_ends, output.token_probs, strict=True):
        token_start, previous = previous, max(previous, token_end)
        if token_start < end and previous > start:
            probs.append(prob)
    return sum(probs) / len(probs) if probs else None


def chat_text(*, processor, text: str) -> str:
    """The conversation the engine sends, as the model's chat template renders it: one user turn, the
    page image then ``text``, and the assistant's turn opened for the answer."""
    return processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        tokenize=False,
        add_generation_prompt=True,
    )


def stop_ids(*, generation_config, tokenizer) -> set[int]:
    """The token ids an answer ends at: the generation config's end tokens (None: none), the tokenizer's
    end and padding tokens."""
    eos = getattr(generation_config, "eos_token_id", None)
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    stops = set(eos) | {tokenizer.eos_token_id, tokenizer.pad_token_id}
    return {token for token in stops if token is not None}


def output_decode(*, tokenizer, ids: list[int], probs: list[float] | None) -> VlmOutput:
    """The answer of generated ``ids`` (stop token excluded) with, given ``probs`` (one a token), each
    token's end in characters of the text."""
    options = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
    text = tokenizer.decode(ids, **options)
    if probs is None or not ids:
        return VlmOutput(text=text)
    # Character ends of each token, decoded incrementally as vLLM detokenises: each step decodes only the
    # tokens since the last complete piece (after a little context, for tokenizers whose first token
    # decodes differently), so a long answer costs linear time, not one decode of every prefix. A token
    # that ends inside a multi-byte character (a replacement character so far) ends with that character.
    ends: list[int] = []
    length = context = start = 0
    for index in range(len(ids)):
        before = tokenizer.decode(ids[context:start], **options)
        after = tokenizer.decode(ids[context : index + 1], **options)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            length += len(after) - len(before)
            context, start = start, index + 1
        ends.append(min(length, len(text)))
    return VlmOutput(text=text, token_ends=tuple(ends), token_probs=tuple(probs))


def _device_resolve(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _dtype_resolve(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    version = tuple(int(part) for part in transformers.__version__.split(".")[:2] if part.isdigit())
    return {"dtype": dtype} if version >= (4, 56) else {"torch_dtype": dtype}


def processor_load(*, model_path: str, adapter_path: str | None = None):
    """The processor saved with the model, else the one saved beside the adapter."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        if adapter_path is None:
            raise
        return AutoProcessor.from_pretrained(adapter_path, local_files_only=True)


def _adapter_check(model) -> None:
    """Warn when every LoRA "B" matrix is zero: the adapter did not load (key mismatch) or was never trained."""
    import torch

    weights = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    if not weights:
        logger.warning("the adapter added no LoRA weights to the model")
    elif all(not torch.any(weight) for weight in weights):
        logger.warning("every LoRA B matrix of the adapter is zero: it changes nothing")


class HfGenerator:
    """Qwen2.5-VL (+ optional LoRA adapter) and its processor, loaded once; answers ``VlmPrompt`` batches.

    ``model`` and ``processor`` given (``bench/vlm.py``'s in-memory model) replace loading them from
    ``config.model_path``; the rest of the config applies as usual.
    """

    def __init__(self, config: VlmConfig, *, model: Any = None, processor: Any = None) -> None:
        self.config = config
        if model is None:
            model = self._model_load(config)
        self.model = model.eval()
        self.device = str(model.device)

        if processor is None:
            processor = processor_load(model_path=config.model_path, adapter_path=config.adapter_path)
        processor.tokenizer.padding_side = "left"  # batched generation continues every row at its end
        image_processor = processor.image_processor
        image_processor.size = {"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels}
        for name, value in (("min_pixels", config.min_pixels), ("max_pixels", config.max_pixels)):
            if hasattr(image_processor, name):  # transformers 4.x keeps them as attributes too
                setattr(image_processor, name, value)
        self.processor = processor
        self.patch_size = int(image_processor.patch_size)
        self.factor = self.patch_size * int(image_processor.merge_size)
        self.stop_ids = stop_ids(generation_config=getattr(self.model, "generation_config", None),
                                 tokenizer=processor.tokenizer)

    @staticmethod
    def _model_load(config: VlmConfig):
        from transformers import Qwen2_5_VLForConditionalGeneration

        device = _device_resolve(config.device)
        dtype = _dtype_resolve(config.dtype, device)
        placement = {"device_map": device} if device.startswith("cuda") else {}
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            config.model_path, local_files_only=True, **dtype_kwargs(dtype), **placement
        )
        if config.adapter_path is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, config.adapter_path, is_trainable=False)
            _adapter_check(model)
        return model if placement else model.to(device)

    def _generate_kwargs(self, chosen: Any = None) -> dict[str, Any]:
        config = self.config
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "do_sample": config.do_sample,
            "return_dict_in_generate": True,
            # Sampling picks tokens the scores alone do not tell, so only then are the logits kept.
            "output_logits": config.confidence and chosen is None,
        }
        if chosen is not None:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([chosen])
        if config.do_sample:
            kwargs.update(top_p=config.top_p, temperature=config.temperature, top_k=None)
        else:  # a checkpoint's sampling settings would only draw warnings
            kwargs.update(top_p=None, temperature=None, top_k=None)
        if config.static_cache:
            kwargs["cache_implementation"] = "static"
        # transformers compiles a static-cache decoding step by itself on a GPU; only ``compile`` asks for it.
        kwargs["disable_compile"] = not config.compile
        return kwargs

    def inputs(self, prompts: Sequence[VlmPrompt]):
        """The model's input for ``prompts`` (chat template, image patches, left padding), on its device."""
        processor = self.processor
        texts = [chat_text(processor=processor, text=prompt.text) for prompt in prompts]
        # A static cache is sized, and a compiled step specialised, per batch shape: prompt lengths rounded up
        # to a bucket let batches of similar pages share one (the extra left padding is masked out).
        bucket = {"pad_to_multiple_of": STATIC_CACHE_BUCKET} if self.config.static_cache else {}
        # On a GPU the (torchvision) image processor patches the pages there: ~0.2 s of CPU a page otherwise,
        # as long as the model takes to read one in a large batch (bench/vlm.py prints it).
        where = {"device": str(self.model.device)} if self.model.device.type == "cuda" else {}
        inputs = processor(
            text=texts, images=[prompt.image for prompt in prompts], padding=True, return_tensors="pt", **bucket,
            **where,
        ).to(self.model.device)
        for prompt, grid in zip(prompts, inputs["image_grid_thw"].tolist(), strict=True):
            seen = (grid[2] * self.patch_size, grid[1] * self.patch_size)
            if seen != tuple(prompt.size):
                raise RuntimeError(f"the processor resized the page to {seen}, the prompt's boxes assume {prompt.size}")
        return inputs

    def __call__(self, prompts: Sequence[VlmPrompt]) -> list[VlmOutput]:
        import torch

        inputs = self.inputs(prompts)
        chosen = _chosen_log_probs() if self.config.confidence and not self.config.do_sample else None
        with torch.inference_mode():
            out = self.model.generate(**inputs, **self._generate_kwargs(chosen))
        generated = out.sequences[:, inputs["input_ids"].shape[1] :]
        probs = None
        if chosen is not None and chosen.steps:
            probs = torch.stack(chosen.steps, dim=1).exp().cpu().tolist()
        elif self.config.confidence and getattr(out, "logits", None):
            steps = [
                torch.log_softmax(step.float(), dim=-1).gather(1, generated[:, index : index + 1].to(step.device))
                for index, step in enumerate(out.logits)
            ]
            probs = torch.cat(steps, dim=1).exp().cpu().tolist()
        outputs = []
        for row, ids in enumerate(generated.cpu().tolist()):
            length = next((position for position, token in enumerate(ids) if token in self.stop_ids), len(ids))
            outputs.append(output_decode(tokenizer=self.processor.tokenizer, ids=ids[:length],
                                       probs=probs[row][:length] if probs is not None else None))
        return outputs

    def answers_score(self, prompt: VlmPrompt, answers: Sequence[str], *, batch_size: int = 8) -> list[float]:
        """The log-probability (natural log, summed over its tokens) the model gives each of ``answers``
        as its reply to ``prompt``: the teacher-forced likelihood of a known text, for scoring
        candidates (roster names, IDs) against the page instead of reading it freely.

        The page and prompt go through the model once and their key/value cache is kept; the answers
        then continue it, ``batch_size`` at a time (right-padded), and only their own tokens get
        logits: a roster of 30 names costs one page and 30 short continuations, not 30 pages.
        """
        import copy

        import torch

        if not answers:
            return []
        tokenizer = self.processor.tokenizer
        inputs = self.inputs([prompt])
        cache, cache_argument = _cache_new(self.model), _cache_argument(self.model)
        with torch.inference_mode():
            last = self.model(**inputs, **{cache_argument: cache}, use_cache=True, logits_to_keep=1).logits
        first_log_probs = torch.log_softmax(last[0, -1].float(), dim=-1)
        # Text after the page continues the prefix's multimodal rotary positions from their largest + 1
        # (all three axes alike); the cache's own length would count the image's tokens instead.
        start = int(rope_positions(self.model, input_ids=inputs["input_ids"], image_grid_thw=inputs["image_grid_thw"],
                                   attention_mask=inputs["attention_mask"],
                                   mm_token_type_ids=inputs.get("mm_token_type_ids")).max()) + 1
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        device = self.model.device
        scores: list[float] = []
        for first in range(0, len(answers), max(1, batch_size)):
            chunk = [tokenizer(answer, add_special_tokens=False)["input_ids"] for answer in
                     answers[first : first + max(1, batch_size)]]
            width = max(1, *(len(ids) for ids in chunk))
            rows = len(chunk)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in chunk], device=device)
            mask = torch.cat([inputs["attention_mask"].expand(rows, -1), torch.tensor(
                [[1] * len(ids) + [0] * (width - len(ids)) for ids in chunk], device=device)], dim=1)
            positions = (start + torch.arange(width, device=device)).view(1, 1, -1).expand(3, rows, -1)
            continued = copy.deepcopy(cache)
            continued.batch_repeat_interleave(rows)
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                    **{cache_argument: continued}, use_cache=True).logits
            # Token i of an answer is predicted by the prefix's last position (i = 0) or by answer token i - 1.
            log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            later = log_probs.gather(2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            for row, ids in enumerate(chunk):
                if not ids:
                    scores.append(0.0)
                    continue
                scores.append(float(first_log_probs[ids[0]] + later[row, : len(ids) - 1].sum()))
            del continued
        return scores

def base_model(model):
    """The transformers model under a peft wrapper (``model`` itself when it has none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_argument(model) -> str:
    """The forward's name for the key/value cache: ``cache`` in newer transformers (the old
    ``past_key_values`` then only warns), ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(base_model(model).forward).parameters else "past_key_values"


def _cache_new(model):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=base_model(model).config)
    except TypeError:  # transformers before 4.56 sizes it as it fills
        return DynamicCache()


def rope_positions(model, *, input_ids, image_grid_thw, attention_mask=None, mm_token_type_ids=None):
    """The multimodal rotary positions ``[3, batch, tokens]`` that Qwen2.5-VL ``model`` (peft-wrapped or
    not) gives a batch (image tokens share positions, so the last is far below the token count).
    transformers 5 finds the image tokens from ``mm_token_type_ids``, 4.x from the image token id."""
    import inspect

    rope_index = base_model(model).model.get_rope_index
    extra = {"mm_token_type_ids": mm_token_type_ids} if (
        mm_token_type_ids is not None and "mm_token_type_ids" in inspect.signature(rope_index).parameters) else {}
    positions, _ = rope_index(input_ids=input_ids, image_grid_thw=image_grid_thw, attention_mask=attention_mask,
                              **extra)
    return positions


def _chosen_log_probs():
    """A logits processor that keeps, at each greedy step, the log-probability of the token chosen.

    Greedy decoding chooses the top token, whose log-probability is ``max - logsumexp`` of the step's
    scores: two reductions a step, where keeping every step's logits (``output_logits``) holds batch x
    vocabulary (152k) numbers a step for the whole generation only to read one of each. It sits last
    among the processors, so the probability is that of the distribution decoded from (a checkpoint's
    repetition penalty included). ``steps`` holds one tensor of shape ``[batch]`` a step.
    """
    import torch
    from transformers import LogitsProcessor

    class ChosenLogProbs(LogitsProcessor):
        def __init__(self) -> None:
            self.steps: list[torch.Tensor] = []

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            values = scores.float()
            self.steps.append(values.max(dim=-1).values - torch.logsumexp(values, dim=-1))
            return scores

    return ChosenLogProbs()


# --------------------------------------------------------------------------------------------------
# The recogniser


def generator_load(config: VlmConfig):
    """The generate callable ``config.backend`` names, model loaded: called with ``VlmPrompt`` batches, it
    answers ``VlmOutput``s; it has ``factor`` (the resize multiple) and ``answers_score``."""
    if config.backend == "vllm":
        from ml.recognition.vlm_vllm import VllmGenerator

        return VllmGenerator(config)
    return HfGenerator(config)


def _unread(index: int) -> Reading:
    return Reading(index=index, text=None, confidence=None, engine=ENGINE)


@dataclass
class _Job:
    page_size: tuple[int, int]
    image: Image.Image
    size: tuple[int, int]
    regions: list[Region]  # in the model's frame
    pending: list[Region]
    answers: dict[int, Reading] = field(default_factory=dict)
    attempts: int = 0


class VlmRecognizer:
    """The ``Recognizer`` backed by Qwen2.5-VL.

    Every page's regions go into one prompt; up to ``config.batch_size`` pages go into one
    ``generate`` call. The model is loaded on first use (or by ``load()``), once per instance;
    ``generate`` replaces the model altogether (tests, or another serving back end), and ``factor``
    is then the resize multiple the prompts assume.

    Retry rule: after the first answer, the regions it did not cover (all of them when it could not
    be parsed; those whose index is missing otherwise) are asked for again, in one more prompt per
    page with the format reminder, up to ``config.retries`` times. The retry is a fresh single turn
    (same image, only the missing regions): it keeps the input in the shape the model was fine-tuned
    on, does not feed a garbled answer back, and a shorter list is less likely to run into
    max_new_tokens again if that is what cut the first answer. Answers for indices that were not asked
    are ignored; a region still missing after the retries is unread (``text=None``).

    Confidence: the mean probability the model gave the tokens of the region's text (the characters
    inside the quotes; for "" the quote pair), from the raw logits of each step; None when the
    generator reports no probabilities. It is a model probability, not a calibrated accuracy.

    ``generate_calls`` counts ``generate`` calls; ``last_attempts`` holds, per page of the last call,
    how many prompts the page got (0 for a page without regions).
    """

    name = ENGINE

    def __init__(self, config: VlmConfig, *, generate: GenerateFn | None = None, factor: int = QWEN_FACTOR) -> None:
        self.config = config
        self._generate = generate
        self._factor = factor
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()  # one generate at a time: threads sharing an instance share one GPU
        self.generate_calls = 0
        self.last_attempts: tuple[int, ...] = ()

    def load(self) -> GenerateFn:
        """Load the model and processor now (on first use otherwise); returns the generate callable."""
        with self._lock:
            if self._generate is None:
                generator = generator_load(self.config)
                self._factor = generator.factor
                self._generate = generator
            return self._generate

    def read_page(self, *, page: Image.Image, regions: Sequence[Region], lang: Lang = "en") -> list[Reading]:
        return self.read_pages(pages=[(page, regions)], lang=lang)[0]

    def candidates_score(self, *, page: Image.Image, region: Region, candidates: Sequence[str],
                         lang: Lang = "en") -> list[float]:
        """How likely the model finds each candidate text as its reading of ``region`` (log-probability
        of the whole reply ``[{"index": i, "text": candidate}]``, natural log), in order. Needs the
        transformers generator (``HfGenerator.answers_score``); TypeError for a generate function without it."""
        generate = self.load()
        scorer = getattr(generate, "answers_score", None)
        if scorer is None:
            raise TypeError("this generate function cannot score candidate texts")
        job = self._job(page, [region])
        prompt = VlmPrompt(image=job.image, text=prompt_build(regions=job.regions, lang=lang), size=job.size)
        replies = [json.dumps([{"index": region.index, "text": text}], ensure_ascii=False) for text in candidates]
        with self._run_lock:
            return scorer(prompt, replies)

    def read_pages(
        self, *, pages: Sequence[tuple[Image.Image, Sequence[Region]]], lang: Lang = "en"
    ) -> list[list[Reading]]:
        """``read_page`` for several pages, batched; one list of readings per page, in order."""
        if lang not in PROMPTS:
            raise ValueError(f"lang must be one of {sorted(PROMPTS)}, not {lang!r}")
        generate = self.load() if any(regions for _, regions in pages) else None
        config = self.config
        jobs = [self._job(page, regions) for page, regions in pages]
        for attempt in range(1 + max(config.retries, 0)):
            todo = [job for job in jobs if job.pending]
            if not todo:
                break
            for first in range(0, len(todo), max(config.batch_size, 1)):
                batch = todo[first : first + max(config.batch_size, 1)]
                prompts = [
                    VlmPrompt(
                        image=job.image,
                        text=prompt_build(regions=job.pending, lang=lang, reminder=attempt > 0),
                        size=job.size,
                    )
                    for job in batch
                ]
                assert generate is not None
                with self._run_lock:
                    self.generate_calls += 1
                    outputs = list(generate(prompts))
                if len(outputs) != len(batch):
                    raise RuntimeError(f"generate answered {len(outputs)} prompts of {len(batch)}")
                for job, output in zip(batch, outputs, strict=True):
                    self._absorb(job, output if isinstance(output, VlmOutput) else VlmOutput(text=str(output)))
        self.last_attempts = tuple(job.attempts for job in jobs)
        results = []
        for job, (_, regions) in zip(jobs, pages, strict=True):
            results.append([job.answers.get(region.index) or _unread(region.index) for region in regions])
        return results

    def _job(self, page: Image.Image, regions: Sequence[Region]) -> _Job:
        page_size = page.size
        config = self.config
        size = model_input_size(
            page_size=page_size, min_pixels=config.min_pixels, max_pixels=config.max_pixels, factor=self._factor
        )
        image = page if page.mode == "RGB" else page.convert("RGB")
        if regions and image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        framed = [
            replace(region, bbox=bbox_to_model_frame(bbox=region.bbox, page_size=page_size, resized_size=size))
            for region in regions
        ]
        pending: list[Region] = []  # a repeated index is asked for once; its reading goes to every copy
        for region in framed:
            if all(region.index != other.index for other in pending):
                pending.append(region)
        return _Job(page_size=page_size, image=image, size=size, regions=framed, pending=pending)

    def _absorb(self, job: _Job, output: VlmOutput) -> None:
        job.attempts += 1
        parsed = readings_parse_spans(text=output.text)
        if parsed is None:
            logger.info("VLM answer not parseable (attempt %d): %.200r", job.attempts, output.text)
            parsed = []
        wanted = {region.index for region in job.pending}
        for item in parsed:
            if item.index in wanted and item.index not in job.answers:
                job.answers[item.index] = Reading(
                    index=item.index,
                    text=item.text,
                    confidence=span_confidence(span=item.span, output=output),
                    engine=ENGINE,
                )
        job.pending = [region for region in job.pending if region.index not in job.answers]
