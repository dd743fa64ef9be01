"""Rubric scoring with written feedback (seed 003): Qwen2.5-VL reads a student's answer against a rubric,
a regression head scores every dimension, and the same pass writes the critique.

**Rubric.** Dimensions, each with ``max_points`` and level descriptors (``points``, ``label`` such as
"exceptional" or "fair", ``description``); the answer's score is the sum of its dimension scores.

**Data** (a folder ``manage.py training_data_export`` writes, beside the reader's records of
``ml.training_data``)::

    rubric/train.jsonl, rubric/val.jsonl, rubric/test.jsonl
        one rubric-scored answer a line:
        {"image": "rubric/train/a123.png", "question": "Q5", "script": "e3-s12",
         "task": "Explain why we have seasons.",
         "rubric": {"name": "Explain", "dimensions": [
             {"name": "Content", "max_points": 4, "levels": [
                 {"points": 4, "label": "exceptional", "description": "every cause, each explained"},
                 {"points": 2, "label": "fair", "description": "one cause, partly explained"}]},
             ...]},
         "scores": [3, 2, 1.5],                      # one a dimension, in the rubric's order
         "feedback": "You name the tilt but ..."}    # the teacher's comment to the student
    rubric/*/*.png
        the answer's image: its box cropped from the scan (pixels at 150 dpi), or the whole page when
        the answer has no box of its own; the processor scales it into ``min_pixels..max_pixels``

**Prompt.** The system turn holds the rubric and the task (:func:`system_prompt`), the user turn the
image and :data:`USER_PROMPT`; the assistant turn starts with one line per dimension,
``"Content: [SCORING]"`` (:func:`scoring_prefix`), and then the feedback and ``<|im_end|>``. The
``[SCORING]`` token (:data:`SCORE_TOKEN`, added to the tokenizer) is given, never generated: the final
hidden state (after the language model's last norm) at each one goes through the regression head
(:class:`ScoreHead`, linear, then a sigmoid) to that dimension's fraction of its ``max_points``. One
token per dimension, rather than seed 003's one token for five fixed dimensions, lets one model score
rubrics of any shape: each token sees its dimension's name and the rubric above it.

**Model folder** (what ``python -m ml.train_rubric`` writes and :func:`rubric_model_load` reads)::

    adapter_config.json, adapter_model.safetensors  the peft LoRA adapter (attention and MLP)
    head.safetensors                                the regression head
    tokenizer*, *processor*, chat_template*         the processor, with [SCORING] added
    rubric_model.json                               the card: {"base_model": ..., "score_token": ...,
                                                    "config": {...}, "history": [...]}

Nothing here imports Django.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

SCORE_TOKEN = "[SCORING]"
FEEDBACK_LABEL = "Feedback:"
USER_PROMPT = "Score this answer on every dimension of the rubric, then write feedback to the student."
RUBRIC_DIR = "rubric"
HEAD_FILE = "head.safetensors"
CARD_FILE = "rubric_model.json"


class RubricError(ValueError):
    """A rubric, a record or a saved model cannot be used as given."""


# --------------------------------------------------------------------------------------------------
# Rubrics and records


@dataclass(frozen=True)
class RubricLevel:
    """A level descriptor: what an answer worth ``points`` on the dimension looks like."""

    points: float
    label: str
    description: str = ""


@dataclass(frozen=True)
class RubricDimension:
    name: str
    max_points: float
    levels: tuple[RubricLevel, ...] = ()


@dataclass(frozen=True)
class Rubric:
    name: str
    dimensions: tuple[RubricDimension, ...]

    @property
    def max_points(self) -> float:
        return sum(dimension.max_points for dimension in self.dimensions)


def rubric_from_dict(data: Any) -> Rubric:
    """A :class:`Rubric` from its JSON form (see the module docstring); raises RubricError on another
    shape, on no dimension, on a dimension's max_points <= 0 or a level outside 0..max_points."""
    try:
        dimensions = tuple(
            RubricDimension(
                name=str(item["name"]).strip(),
                max_points=float(item["max_points"]),
                levels=tuple(RubricLevel(points=float(level["points"]), label=str(level["label"]).strip(),
                                         description=str(level.get("description", "")).strip())
                             for level in item.get("levels", ())),
            )
            for item in data["dimensions"]
        )
        rubric = Rubric(name=str(data.get("name", "")).strip(), dimensions=dimensions)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise RubricError(f"not a rubric ({error!r}): {json.dumps(data, default=str)[:200]}") from None
    rubric_check(rubric)
    return rubric


