"""LoRA fine-tuning of Qwen2.5-VL on a markdesk data folder: the seed paper's training step (``shared/seeds/000``).

    python -m ml.train --config ml/configs/qwen2_5_vl_lora.yaml [--data DIR] [--out DIR] [--resume]

Reads the page records of a data folder (``ml.training_data``: ``train.json`` to train on, ``val.json``
to pick the best checkpoint by), trains a peft LoRA adapter on the language model's attention
projections (q/k/v/o) with the vision tower and its projector (the "merger") frozen, and writes::

    OUT/checkpoint-N/          one per epoch (Trainer's, adapter weights + optimiser state; the best
                               and the last are kept), what --resume continues from
    OUT/adapter/               the best adapter by eval loss, with the processor: what
                               ``python -m ml.vlm_merge --adapter OUT/adapter`` and
                               ``VlmConfig(model_path=BASE, adapter_path=OUT/adapter)`` load
    OUT/loss_curve.png         train and eval loss by step, redrawn after every evaluation
    OUT/runs/                  TensorBoard logs (only when tensorboard is installed)
    OUT/train_config.yaml      the configuration the run used

Each example is built exactly as the engine builds its prompt at inference (``HfGenerator``): the
processor's chat template over one user turn ``[image, prompt]`` with the generation prompt, the
page image already in the model's frame; the answer's tokens and the closing ``<|im_end|>`` follow,
and only those are learnt (the system, user and image tokens have label -100). bf16 on CUDA, float32
otherwise. Nothing here imports Django or downloads anything.

With ``packing: true`` several pages share one training row of up to ``max_length`` tokens, without
padding: each page keeps its own rotary positions and attends only to itself, so a packed row's loss
and gradients are the token-weighted ones of its pages run apart (``tests/ml/test_train_packing.py``).
The frozen vision tower and projector run without autograd, so they keep no activations and do no
backward work, activation checkpointing or not. ``bench/vlm.py`` times this same set-up on a GPU.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from PIL import Image, ImageDraw, ImageFont

from ml.recognition.vlm import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, base_model, dtype_kwargs, rope_positions
from ml.training_data import page_records_load

logger = logging.getLogger(__name__)

IMAGE_TAG = "<image>"  # where the page goes in a record's user message (LLaMA-Factory's placeholder)
END_TOKEN = "<|im_end|>"  # closes the assistant turn; learnt, so the model stops after the JSON
IGNORE_INDEX = -100  # label of the tokens the loss skips (PyTorch's cross-entropy default)
ADAPTER_DIR = "adapter"
LOSS_CURVE = "loss_curve.png"
# The attention kernels a run may ask for: PyTorch's fused SDPA (everywhere), and FlashAttention 2
# (CUDA with the flash-attn package), whose variable-length kernel skips the attention between
# packed pages instead of masking it.
ATTENTION_IMPLEMENTATIONS = ("sdpa", "flash_attention_2")


class ConfigError(ValueError):
    """The YAML configuration or the data folder cannot be used as given."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run, as read from YAML (every key is a field name; see ``ml/configs/``).

    ``model_path``: local directory of the base Qwen2.5-VL (Instruct) with its processor. ``data``: a
    data folder (``ml.training_data``). ``out``: where checkpoints, the adapter and the loss curve go.

    LoRA: ``lora_rank``, ``lora_alpha`` (None: twice the rank, LLaMA-Factory's default),
    ``lora_dropout``, ``lora_targets`` (projection names, matched inside the language model only).
    Schedule: ``epochs``, ``learning_rate`` with ``lr_scheduler`` (a transformers scheduler name) after a
    linear warm-up over ``warmup_ratio`` of the optimiser steps; ``batch_size`` pages per device step,
    ``gradient_accumulation_steps`` steps per optimiser step, ``eval_batch_size`` for validation.

    ``max_length``: the most tokens one example may have (image tokens included: an A4 page at 150 dpi
    is 2772 of them); a longer example is refused before training starts rather than cut, since a cut
    answer would teach unfinished JSON. ``min_pixels``/``max_pixels`` must be those the data folder was
    made with (the engine's: ``VlmConfig``), so that the processor leaves the page images as they are.
    ``gradient_checkpointing`` trades compute (one more forward pass of the language model) for
    activation memory. ``packing``: concatenate pages into rows of up to ``max_length`` tokens (greedy
    first fit over a seeded shuffle, fixed for the run; needs ``batch_size`` 1, a row being the batch);
    an optimiser step then learns from all pages of ``gradient_accumulation_steps`` rows, so there are
    fewer steps per epoch. Validation stays one page a row, so eval losses compare across runs.
    ``attn_implementation``: one of :data:`ATTENTION_IMPLEMENTATIONS` (``flash_attention_2`` needs CUDA
    and the flash-attn package). ``save_total_limit`` bounds
    the checkpoints kept (the best is always kept besides the last). ``max_steps`` > 0 stops after that
    many optimiser steps (smoke runs); otherwise ``epochs`` decide.
    """

    model_path: str
    data: str = "training_data"
    out: str = "runs/qwen2_5_vl_lora"
    lora_rank: int = 4
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    epochs: float = 15.0
    learning_rate: float = 5e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    batch_size: int = 1
    eval_batch_size: int = 1
    gradient_accumulation_steps: int = 4
    max_length: int = 4096
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    gradient_checkpointing: bool = True
    packing: bool = False
    attn_implementation: str = "sdpa"
    logging_steps: int = 1
    save_total_limit: int = 2
    max_steps: int = -1
    seed: int = 42

    @property
    def alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank


def settings_load(cls: type, path: Path | str, **overrides: Any):
    """An instance of the config dataclass ``cls`` from a YAML mapping of its field names; ``overrides``
    (not None) win. Fields without a default are required; YAML lists become tuples where the field is
    one. Raises :class:`ConfigError` on anything else."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    data.update({key: value for key, value in overrides.items() if value is not None})
    known = {item.name: item for item in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown settings {unknown}; known: {sorted(known)}")
    for name, item in known.items():
        if name not in data and item.default is MISSING and item.default_factory is MISSING:
            raise ConfigError(f"{path}: {name} is required")
    hints = get_type_hints(cls)
    for key, value in data.items():
        if get_origin(hints[key]) is tuple and isinstance(value, list):
            data[key] = tuple(value)
        # YAML 1.1 reads 5e-5 (no dot) as a string and 15 as an int; float settings take both as numbers.
        if hints[key] is float and not isinstance(value, bool):
            try:
                data[key] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: {key} must be a number, not {value!r}") from None
    return cls(**data)


def config_load(path: Path | str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML mapping of field names; ``overrides`` (not None) win."""
    return settings_load(TrainConfig, path, **overrides)


def config_dump(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump({**asdict(config), "lora_targets": list(config.lora_targets)}, sort_keys=False)


# --------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class PageExample:
    """One page record: the page image (already in the model's frame), the user prompt, the answer."""

    image_path: Path
    prompt: str
    answer: str


def page_example(*, record: dict, folder: Path) -> PageExample:
    """The parts of one seed-000 record (see ``ml.training_data``); raises ConfigError on another shape."""
    try:
        (user, assistant) = record["messages"]
        (image,) = record["images"]
        content = user["content"]
        ok = user["role"] == "user" and assistant["role"] == "assistant" and content.count(IMAGE_TAG) == 1
    except (KeyError, TypeError, ValueError, AttributeError):
        ok = False
    if not ok or not content.startswith(IMAGE_TAG):
        raise ConfigError(f"not a page record (one user turn starting with {IMAGE_TAG}, one answer, one image): "
                          f"{json.dumps(record)[:200]}")
    return PageExample(image_path=folder / image, prompt=content[len(IMAGE_TAG):], answer=assistant["content"])


class PageDataset:
    """The examples of one split, as a map-style dataset (``Trainer`` only needs len and indexing)."""

    def __init__(self, *, folder: Path, split: str) -> None:
        folder = Path(folder)
        self.examples = [page_example(record=record, folder=folder)
                         for record in page_records_load(folder=folder, split=split)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, position: int) -> PageExample:
        return self.examples[position]


def user_turn(prompt: str) -> list[dict]:
    """The conversation the engine sends (``HfGenerator.__call__``): one user turn, image then text."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


@dataclass(frozen=True)
class PagePack:
    """Pages that train together in one row (``packing``); ``length`` is their tokens in all."""

    examples: tuple[PageExample, ...]
    length: int


def packs_build(examples: Sequence[PageExample], *, lengths: Sequence[int], max_length: int,
                seed: int) -> list[PagePack]:
    """Greedy first fit: the examples in an order shuffled by ``seed``, each into the first pack that still
    has room for its ``lengths`` entry within ``max_length`` tokens, else into a new pack. Deterministic
    for a seed, so a resumed run packs as the first part did. Every example lands in exactly one pack."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    members: list[list[int]] = []
    totals: list[int] = []
    for position in order:
        length = lengths[position]
        if length > max_length:
            raise ConfigError(f"{examples[position].image_path}: {length} tokens > max_length {max_length}")
        pack = next((number for number, total in enumerate(totals) if total + length <= max_length), None)
        if pack is None:
            members.append([])
            totals.append(0)
            pack = len(totals) - 1
        members[pack].append(position)
        totals[pack] += length
    return [PagePack(examples=tuple(examples[position] for position in pack), length=total)
            for pack, total in zip(members, totals, strict=True)]


def rows_pad(rows: Sequence[dict[str, Any]], *, pad_token_id: int) -> dict[str, Any]:
    """A batch of encoded rows (:meth:`PageCollator.encode`'s format), padded on the right to the longest
    (``pad_token_id``, label -100, attention 0); ``pixel_values`` and ``image_grid_thw`` are concatenated
    over the batch as Qwen2.5-VL expects."""
    import torch

    width = max(len(row["input_ids"]) for row in rows)
    pads = {"input_ids": pad_token_id, "labels": IGNORE_INDEX, "attention_mask": 0, "mm_token_type_ids": 0}
    batch = {
        key: torch.stack([torch.nn.functional.pad(row[key], (0, width - len(row[key])), value=pad)
                          for row in rows])
        for key, pad in pads.items() if key in rows[0]
    }
    batch["pixel_values"] = torch.cat([row["pixel_values"] for row in rows])
    batch["image_grid_thw"] = torch.cat([row["image_grid_thw"] for row in rows])
    return batch


def rows_pack(rows: Sequence[dict[str, Any]], *, rope_index: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """One unpadded row (batch of 1) of the encoded ``rows`` concatenated, that keeps them apart.

    ``position_ids`` is ``(4, 1, tokens)``: row 0 the text positions, restarting at 0 with every page,
    which is how transformers tells packed sequences apart (a block-diagonal causal mask for SDPA, the
    variable-length kernel for FlashAttention 2); rows 1-3 each page's own multimodal rotary positions
    (``rope_index``, :func:`mrope_index`). There is no ``attention_mask``: given one, transformers would
    not look for packed sequences. The loss needs nothing more: a page's first label is -100 (its prompt),
    so no token learns to predict the next page.
    """
    import torch

    text = torch.cat([torch.arange(len(row["input_ids"])) for row in rows])
    spatial = torch.cat([rope_index(row) for row in rows], dim=1)
    batch = {key: torch.cat([row[key] for row in rows])[None]
             for key in ("input_ids", "labels", "mm_token_type_ids") if key in rows[0]}
    batch["position_ids"] = torch.cat([text[None], spatial])[:, None]
    batch["pixel_values"] = torch.cat([row["pixel_values"] for row in rows])
    batch["image_grid_thw"] = torch.cat([row["image_grid_thw"] for row in rows])
    return batch


def mrope_index(model) -> Callable[[dict[str, Any]], Any]:
    """The multimodal rotary positions of one encoded row, as ``model`` (Qwen2.5-VL, peft-wrapped or not)
    computes them for an unpacked batch: a function of the row (``input_ids`` and ``mm_token_type_ids``
    of shape ``(tokens,)``, ``image_grid_thw`` of shape ``(1, 3)``) returning a ``(3, tokens)`` tensor."""

    def positions(row: dict[str, Any]):
        types = row.get("mm_token_type_ids")
        return rope_positions(model, input_ids=row["input_ids"][None], image_grid_thw=row["image_grid_thw"],
                              mm_token_type_ids=None if types is None else types[None])[:, 0]

    return positions


class PageCollator:
    """Turns :class:`PageExample` lists into a padded training batch with the processor, and (given
    ``rope_index``) a list of one :class:`PagePack` into one packed row (:func:`rows_pack`).

    Per example: ``input_ids`` are the chat-templated prompt as the processor encodes it with the page
    (the image placeholder expanded to the page's visual tokens, exactly the engine's input), then the
    answer and ``<|im_end|>`` tokenised on their own; ``labels`` are -100 over the prompt and the ids
    over the answer. Batches of examples are padded (:func:`rows_pad`).
    """

    def __init__(self, *, processor, max_length: int,
                 rope_index: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.processor = processor
        self.max_length = max_length
        self.rope_index = rope_index
        image_processor = processor.image_processor
        self.factor = int(image_processor.patch_size) * int(image_processor.merge_size)
        self.patch_size = int(image_processor.patch_size)

    def prompt_text(self, prompt: str) -> str:
        return self.processor.apply_chat_template(user_turn(prompt), tokenize=False, add_generation_prompt=True)

    def answer_ids(self, answer: str) -> list[int]:
        return self.processor.tokenizer(answer + END_TOKEN, add_special_tokens=False)["input_ids"]

    def length(self, example: PageExample) -> int:
        """Tokens of the encoded example, from the text and the image's size alone (no image decoding):
        the one image placeholder becomes (width / 28) x (height / 28) visual tokens."""
        with Image.open(example.image_path) as image:
            width, height = image.size
        prompt = self.processor.tokenizer(self.prompt_text(example.prompt), add_special_tokens=False)["input_ids"]
        visual = (width // self.factor) * (height // self.factor)
        return len(prompt) - 1 + visual + len(self.answer_ids(example.answer))

    def encode(self, example: PageExample) -> dict[str, Any]:
        import torch

        with Image.open(example.image_path) as opened:
            image = opened.convert("RGB")
        encoded = self.processor(text=[self.prompt_text(example.prompt)], images=[image], return_tensors="pt")
        grid = encoded["image_grid_thw"][0].tolist()
        seen = (grid[2] * self.patch_size, grid[1] * self.patch_size)
        if seen != image.size:
            raise ConfigError(f"{example.image_path}: the processor resizes this {image.size} page to {seen}, "
                              "so the prompt's boxes would be off; min_pixels/max_pixels must be those the data "
                              "folder was made with")
        answer = torch.tensor(self.answer_ids(example.answer), dtype=torch.long)
        prompt_ids = encoded["input_ids"][0]
        row = {
            "input_ids": torch.cat([prompt_ids, answer]),
            "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), answer]),
            "attention_mask": torch.cat([encoded["attention_mask"][0], torch.ones_like(answer)]),
            "pixel_values": encoded["pixel_values"],
            "image_grid_thw": encoded["image_grid_thw"],
        }
        if "mm_token_type_ids" in encoded:  # transformers 5 marks image tokens (1) apart from text (0)
            row["mm_token_type_ids"] = torch.cat([encoded["mm_token_type_ids"][0], torch.zeros_like(answer)])
        if len(row["input_ids"]) > self.max_length:
            raise ConfigError(f"{example.image_path}: {len(row['input_ids'])} tokens > max_length {self.max_length}")
        return row

    def __call__(self, items: Sequence[PageExample] | Sequence[PagePack]) -> dict[str, Any]:
        if items and isinstance(items[0], PagePack):
            if len(items) != 1 or self.rope_index is None:
                raise ValueError("packed rows need a rope_index and come one a batch")
            return rows_pack([self.encode(example) for example in items[0].examples], rope_index=self.rope_index)
        rows = [self.encode(example) for example in items]
        return rows_pad(rows, pad_token_id=self.processor.tokenizer.pad_token_id)


def lengths_check(*, collator: PageCollator, datasets: dict[str, PageDataset]) -> None:
    """Refuse, before any training, examples longer than ``max_length`` (all of them named at once)."""
    too_long = [(split, example.image_path.name, length)
                for split, dataset in datasets.items()
                for example in dataset.examples
                if (length := collator.length(example)) > collator.max_length]
    if too_long:
        listing = ", ".join(f"{split}/{name} ({length})" for split, name, length in too_long[:10])
        raise ConfigError(f"{len(too_long)} page(s) exceed max_length {collator.max_length} tokens: {listing}; "
                          f"raise max_length to {max(length for *_, length in too_long)} or lower max_pixels "
                          "(and export the data again)")


# --------------------------------------------------------------------------------------------------
# Model


def processor_prepare(*, model_path: str, min_pixels: int, max_pixels: int):
    """The model's processor with the engine's resize bounds (as ``HfGenerator`` sets them)."""
    from ml.recognition.vlm import processor_load

    processor = processor_load(model_path=model_path)
    image_processor = processor.image_processor
    image_processor.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if hasattr(image_processor, name):  # transformers 4.x keeps them as attributes too
            setattr(image_processor, name, value)
    return processor


def attention_check(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of :data:`ATTENTION_IMPLEMENTATIONS` and usable here."""
    if name not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"attn_implementation {name!r}: expected one of {list(ATTENTION_IMPLEMENTATIONS)}")
    if name == "flash_attention_2":
        import torch

        if not torch.cuda.is_available() or importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("attn_implementation flash_attention_2 needs a CUDA GPU and the flash-attn package "
                              "(pip install flash-attn); use sdpa here")


def vision_no_grad(model) -> None:
    """Run the vision tower and its projector (Qwen2.5-VL's ``visual``) of ``model`` without autograd.

    They are frozen, yet activation checkpointing makes transformers hook every input embedding,
    the vision tower's patch embedding included, to output a tensor that requires grad; the whole tower
    would then be recorded, recomputed and back-propagated through (32 blocks over ~11,000 patches of
    an A4 page) for a gradient nothing uses. Under ``no_grad`` its output is a constant of the
    language model's graph, as it is without checkpointing."""
    import torch

    visual = base_model(model).model.visual
    forward = visual.forward

    @functools.wraps(forward)
    def frozen_forward(*args, **kwargs):
        with torch.no_grad():
            return forward(*args, **kwargs)

    visual.forward = frozen_forward


def lora_apply(model, config):
    """``model`` (a Qwen2.5-VL) as ``ml.train`` trains it: a fresh peft LoRA adapter on the language model's
    ``config.lora_targets`` (rank ``config.lora_rank``, ``config.alpha``, ``config.lora_dropout``), no KV
    cache, the vision tower without autograd (:func:`vision_no_grad`). Returns the peft model."""
    from peft import LoraConfig, get_peft_model

    # The KV cache is for generation: in training it only costs memory, and a forward pass with one
    # does not look for packed sequences. The language model reads its own config's flag.
    model.config.use_cache = False
    model.config.get_text_config().use_cache = False
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.alpha,
        lora_dropout=config.lora_dropout,
        # A regex, so that only the language model matches (the vision blocks have projections too).
        target_modules=rf".*language_model.*\.({'|'.join(config.lora_targets)})",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    vision_no_grad(peft_model)
    return peft_model


def lora_model(config, *, dtype, attn_implementation: str = "sdpa"):
    """The base model at ``config.model_path`` with the given attention kernel, through :func:`lora_apply`."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        config.model_path, local_files_only=True, attn_implementation=attn_implementation, **dtype_kwargs(dtype)
    )
    return lora_apply(model, config)


def checkpointing_set(model, enabled: bool) -> None:
    """Switch activation checkpointing of ``model``'s layers on or off, by the name the installed
    transformers uses (``gradient_checkpointing`` became ``activation_checkpointing``; the old name warns).
    Non-reentrant, which needs no gradient on the (frozen) inputs, unlike the reentrant one."""
    prefix = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    if enabled:
        getattr(model, f"{prefix}_checkpointing_enable")(**{f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}})
    else:
        getattr(model, f"{prefix}_checkpointing_disable")()


def answer_loss(model, batch: dict[str, Any]):
    """``(loss, outputs)`` of ``model`` on a collated ``batch`` (with ``labels``): the mean cross-entropy
    over the labelled tokens, the model's own causal-LM loss, with the language-model head applied only
    at the positions a label follows. An A4 page's ~3,300 prompt positions would otherwise each cost a
    vocabulary-sized row of logits (152,064 for the 7B) forward, backward and in memory for nothing.
    ``outputs.logits`` is ``(rows, kept positions, vocabulary)``."""
    import torch

    targets = batch["labels"][:, 1:]
    kept = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    outputs = model(**{key: value for key, value in batch.items() if key != "labels"}, logits_to_keep=kept)
    loss = torch.nn.functional.cross_entropy(outputs.logits.float().flatten(0, 1), targets[:, kept].flatten(),
                                             ignore_index=IGNORE_INDEX)
    return loss, outputs


def frozen_check(model) -> int:
    """Raise unless only LoRA weights outside the vision tower and projector train; returns their count.

    Qwen2.5-VL keeps both under a ``visual`` module (``visual.blocks``, ``visual.merger``)."""
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    visual = [name for name, _ in trainable if "visual" in name.split(".")]
    other = [name for name, _ in trainable if "lora_" not in name]
    if not trainable or visual or other:
        raise RuntimeError(f"expected only LoRA weights of the language model to train; trainable under visual: "
                           f"{visual[:5]}, not LoRA: {other[:5]}, trainable in all: {len(trainable)}")
    return sum(parameter.numel() for _, parameter in trainable)


def _dtype():
    """bf16 where CUDA supports it, else float32 (float16 training would need loss scaling)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


# --------------------------------------------------------------------------------------------------
# Loss curve


def loss_curve_draw(*, history: Sequence[dict], path: Path, size: tuple[int, int] = (900, 520)) -> Path:
    """A PNG of train loss (``loss``) and eval loss (``eval_loss``) by ``step`` from Trainer's log
    history. Drawn with PIL (already a dependency) rather than matplotlib; returns ``path``."""
    series = {
        "train": [(entry["step"], entry["loss"]) for entry in history if "loss" in entry],
        "eval": [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry],
    }
    colours = {"train": (31, 119, 180), "eval": (255, 127, 14)}
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    points = [point for values in series.values() for point in values]
    steps = [step for step, _ in points] or [0]
    losses = [loss for _, loss in points] or [0.0]
    low_step, high_step = min(steps), max(max(steps), min(steps) + 1)
    low, high = min(losses), max(losses)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5

    def xy(step: float, loss: float) -> tuple[float, float]:
        x = left + (step - low_step) / (high_step - low_step) * (width - left - right)
        y = top + (high - loss) / (high - low) * (height - top - bottom)
        return x, y

    draw.rectangle((left, top, width - right, height - bottom), outline="black")
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        loss = low + fraction * (high - low)
        _, y = xy(low_step, loss)
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((5, y - 6), f"{loss:.3g}", fill="black", font=font)
        step = low_step + fraction * (high_step - low_step)
        x, _ = xy(step, low)
        draw.line((x, height - bottom, x, height - bottom + 4), fill="black")
        draw.text((x - 10, height - bottom + 8), f"{step:.0f}", fill="black", font=font)
    draw.text((width // 2 - 15, height - 20), "step", fill="black", font=font)
    draw.text((left, 12), "loss", fill="black", font=font)
    for number, (name, values) in enumerate(series.items()):
        colour = colours[name]
        line = [xy(step, loss) for step, loss in values]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        legend_x = width - right - 160 + number * 80
        draw.line((legend_x, 18, legend_x + 20, 18), fill=colour, width=3)
        draw.text((legend_x + 25, 12), name, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


# --------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainSummary:
    """What a run did. Steps are optimiser steps; ``first_step`` is where this run started (0, or the
    resumed checkpoint's step). Losses are ``(step, loss)`` pairs of the whole run, resumed part included."""

    out: Path
    adapter: Path
    loss_curve: Path
    first_step: int
    global_step: int
    best_checkpoint: str | None
    best_eval_loss: float | None
    trainable_parameters: int
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    tensorboard: bool = False


def _warmup_steps(config: TrainConfig, *, train_items: int) -> int:
    """Warm-up as a step count (works with every transformers version, unlike a ratio); ``train_items``
    are the training dataset's items (pages, or packs when packing)."""
    if config.max_steps > 0:
        total = config.max_steps
    else:
        batches = math.ceil(train_items / config.batch_size)
        total = math.ceil(config.epochs * math.ceil(batches / config.gradient_accumulation_steps))
    return math.ceil(config.warmup_ratio * total)


def train(config: TrainConfig, *, resume: bool = False) -> TrainSummary:
    """Run one training, or continue the last checkpoint in ``config.out`` with ``resume``; see the module docstring."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
    from transformers.integrations import is_tensorboard_available
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config.out)
    folder = Path(config.data)
    if not Path(config.model_path).is_dir():
        raise ConfigError(f"model_path {config.model_path} is not a directory (a local model: nothing is downloaded)")
    attention_check(config.attn_implementation)
    if config.packing and config.batch_size != 1:
        raise ConfigError(f"packing trains one row of up to max_length tokens a step: set batch_size 1, not "
                          f"{config.batch_size} (raise max_length for more pages a row)")
    checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {out}")
    if not resume and checkpoint is not None:
        raise ConfigError(f"{out} already holds {Path(checkpoint).name}: continue it with --resume, or use another out")
    datasets = {split: PageDataset(folder=folder, split=split) for split in ("train", "val")}
    for split, dataset in datasets.items():
        if not len(dataset):
            # Without validation pages there is no eval loss to pick the best checkpoint by.
            raise ConfigError(f"{folder / (split + '.json')} has no page record")
    processor = processor_prepare(model_path=config.model_path, min_pixels=config.min_pixels,
                                  max_pixels=config.max_pixels)
    collator = PageCollator(processor=processor, max_length=config.max_length)
    lengths_check(collator=collator, datasets=datasets)
    train_items: Sequence[PageExample] | Sequence[PagePack] = datasets["train"]
    if config.packing:
        examples = datasets["train"].examples
        train_items = packs_build(examples, lengths=[collator.length(example) for example in examples],
                                  max_length=config.max_length, seed=config.seed)
        logger.info("packing: %d training pages in %d rows of at most %d tokens", len(examples),
                    len(train_items), config.max_length)

    set_seed(config.seed)  # before the adapter is made, so its initial A matrices are reproducible
    dtype = _dtype()
    model = lora_model(config, dtype=dtype, attn_implementation=config.attn_implementation)
    checkpointing_set(model, config.gradient_checkpointing)
    trainable = frozen_check(model)
    collator.rope_index = mrope_index(model)
    tensorboard = is_tensorboard_available()
    if not tensorboard:
        logger.warning("tensorboard is not installed: no TensorBoard logs (the loss curve is still drawn)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.yaml").write_text(config_dump(config))
    arguments = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=_warmup_steps(config, train_items=len(train_items)),
        weight_decay=config.weight_decay,
        bf16=dtype == torch.bfloat16,
        dataloader_pin_memory=torch.cuda.is_available(),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        # Eval needs only the loss: gathering logits would hold pages x tokens x 152k vocabulary floats.
        prediction_loss_only=True,
        # peft's model class hides the forward signature Trainer reads the label names from.
        label_names=["labels"],
        remove_unused_columns=False,  # the collator gets PageExample objects, not columns
        report_to=["tensorboard"] if tensorboard else "none",
        seed=config.seed,
    )
    curve = out / LOSS_CURVE

    class Progress(TrainerCallback):
        """Records the step the run starts at and redraws the loss curve after every evaluation."""

        first_step = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.first_step = state.global_step
            if state.global_step:
                logger.warning("resuming at step %d of %d", state.global_step, state.max_steps)

        def on_evaluate(self, args, state, control, **kwargs):
            loss_curve_draw(history=state.log_history, path=curve)

    class AnswerLossTrainer(Trainer):
        """Trainer with :func:`answer_loss`: logits only where the loss needs them."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = answer_loss(model, inputs)
            return (loss, outputs) if return_outputs else loss

    progress = Progress()
    trainer = AnswerLossTrainer(
        model=model,
        args=arguments,
        train_dataset=train_items,
        eval_dataset=datasets["val"],
        data_collator=collator,
        callbacks=[progress],
    )
    trainer.train(resume_from_checkpoint=checkpoint if resume else None)
    adapter = out / ADAPTER_DIR
    trainer.model.save_pretrained(adapter)  # the best adapter: load_best_model_at_end reloaded it
    processor.save_pretrained(adapter)
    state = trainer.state
    loss_curve_draw(history=state.log_history, path=curve)
    return TrainSummary(
        out=out,
        adapter=adapter,
        loss_curve=curve,
        first_step=progress.first_step,
        global_step=state.global_step,
        best_checkpoint=state.best_model_checkpoint,
        best_eval_loss=state.best_metric,
        trainable_parameters=trainable,
        train_losses=[(entry["step"], entry["loss"]) for entry in state.log_history if "loss" in entry],
        eval_losses=[(entry["step"], entry["eval_loss"]) for entry in state.log_history if "eval_loss" in entry],
        tensorboard=tensorboard,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML settings (ml/configs/qwen2_5_vl_lora.yaml: few "
                        "pages; qwen2_5_vl_lora_medium.yaml: a hundred or more)")
    parser.add_argument("--data", help="data folder (overrides the config's data)")
    parser.add_argument("--out", help="output folder (overrides the config's out)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = config_load(args.config, data=args.data, out=args.out)
        summary = train(config, resume=args.resume)
    except (ConfigError, OSError) as error:  # OSError: a missing model, data or output folder
        print(f"error: {error}", file=sys.stderr)
        return 2
    best = f"{summary.best_eval_loss:.4f}" if summary.best_eval_loss is not None else "n/a"
    print(f"trained steps {summary.first_step}..{summary.global_step}; best eval loss {best} "
          f"({summary.best_checkpoint}); {summary.trainable_parameters} trainable parameters")
    print(f"adapter: {summary.adapter}\nloss curve: {summary.loss_curve}")
    if not summary.tensorboard:
        print("note: tensorboard is not installed, so no TensorBoard logs were written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
