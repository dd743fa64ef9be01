"""Train the rubric model (seed 003): Qwen2.5-VL with LoRA on the language model's attention and MLP and a
regression head on each ``[SCORING]`` token, jointly on the dimension scores (L1) and the teacher's
feedback (cross-entropy). See ``ml.rubric`` for the data, the prompt and the model folder.

    python -m ml.train_rubric --config ml/configs/rubric_lora.yaml [--data DIR] [--out DIR]

Reads ``rubric/train.jsonl`` to train on and ``rubric/val.jsonl`` to keep the best epoch by (its joint
loss; without validation records the last epoch is kept), shows a progress bar, and writes the model
folder to ``out``. bf16 on CUDA, float32 otherwise. Nothing here imports Django or downloads anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ml.recognition.vlm import DEFAULT_MIN_PIXELS
from ml.rubric import (
    CARD_FILE,
    HEAD_FILE,
    RubricCollator,
    RubricError,
    RubricRecord,
    head_save,
    joint_loss,
    rubric_records_load,
    score_head_build,
    score_token_add,
)
from ml.train import ConfigError, checkpointing_set, frozen_check, lora_model, processor_prepare, settings_load

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RubricTrainConfig:
    """One training run, as read from YAML (every key is a field name; see ``ml/configs/rubric_lora.yaml``).

    ``model_path``: local directory of the base Qwen2.5-VL (Instruct) with its processor. ``data``: a
    data folder holding ``rubric/*.jsonl``. ``out``: the model folder to write.

    LoRA: ``lora_rank``, ``lora_alpha`` (None: twice the rank), ``lora_dropout``, ``lora_targets``
    (projection names, matched in the language model only: attention and MLP, as seed 003). The head is
    trained whole. Loss: cross-entropy on the feedback + ``score_weight`` x L1 on the score fractions.
    Schedule: ``epochs`` over the records in batches of ``batch_size`` with ``gradient_accumulation_steps``
    batches per optimiser step; AdamW at ``learning_rate`` for the LoRA weights and ``head_learning_rate``
    for the head (it starts from random), ``lr_scheduler`` (a transformers name) after ``warmup_ratio``
    of the steps; gradients clipped to ``max_grad_norm``. ``max_length``: the most tokens an example may
    have (a longer one is refused before training). ``min_pixels``/``max_pixels`` bound the image's area.
    ``max_new_tokens``: the longest feedback inference writes. ``max_steps`` > 0 stops after that many
    optimiser steps (smoke runs).
    """

    model_path: str
    data: str = "training_data"
    out: str = "runs/rubric_lora"
    lora_rank: int = 8
    lora_alpha: int | None = None
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    score_weight: float = 1.0
    epochs: int = 5
    batch_size: int = 1
    gradient_accumulation_steps: int = 4
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 4096
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = 1280 * 28 * 28
    max_new_tokens: int = 256
    gradient_checkpointing: bool = True
    max_steps: int = -1
    seed: int = 42

    @property
    def alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank

    def __post_init__(self) -> None:
        if min(self.lora_rank, self.epochs, self.batch_size, self.gradient_accumulation_steps,
               self.max_length, self.max_new_tokens) < 1:
            raise ConfigError("lora_rank, epochs, batch_size, gradient_accumulation_steps, max_length and "
                              "max_new_tokens must be >= 1")
        if not (self.learning_rate > 0 and self.head_learning_rate > 0 and self.score_weight >= 0):
            raise ConfigError("learning rates must be > 0 and score_weight >= 0")


def rubric_config_load(path: Path | str, **overrides: Any) -> RubricTrainConfig:
    return settings_load(RubricTrainConfig, path, **overrides)


@dataclass
class EpochLosses:
    """Mean losses of one epoch: cross-entropy on the feedback, L1 on the score fractions (0..1)."""

    epoch: int
    train_ce: float
    train_l1: float
    val_ce: float | None = None
    val_l1: float | None = None


@dataclass
class RubricTrainSummary:
    out: Path
    best_epoch: int
    steps: int
    trainable_parameters: int
    history: list[EpochLosses] = field(default_factory=list)


def _device_and_dtype():
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return "cpu", torch.float32


def _batches(records: list[RubricRecord], size: int) -> list[list[RubricRecord]]:
    return [records[start:start + size] for start in range(0, len(records), size)]


def _to(batch: dict, device: str) -> dict:
    return {key: value.to(device) for key, value in batch.items()}


def losses_measure(*, model, head, collator: RubricCollator, records: list[RubricRecord], config: RubricTrainConfig,
                   device: str) -> tuple[float, float]:
    """Mean (cross-entropy, L1) over ``records`` without training."""
    import torch

    model.eval()
    head.eval()
    ce_sum = l1_sum = 0.0
    with torch.no_grad():
        for batch in _batches(records, config.batch_size):
            _, ce, l1 = joint_loss(model=model, head=head, batch=_to(collator(batch), device),
                                   score_weight=config.score_weight)
            ce_sum += ce.item() * len(batch)
            l1_sum += l1.item() * len(batch)
    return ce_sum / len(records), l1_sum / len(records)


def rubric_train(config: RubricTrainConfig, *, progress: bool = False) -> RubricTrainSummary:
    """Train, keep the epoch with the lowest joint validation loss and save the model folder; see the module doc."""
    import torch
    from tqdm import tqdm
    from transformers import get_scheduler, set_seed

    folder = Path(config.data)
    if not Path(config.model_path).is_dir():
        raise ConfigError(f"model_path {config.model_path} is not a directory (a local model: nothing is downloaded)")
    train = rubric_records_load(folder=folder, split="train")
    val = rubric_records_load(folder=folder, split="val")
    if not train:
        raise ConfigError(f"{folder / 'rubric' / 'train.jsonl'} has no rubric-scored answer")
    device, dtype = _device_and_dtype()
    processor = processor_prepare(model_path=config.model_path, min_pixels=config.min_pixels,
                                  max_pixels=config.max_pixels)
    set_seed(config.seed)
    model = lora_model(config, dtype=dtype)
    score_token_add(processor=processor, model=model)
    trainable = frozen_check(model)
    hidden_size = model.get_input_embeddings().weight.shape[1]
    head = score_head_build(hidden_size)
    model.to(device)
    head.to(device)
    checkpointing_set(model, config.gradient_checkpointing)
    collator = RubricCollator(processor=processor, folder=folder, max_length=config.max_length)
    for record in train + val:  # refuse a too long or malformed example before any training
        collator.encode(record)

    lora = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW([{"params": lora, "lr": config.learning_rate},
                                   {"params": list(head.parameters()), "lr": config.head_learning_rate}],
                                  weight_decay=config.weight_decay)
    per_epoch = math.ceil(math.ceil(len(train) / config.batch_size) / config.gradient_accumulation_steps)
    steps = config.max_steps if config.max_steps > 0 else per_epoch * config.epochs
    schedule = get_scheduler(config.lr_scheduler, optimiser, num_warmup_steps=math.ceil(config.warmup_ratio * steps),
                             num_training_steps=steps)
    rng = random.Random(config.seed)
    history: list[EpochLosses] = []
    best_loss, best_epoch, best_state = math.inf, 0, {}
    step = 0
    bar = tqdm(total=steps, desc="train", unit="step", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        model.train()
        head.train()
        batches = _batches(rng.sample(train, len(train)), config.batch_size)
        ce_sum = l1_sum = 0.0
        for number, batch in enumerate(batches, start=1):
            loss, ce, l1 = joint_loss(model=model, head=head, batch=_to(collator(batch), device),
                                      score_weight=config.score_weight)
            (loss / config.gradient_accumulation_steps).backward()
            ce_sum += ce.item() * len(batch)
            l1_sum += l1.item() * len(batch)
            if number % config.gradient_accumulation_steps == 0 or number == len(batches):
                torch.nn.utils.clip_grad_norm_(lora + list(head.parameters()), config.max_grad_norm)
                optimiser.step()
                schedule.step()
                optimiser.zero_grad()
                step += 1
                bar.update()
                if step >= steps:
                    break
        losses = EpochLosses(epoch=epoch, train_ce=ce_sum / len(train), train_l1=l1_sum / len(train))
        if val:
            losses.val_ce, losses.val_l1 = losses_measure(model=model, head=head, collator=collator, records=val,
                                                          config=config, device=device)
            joint = losses.val_ce + config.score_weight * losses.val_l1
        else:
            joint = -epoch  # without validation the last epoch is kept
        history.append(losses)
        bar.set_postfix(ce=f"{losses.train_ce:.3f}", l1=f"{losses.train_l1:.3f}")
        if joint < best_loss:  # strictly better only: on ties the earlier, less fitted epoch stays
            best_loss, best_epoch = joint, epoch
            best_state = {name: tensor.detach().clone() for name, tensor in
                          [*((f"model.{n}", p) for n, p in model.named_parameters() if p.requires_grad),
                           *((f"head.{n}", p) for n, p in head.named_parameters())]}
        if step >= steps:
            break
    bar.close()
    with torch.no_grad():
        for name, parameter in [*((f"model.{n}", p) for n, p in model.named_parameters() if p.requires_grad),
                                *((f"head.{n}", p) for n, p in head.named_parameters())]:
            parameter.copy_(best_state[name])

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    head_save(head=head, path=out / HEAD_FILE)
    card = {"base_model": str(Path(config.model_path).resolve()), "score_token": "[SCORING]",
            "hidden_size": hidden_size, "best_epoch": best_epoch,
            "records": {"train": len(train), "val": len(val)},
            "config": {**asdict(config), "lora_targets": list(config.lora_targets)},
            "history": [asdict(entry) for entry in history]}
    (out / CARD_FILE).write_text(json.dumps(card, indent=1))
    return RubricTrainSummary(out=out, best_epoch=best_epoch, steps=step, trainable_parameters=trainable,
                              history=history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.train_rubric", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML settings (ml/configs/rubric_lora.yaml)")
    parser.add_argument("--data", help="data folder with rubric/*.jsonl (overrides the config's data)")
    parser.add_argument("--out", help="model folder to write (overrides the config's out)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = rubric_config_load(args.config, data=args.data, out=args.out)
        summary = rubric_train(config, progress=True)
    except (ConfigError, RubricError, OSError) as error:  # OSError: a missing model, data or output folder
        print(f"error: {error}", file=sys.stderr)
        return 2
    for entry in summary.history:
        val = (f"; val ce {entry.val_ce:.4f} L1 {entry.val_l1:.4f}" if entry.val_ce is not None else "")
        print(f"epoch {entry.epoch}: train ce {entry.train_ce:.4f} L1 {entry.train_l1:.4f}{val}")
    print(f"kept epoch {summary.best_epoch} after {summary.steps} steps; "
          f"{summary.trainable_parameters} trainable LoRA parameters; model: {summary.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