def rubric_check(rubric: Rubric) -> None:
    if not rubric.dimensions:
        raise RubricError(f"rubric {rubric.name!r} has no dimension")
    names = [dimension.name for dimension in rubric.dimensions]
    if "" in names or len(set(names)) != len(names):
        raise RubricError(f"rubric {rubric.name!r}: dimension names must be given and distinct, got {names}")
    for dimension in rubric.dimensions:
        if not (math.isfinite(dimension.max_points) and dimension.max_points > 0):
            raise RubricError(f"{dimension.name}: max_points must be > 0, got {dimension.max_points}")
        for level in dimension.levels:
            if not 0 <= level.points <= dimension.max_points:
                raise RubricError(f"{dimension.name}: level {level.label!r} has {level.points} points, "
                                  f"outside 0..{dimension.max_points:g}")


def rubric_to_dict(rubric: Rubric) -> dict:
    return {"name": rubric.name, "dimensions": [
        {"name": dimension.name, "max_points": dimension.max_points,
         "levels": [{"points": level.points, "label": level.label, "description": level.description}
                    for level in dimension.levels]}
        for dimension in rubric.dimensions]}


@dataclass(frozen=True)
class RubricRecord:
    """One rubric-scored answer; ``image`` is relative to the data folder (see the module docstring)."""

    image: str
    rubric: Rubric
    scores: tuple[float, ...]
    feedback: str
    task: str = ""
    question: str = ""
    script: str = ""


def rubric_record_line(record: RubricRecord) -> str:
    """The JSON line of one record (``rubric/<split>.jsonl``)."""
    return json.dumps({"image": record.image, "question": record.question, "script": record.script,
                       "task": record.task, "rubric": rubric_to_dict(record.rubric),
                       "scores": list(record.scores), "feedback": record.feedback}, ensure_ascii=False)


def rubric_record_parse(line: str) -> RubricRecord:
    """One record from its JSON line; raises RubricError on another shape or scores out of range."""
    try:
        data = json.loads(line)
        record = RubricRecord(image=str(data["image"]), rubric=rubric_from_dict(data["rubric"]),
                              scores=tuple(float(score) for score in data["scores"]),
                              feedback=str(data.get("feedback") or ""), task=str(data.get("task") or ""),
                              question=str(data.get("question") or ""), script=str(data.get("script") or ""))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        if isinstance(error, RubricError):
            raise
        raise RubricError(f"not a rubric record ({error!r}): {line[:200]}") from None
    dimensions = record.rubric.dimensions
    if len(record.scores) != len(dimensions):
        raise RubricError(f"{record.image}: {len(record.scores)} scores for {len(dimensions)} dimensions")
    for score, dimension in zip(record.scores, dimensions, strict=True):
        if not 0 <= score <= dimension.max_points:
            raise RubricError(f"{record.image}: {dimension.name} scored {score}, outside 0..{dimension.max_points:g}")
    return record


def rubric_records_load(*, folder: Path, split: str) -> list[RubricRecord]:
    """The records of one split (``[]`` when the folder has none); raises RubricError naming the line."""
    path = Path(folder) / RUBRIC_DIR / f"{split}.jsonl"
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(rubric_record_parse(line))
            except RubricError as error:
                raise RubricError(f"{path}:{number}: {error}") from None
    return records


# --------------------------------------------------------------------------------------------------
# Prompt


def _points(value: float) -> str:
    return f"{value:g}"


def system_prompt(*, rubric: Rubric, task: str = "") -> str:
    """The system turn: the task (when there is one) and the rubric with its level descriptors."""
    lines = ["You are a teacher marking a student's handwritten answer, shown in the image, against a rubric."]
    if task.strip():
        lines += ["", f"Task: {task.strip()}"]
    lines += ["", f"Rubric{' ' + repr(rubric.name) if rubric.name else ''} ({_points(rubric.max_points)} points):"]
    for number, dimension in enumerate(rubric.dimensions, start=1):
        lines.append(f"{number}. {dimension.name} (0-{_points(dimension.max_points)} points)")
        for level in sorted(dimension.levels, key=lambda level: -level.points):
            description = f": {level.description}" if level.description else ""
            lines.append(f"   {_points(level.points)} {level.label}{description}")
    lines += ["", "Score every dimension, then write the student short feedback that explains the scores "
              "in the rubric's words."]
    return "\n".join(lines)


def scoring_prefix(rubric: Rubric) -> str:
    """The start of the assistant turn: a score token per dimension, then the feedback label."""
    return "".join(f"{dimension.name}: {SCORE_TOKEN}\n" for dimension in rubric.dimensions) + FEEDBACK_LABEL + " "


def prompt_text(*, processor, rubric: Rubric, task: str = "") -> str:
    """Everything before the feedback, as text for the processor (one image placeholder)."""
    messages = [
        {"role": "system", "content": system_prompt(rubric=rubric, task=task)},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": USER_PROMPT}]},
    ]
    chat = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return chat + scoring_prefix(rubric)


def score_token_add(*, processor, model) -> int:
    """Add :data:`SCORE_TOKEN` to the processor's tokenizer (no-op when it has it) and give it a row in
    ``model``'s input embeddings; returns its id.

    The row is set to the mean of the tokenizer's other rows, the same on every load of the same base
    model, so nothing about the token needs saving: the LoRA and the head learn around it. The real
    Qwen2.5-VL has spare embedding rows past its tokenizer, so it is resized only when it has none."""
    import torch

    tokenizer = processor.tokenizer
    tokenizer.add_tokens([SCORE_TOKEN], special_tokens=True)
    token_id = tokenizer.convert_tokens_to_ids(SCORE_TOKEN)
    if model.get_input_embeddings().weight.shape[0] <= token_id:
        model.resize_token_embeddings(token_id + 1, mean_resizing=False)
    # The output row too when resizing made one (random otherwise); generation suppresses the token anyway.
    rows = {model.get_input_embeddings().weight, model.get_output_embeddings().weight}
    with torch.no_grad():
        for weight in rows:
            weight[token_id] = weight[:token_id].float().mean(dim=0).to(weight.dtype)
            weight.requires_grad_(False)  # resizing makes new, trainable embeddings; both stay frozen
    return token_id


# --------------------------------------------------------------------------------------------------
# Encoding


@dataclass(frozen=True)
class RubricInput:
    """What the model is asked: ``image`` (the crop or page, any size), the rubric, the task."""

    image: Image.Image
    rubric: Rubric
    task: str = ""


def image_open(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return opened.convert("RGB")


class RubricCollator:
    """Records -> a right-padded training batch: ``input_ids``, ``labels`` (-100 but on the feedback and
    ``<|im_end|>``), ``attention_mask``, ``pixel_values``, ``image_grid_thw``, and the score targets as
    ``score_rows`` / ``score_cols`` (where each score token is) and ``score_targets`` (the teacher's
    score over the dimension's max_points, 0..1)."""

    def __init__(self, *, processor, folder: Path, max_length: int) -> None:
        self.processor = processor
        self.folder = Path(folder)
        self.max_length = max_length
        self.score_id = processor.tokenizer.convert_tokens_to_ids(SCORE_TOKEN)
        processor.tokenizer.padding_side = "left"  # batched generation continues every row at its end

    def encode(self, record: RubricRecord) -> dict[str, Any]:
        import torch

        from ml.train import END_TOKEN, IGNORE_INDEX

        image = image_open(self.folder / record.image)
        text = prompt_text(processor=self.processor, rubric=record.rubric, task=record.task)
        encoded = self.processor(text=[text], images=[image], return_tensors="pt")
        feedback = torch.tensor(self.processor.tokenizer(record.feedback + END_TOKEN, add_special_tokens=False)
                                ["input_ids"], dtype=torch.long)
        prompt_ids = encoded["input_ids"][0]
        row = {
            "input_ids": torch.cat([prompt_ids, feedback]),
            "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), feedback]),
            "attention_mask": torch.cat([encoded["attention_mask"][0], torch.ones_like(feedback)]),
            "pixel_values": encoded["pixel_values"],
            "image_grid_thw": encoded["image_grid_thw"],
        }
        if "mm_token_type_ids" in encoded:  # transformers 5 marks image tokens (1) apart from text (0)
            row["mm_token_type_ids"] = torch.cat([encoded["mm_token_type_ids"][0], torch.zeros_like(feedback)])
        if len(row["input_ids"]) > self.max_length:
            raise RubricError(f"{record.image}: {len(row['input_ids'])} tokens > max_length {self.max_length}")
        positions = (prompt_ids == self.score_id).nonzero().flatten()
        if len(positions) != len(record.rubric.dimensions):
            raise RubricError(f"{record.image}: a dimension name or the task holds {SCORE_TOKEN}")
        row["score_cols"] = positions
        row["score_targets"] = torch.tensor([score / dimension.max_points for score, dimension
                                             in zip(record.scores, record.rubric.dimensions, strict=True)])
        return row

    def __call__(self, records: Sequence[RubricRecord]) -> dict[str, Any]:
        import torch

        from ml.train import IGNORE_INDEX

        rows = [self.encode(record) for record in records]
        width = max(len(row["input_ids"]) for row in rows)
        pads = {"input_ids": self.processor.tokenizer.pad_token_id, "labels": IGNORE_INDEX,
                "attention_mask": 0, "mm_token_type_ids": 0}
        batch = {key: torch.stack([torch.nn.functional.pad(row[key], (0, width - len(row[key])), value=pad)
                                   for row in rows])
                 for key, pad in pads.items() if key in rows[0]}
        batch["pixel_values"] = torch.cat([row["pixel_values"] for row in rows])
        batch["image_grid_thw"] = torch.cat([row["image_grid_thw"] for row in rows])
        batch["score_rows"] = torch.cat([torch.full_like(row["score_cols"], number) for number, row in enumerate(rows)])
        batch["score_cols"] = torch.cat([row["score_cols"] for row in rows])
        batch["score_targets"] = torch.cat([row["score_targets"] for row in rows])
        return batch


# --------------------------------------------------------------------------------------------------
# Model


def score_head_build(hidden_size: int):
    """The regression head: final hidden state -> the dimension's fraction of its max_points (0..1).

    A linear map and a sigmoid, in float32 whatever the model's dtype: the sigmoid keeps every
    prediction in range, and one shared map serves every dimension because each score token's hidden
    state already carries its dimension (its name and the rubric are in its context)."""
    import torch

    class ScoreHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(hidden_size, 1)

        def forward(self, hidden):
            return torch.sigmoid(self.linear(hidden.float())).squeeze(-1)

    return ScoreHead()


def _final_norm(model):
    """The language model's last norm: its output is the final hidden state the LM head reads."""
    matches = [module for name, module in model.named_modules() if name.endswith("language_model.norm")]
    if len(matches) != 1:
        raise RubricError(f"expected one language_model.norm in the model, found {len(matches)}")
    return matches[0]


@contextmanager
def final_hidden_capture(model) -> Iterator[list]:
    """Collects the final hidden states of every forward pass run inside (``[batch, tokens, hidden]``;
    during ``generate`` the first is the whole prompt's), without asking the model for all its layers'."""
    captured: list = []
    handle = _final_norm(model).register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        yield captured
    finally:
        handle.remove()


def joint_loss(*, model, head, batch: dict, score_weight: float):
    """(total, cross-entropy on the feedback, L1 on the score fractions) of one batch; seed 003's
    objective, the L1 weighted by ``score_weight``."""
    inputs = {key: value for key, value in batch.items() if not key.startswith("score_")}
    with final_hidden_capture(model) as captured:
        out = model(**inputs)
    hidden = captured[-1][batch["score_rows"], batch["score_cols"]]
    predicted = head(hidden)
    l1 = (predicted - batch["score_targets"].to(predicted.device)).abs().mean()
    ce = out.loss.float()
    return ce + score_weight * l1, ce, l1


@dataclass(frozen=True)
class RubricPrediction:
    """Per-dimension scores (points, each in 0..max_points, in the rubric's order) and the feedback."""

    scores: tuple[float, ...]
    feedback: str

    @property
    def total(self) -> float:
        return sum(self.scores)


class RubricModel:
    """A trained rubric model (base Qwen2.5-VL + adapter + head), loaded once; see :func:`rubric_model_load`."""

    def __init__(self, *, model, head, processor, device: str, max_new_tokens: int, card: dict) -> None:
        self.model = model
        self.head = head
        self.processor = processor
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.card = card
        self.score_id = processor.tokenizer.convert_tokens_to_ids(SCORE_TOKEN)
        processor.tokenizer.padding_side = "left"  # batched generation continues every row at its end

    def predict(self, item: RubricInput) -> RubricPrediction:
        """Scores and feedback for one answer (:meth:`predict_batch` of one)."""
        return self.predict_batch([item])[0]

    def predict_batch(self, items: Sequence[RubricInput]) -> list[RubricPrediction]:
        """Scores and feedback for several answers (any rubrics), in one generation: the head reads each
        prompt's score tokens from the same forward pass that starts generating the feedback (greedy,
        reproducible; prompts padded on the left so every row continues at its end)."""
        import torch

        if not items:
            return []
        for item in items:
            rubric_check(item.rubric)
        texts = [prompt_text(processor=self.processor, rubric=item.rubric, task=item.task) for item in items]
        inputs = self.processor(text=texts, images=[item.image.convert("RGB") for item in items], padding=True,
                                return_tensors="pt").to(self.device)
        tokenizer = self.processor.tokenizer
        stops = [token for token in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
                 if token is not None]
        with torch.inference_mode(), final_hidden_capture(self.model) as captured:
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, top_p=None, top_k=None,
                temperature=None, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
                suppress_tokens=[self.score_id],
            )
            rows, cols = (inputs["input_ids"] == self.score_id).nonzero(as_tuple=True)
            fractions = self.head(captured[0][rows, cols]).cpu().tolist()
        rows = rows.tolist()
        predictions = []
        for number, item in enumerate(items):
            mine = [fraction for row, fraction in zip(rows, fractions, strict=True) if row == number]
            if len(mine) != len(item.rubric.dimensions):
                raise RubricError(f"a dimension name or the task holds {SCORE_TOKEN}")
            generated = out[number, inputs["input_ids"].shape[1]:].tolist()
            feedback = tokenizer.decode(generated, skip_special_tokens=True).strip()
            scores = tuple(round(min(max(fraction, 0.0), 1.0) * dimension.max_points, 2)
                           for fraction, dimension in zip(mine, item.rubric.dimensions, strict=True))
            predictions.append(RubricPrediction(scores=scores, feedback=feedback))
        return predictions


def head_save(*, head, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({name: tensor.detach().float().cpu().contiguous() for name, tensor in head.state_dict().items()},
              str(path))


def rubric_model_load(*, path: Path | str, base_model_path: str | None = None, device: str = "auto",
                      dtype: str = "auto", max_new_tokens: int | None = None) -> RubricModel:
    """The model ``python -m ml.train_rubric`` saved in ``path``: its card's base model (or
    ``base_model_path``, for a base that has moved) with the adapter and the head. ``device``/``dtype``
    as ``VlmConfig``'s. Raises RubricError when ``path`` is not a rubric model folder."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ml.recognition.vlm import _device_resolve, _dtype_resolve, dtype_kwargs
    from ml.train import processor_prepare

    path = Path(path)
    card_path = path / CARD_FILE
    if not card_path.is_file() or not (path / HEAD_FILE).is_file():
        raise RubricError(f"{path} holds no {CARD_FILE} and {HEAD_FILE}: not a rubric model folder")
    card = json.loads(card_path.read_text())
    config = card["config"]
    base = base_model_path or card["base_model"]
    if not Path(base).is_dir():
        raise RubricError(f"base model {base} is not a directory (a local model: nothing is downloaded)")
    device = _device_resolve(device)
    torch_dtype = _dtype_resolve(dtype, device)
    processor = processor_prepare(model_path=str(path), min_pixels=config["min_pixels"],
                                  max_pixels=config["max_pixels"])
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base, local_files_only=True,
                                                               **dtype_kwargs(torch_dtype))
    score_token_add(processor=processor, model=model)
    model = PeftModel.from_pretrained(model, str(path), is_trainable=False).to(device).eval()
    head = score_head_build(card["hidden_size"])
    head.load_state_dict(load_file(str(path / HEAD_FILE)))
    head = head.to(device).eval()
    return RubricModel(model=model, head=head, processor=processor, device=device,
                       max_new_tokens=max_new_tokens or config["max_new_tokens"], card=card)
