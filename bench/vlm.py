"""Benchmark Qwen2.5-VL-7B-Instruct on one GPU: reading speed by batch size, and one LoRA training step.

    python bench/vlm.py [--batch-sizes 1 8 32] [--new-tokens 200] [--regions 12] [--variants ...] [--json OUT.json]
    python bench/vlm.py --backend vllm   # the optional vLLM back end on the same pages (no train step)
    python bench/vlm.py --tiny      # CPU smoke run of the same code on ml.recognition.vlm_tiny's shapes

Nothing is downloaded: the model is built in memory, in bf16 on CUDA, from a ``Qwen2_5_VLConfig`` with
the 7B-Instruct checkpoint's exact shape (28 layers of 3584, 4 KV heads, vocabulary 152064; vision
tower 32 blocks of 1280) and random weights, which cost the same time per token as the real ones.
Reading goes through the engine's own ``HfGenerator`` (its processor, greedy ``generate`` keeping the
chosen tokens' probabilities, decoding) on what the engine sends for an A4 page at 150 dpi (1240 x
1754 px, 2772 visual tokens at the engine's max_pixels) with ``--regions`` answer boxes and the
engine's prompt. The processor's tokenizer is ``vlm_tiny``'s (Qwen's is not here): the prompt's text
takes somewhat more tokens than with Qwen's, next to the page's 2772. Generation is forced to exactly
``--new-tokens`` tokens (``min_new_tokens``), ~the JSON answer for 12 regions. ``--variants`` compares
the dynamic KV cache with a static one, plain and compiled (``VlmConfig.static_cache`` / ``compile``).

Reports, per variant and batch size: the first call's seconds (compilation included), then the steady
seconds, pages/s, boxes/s (pages x regions) and peak GPU memory; identity matching's cost, the seconds
to score ``--candidates`` roster texts against one box (``answers_score``); then ``ml.train``'s LoRA
training step (its adapter set-up, collation and packing; full pages, the answer as labels) for every
``--train-attention`` x ``--train-checkpointing`` x ``--train-pages`` setting: tokens per step,
seconds per optimiser step and per page, peak memory.
Refuses (exit 2) without CUDA unless ``--tiny``. All of it should take 8-10 minutes on one H200 (an
estimate from earlier figures; most of it compiling and the train settings); a shorter first look at
the targets (>= 4 pages/s at 200 new tokens, <= 1 s per full-page train step):

    python bench/vlm.py --variants dynamic compiled --batch-sizes 8 32 --train-checkpointing off --train-steps 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.recognition.base import Region  # noqa: E402
from ml.train import ATTENTION_IMPLEMENTATIONS  # noqa: E402
from ml.recognition.vlm import (  # noqa: E402
    BACKENDS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    HfGenerator,
    VlmConfig,
    VlmPrompt,
    chat_text,
    model_input_size,
    prompt_build,
)

A4_150 = (1240, 1754)
# VlmConfig set-ups compared: transformers' dynamic KV cache, a static one, a static one compiled.
VARIANTS = ("dynamic", "static", "compiled")
TINY_PIXELS = 28 * 28 * 16  # the tiny model's pages, as in its tests: at most 16 visual tokens
# The chat template's fixed text around the user message (system turn, role headers), in tokens.
TEMPLATE_TOKENS = 20

# Qwen2.5-VL-7B-Instruct's config.json, the values that set the compute and memory.
QWEN2_5_VL_7B = {
    "text_config": {
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": 151643,
    },
    "vision_config": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
        "hidden_act": "silu",
    },
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}
IM_START, IM_END = 151644, 151645  # <|im_start|>, <|im_end|> in Qwen's vocabulary


def model_config(*, tiny: bool, processor):
    """The ``Qwen2_5_VLConfig`` to build: the 7B's shape, or (``tiny``) ``vlm_tiny``'s as it writes it. The
    special tokens take ``processor``'s ids (its tokenizer is not Qwen's; the ids cost nothing)."""
    from transformers import Qwen2_5_VLConfig

    if tiny:
        from ml.recognition.vlm_tiny import tiny_model_build

        with tempfile.TemporaryDirectory() as folder:
            return Qwen2_5_VLConfig.from_pretrained(tiny_model_build(Path(folder)))
    ids = processor.tokenizer.convert_tokens_to_ids
    config = {**QWEN2_5_VL_7B, "image_token_id": ids("<|image_pad|>"), "video_token_id": ids("<|video_pad|>"),
              "vision_start_token_id": ids("<|vision_start|>"), "vision_end_token_id": ids("<|vision_end|>")}
    config["text_config"] = {**config["text_config"], "bos_token_id": ids("<|endoftext|>"),
                             "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>")}
    return Qwen2_5_VLConfig(**config)


def model_build(config, *, device: str, dtype: torch.dtype):
    """A randomly initialised model of ``config``, made directly on ``device`` in ``dtype`` (no CPU copy)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def page_boxes(*, frame: tuple[int, int], regions: int) -> list[Region]:
    """``regions`` answer boxes (``[x1, y1, x2, y2]`` pixels of ``frame``) in two columns filling the page."""
    width, height = frame
    rows = math.ceil(regions / 2)
    margin = min(20, width // 16, height // (4 * rows))  # the tiny model's pages are a few dozen pixels
    return [Region(index=n + 1, bbox=(
        (n % 2) * width // 2 + margin, (n // 2) * height // rows + margin, (n % 2 + 1) * width // 2 - margin,
        (n // 2 + 1) * height // rows - margin)) for n in range(regions)]


def prompt_tokens(*, frame: tuple[int, int], regions: int) -> int:
    """Estimated text tokens of the engine's prompt for ``regions`` boxes laid out on a ``frame`` page,
    chat template included (see the module docstring)."""
    text = prompt_build(regions=page_boxes(frame=frame, regions=regions))
    digits = sum(char.isdigit() for char in text)
    return TEMPLATE_TOKENS + digits + math.ceil((len(text) - digits) / 4)


def page_inputs(config, *, batch: int, frame: tuple[int, int], text_tokens: int, answer_tokens: int = 0,
                device: str, dtype: torch.dtype, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch of identical rows shaped like the engine's input for one ``frame`` page each: the page's
    visual tokens (between vision start and end) amid ``text_tokens`` random text ids, as the
    chat-templated prompt has them, then ``answer_tokens`` random ids. ``pixel_values`` are random patches."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    vision = config.vision_config
    patch, merge = vision.patch_size, vision.spatial_merge_size
    grid_h, grid_w = frame[1] // patch, frame[0] // patch
    visual = grid_h * grid_w // (merge * merge)
    specials = torch.tensor(sorted({config.image_token_id, config.video_token_id, config.vision_start_token_id,
                                    config.vision_end_token_id, IM_START, IM_END, config.text_config.eos_token_id}))
    vocab = config.text_config.vocab_size
    ordinary = next(token for token in range(vocab) if token not in specials.tolist())

    def text(count: int) -> torch.Tensor:
        ids = torch.randint(0, vocab, (count,), generator=generator)
        return torch.where(torch.isin(ids, specials), ordinary, ids)  # a stray image token would break the grid

    before = max(text_tokens // 2, 1)
    row = torch.cat([
        text(before), torch.tensor([config.vision_start_token_id]), torch.full((visual,), config.image_token_id),
        torch.tensor([config.vision_end_token_id]), text(max(text_tokens - before, 1)), text(answer_tokens),
    ])
    input_ids = row.repeat(batch, 1)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "pixel_values": torch.randn(batch * grid_h * grid_w, 3 * vision.temporal_patch_size * patch * patch,
                                    generator=generator).to(dtype),
        "image_grid_thw": torch.tensor([[1, grid_h, grid_w]] * batch),
    }
    if "mm_token_type_ids" in inspect.signature(Qwen2_5_VLForConditionalGeneration.forward).parameters:
        # transformers 5 computes the image's 2-D rotary positions from this mask (1: image token).
        inputs["mm_token_type_ids"] = (input_ids == config.image_token_id).long()
    return {key: value.to(device) for key, value in inputs.items()}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def page_prompts(*, count: int, frame: tuple[int, int], regions: int) -> list[VlmPrompt]:
    """``count`` copies of the engine's first prompt for an A4 page with ``regions`` answer boxes in two
    columns, the page already at the model's ``frame`` (as ``VlmRecognizer`` sends it): a white page with
    a line of ink in each box, since the processor's cost does not depend on what is written."""
    from PIL import Image, ImageDraw

    boxes = page_boxes(frame=frame, regions=regions)
    page = Image.new("RGB", frame, "white")
    draw = ImageDraw.Draw(page)
    for box in boxes:
        draw.rectangle(box.bbox, outline="black")
        draw.text((box.bbox[0] + 10, box.bbox[1] + 10), f"answer {box.index}", fill="black")
    return [VlmPrompt(image=page, text=prompt_build(regions=boxes), size=frame)] * count


def generate_bench(generator, *, variants: list[str], batch_sizes: list[int], frame: tuple[int, int],
                   regions: int, new_tokens: int, device: str) -> list[dict]:
    """Pages read through the engine's own ``HfGenerator`` (processor, greedy ``generate`` with the chosen
    tokens' probabilities, decoding), exactly ``new_tokens`` each, for every variant and batch size.

    Each (variant, batch size) runs twice: the first call pays for allocation, kernel selection and, for
    ``compiled``, compilation (reported as ``first_seconds``); the second is the steady speed."""
    from tqdm import tqdm

    # Random weights would stop at a random end token now and then; a page's answer is ~new_tokens long.
    if isinstance(generator, HfGenerator):
        generator.model.generation_config.min_new_tokens = new_tokens
    else:
        generator.sampling_overrides = {"min_tokens": new_tokens}
    base = replace(generator.config, max_new_tokens=new_tokens)
    rows = []
    for variant, batch in tqdm([(v, b) for v in variants for b in batch_sizes], desc="generate", unit="run"):
        generator.config = replace(base, static_cache=variant in ("static", "compiled"), compile=variant == "compiled")
        prompts = page_prompts(count=batch, frame=frame, regions=regions)
        row: dict = {"variant": variant, "batch_size": batch, "new_tokens": new_tokens}
        timings = []
        try:
            for _ in range(2):
                _peak_reset(device)
                _sync(device)
                started = time.perf_counter()
                outputs = generator(prompts)
                _sync(device)
                timings.append(time.perf_counter() - started)
        except torch.cuda.OutOfMemoryError:
            rows.append({**row, "error": "out of memory", "peak_gib": _peak_gib(device)})
            continue
        started = time.perf_counter()
        if isinstance(generator, HfGenerator):
            inputs = generator.inputs(prompts[:1])
        else:  # vLLM runs its processor in its own engine: the same work, timed here on the CPU
            inputs = generator.processor(text=[chat_text(processor=generator.processor, text=prompts[0].text)],
                                         images=[prompts[0].image], return_tensors="pt")
        processing = time.perf_counter() - started
        seconds = timings[-1]
        rows.append({**row, "prompt_tokens": int(inputs["input_ids"].shape[1]),
                     "generated": max(len(output.token_probs) for output in outputs), "first_seconds": timings[0],
                     "seconds": seconds, "pages_per_s": batch / seconds, "boxes_per_s": batch * regions / seconds,
                     "processor_s_per_page": processing,
                     # vLLM's engine allocates in its own process, outside this one's counters.
                     "peak_gib": _peak_gib(device) if isinstance(generator, HfGenerator) else None})
    generator.config = base
    return rows


def candidates_bench(generator, *, frame: tuple[int, int], candidates: int, device: str) -> dict:
    """Identity matching's cost on one page: ``candidates`` roster texts scored as the reply for one box
    (``answers_score``, ``VLM_BATCH_SIZE``-like batches of 8, as ``candidates_score`` sends them), after
    one untimed warm-up."""
    (prompt,) = page_prompts(count=1, frame=frame, regions=1)
    replies = [json.dumps([{"index": 1, "text": f"Student {number:03d} Surname"}]) for number in range(candidates)]
    generator.answers_score(prompt, replies[:2])
    _peak_reset(device)
    _sync(device)
    started = time.perf_counter()
    scores = generator.answers_score(prompt, replies)
    _sync(device)
    seconds = time.perf_counter() - started
    return {"candidates": len(scores), "seconds": seconds,
            "peak_gib": _peak_gib(device) if isinstance(generator, HfGenerator) else None}


def vllm_generator_build(config, *, processor, folder: Path, batch: int, new_tokens: int):
    """``VllmGenerator`` on a model directory written to ``folder``: ``config`` (the 7B's shape), ``processor``
    and a generation config, and no weights: vLLM's ``load_format="dummy"`` initialises them at random on
    the GPU, as ``model_build`` does for transformers."""
    from transformers import GenerationConfig

    from ml.recognition.vlm_vllm import VllmGenerator

    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]  # how vLLM picks its model class
    config.save_pretrained(folder)
    processor.save_pretrained(folder)
    text = config.text_config
    GenerationConfig(bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
                     pad_token_id=text.pad_token_id).save_pretrained(folder)
    return VllmGenerator(VlmConfig(model_path=str(folder), backend="vllm", dtype="bfloat16", batch_size=batch,
                                   max_new_tokens=new_tokens), load_format="dummy")


def train_step_bench(model, config, *, frame: tuple[int, int], regions: int, answer_tokens: int, device: str,
                     dtype: torch.dtype, attentions: list[str], checkpointing: list[bool], pack_pages: list[int],
                     steps: int) -> list[dict]:
    """``ml.train``'s training step on ``model``, timed for every (attention kernel, activation
    checkpointing, pages a row) setting: one row a step, each page a full ``frame`` page with
    ``answer_tokens`` labelled answer tokens.

    The set-up is ``ml.train``'s own: the LoRA adapter of ``ml/configs/qwen2_5_vl_lora.yaml`` through
    ``lora_apply`` (vision tower without autograd), ``checkpointing_set``, the kernel ``attention_check``
    accepts; one page a row is collated as ``rows_pad`` does, N pages as the packed row ``rows_pack`` makes
    (the model's own rotary positions per page). Each step is ``answer_loss`` (logits only where labels
    follow) under bf16 autocast (as the Trainer's ``bf16``), the backward pass and a fused AdamW step
    (the Trainer's default optimiser); one untimed step first per setting. Returns a row per setting:
    tokens and pages per step, mean seconds per optimiser step and per page, peak memory; or ``error``
    (kernel not available, out of memory)."""
    from ml.train import (
        ConfigError,
        answer_loss,
        attention_check,
        checkpointing_set,
        config_load,
        frozen_check,
        lora_apply,
        mrope_index,
        rows_pack,
        rows_pad,
    )

    preset = config_load(Path(__file__).resolve().parent.parent / "ml/configs/qwen2_5_vl_lora.yaml")
    model = lora_apply(model, preset)
    trainable = frozen_check(model)
    model.train()
    inputs = page_inputs(config, batch=1, frame=frame, text_tokens=prompt_tokens(frame=frame, regions=regions),
                         answer_tokens=answer_tokens, device="cpu", dtype=dtype,
                         generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(inputs["input_ids"][0], -100)
    labels[-answer_tokens:] = inputs["input_ids"][0, -answer_tokens:]
    page = {key: value[0] if key in ("input_ids", "attention_mask", "mm_token_type_ids") else value
            for key, value in inputs.items()}
    page["labels"] = labels
    rope_index = mrope_index(model)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    rows = []
    for attention in attentions:
        for checkpointed in checkpointing:
            for pages in pack_pages:
                row: dict = {"attention": attention, "checkpointing": checkpointed, "pages": pages,
                             "lora_rank": preset.lora_rank, "trainable_parameters": trainable}
                try:
                    attention_check(attention)
                except ConfigError as error:
                    rows.append({**row, "error": str(error)})
                    continue
                model.set_attn_implementation(attention)
                checkpointing_set(model, checkpointed)
                batch = rows_pad([page], pad_token_id=config.text_config.pad_token_id) if pages == 1 else \
                    rows_pack([page] * pages, rope_index=rope_index)
                batch = {key: value.to(device) for key, value in batch.items()}
                row["tokens"] = int(batch["input_ids"].numel())
                row["answer_tokens"] = int((batch["labels"] != -100).sum())
                optimiser = torch.optim.AdamW(parameters, lr=preset.learning_rate, fused=device == "cuda")
                _peak_reset(device)
                times = []
                try:
                    for _ in range(steps + 1):
                        _sync(device)
                        started = time.perf_counter()
                        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                            loss, _ = answer_loss(model, batch)
                        loss.backward()
                        optimiser.step()
                        optimiser.zero_grad(set_to_none=True)
                        _sync(device)
                        times.append(time.perf_counter() - started)
                except torch.cuda.OutOfMemoryError:
                    loss = None  # frees what the failed step holds before the next setting
                    optimiser.zero_grad(set_to_none=True)
                    rows.append({**row, "error": "out of memory", "peak_gib": _peak_gib(device)})
                    continue
                finally:
                    del batch
                seconds = sum(times[1:]) / steps
                rows.append({**row, "seconds_per_step": seconds, "seconds_per_page": seconds / pages,
                             "tokens_per_s": row["tokens"] / seconds, "loss": loss.item(),
                             "peak_gib": _peak_gib(device)})
    return rows


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/vlm.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU smoke run on vlm_tiny's shapes (default batch sizes 1 2, 8 new tokens)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="pages per generate call (default 1 8 32)")
    parser.add_argument("--new-tokens", type=int, help="tokens generated per page (default 200)")
    parser.add_argument("--regions", type=int, default=12, help="answer boxes per page (default 12)")
    parser.add_argument("--backend", choices=BACKENDS, default="transformers",
                        help="vllm: read through the optional vLLM back end instead (CUDA and the vllm package; "
                             "no train step, vLLM takes most of the GPU)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        help="decoding set-ups: dynamic KV cache, static cache, static cache compiled "
                             "(default all three; --tiny: dynamic static, compiling is for GPUs)")
    parser.add_argument("--train-attention", nargs="+", choices=ATTENTION_IMPLEMENTATIONS,
                        help="attention kernels of the train step (default both; --tiny: sdpa)")
    parser.add_argument("--train-checkpointing", nargs="+", choices=["on", "off"], default=["on", "off"],
                        help="activation checkpointing of the train step (default on off)")
    parser.add_argument("--train-pages", type=int, nargs="+",
                        help="pages a training row: 1 is one page a row, N packs N pages into one row "
                             "(ml.train's packing) (default 1 4; --tiny: 1 3)")
    parser.add_argument("--train-steps", type=int, default=3, help="timed train steps a setting (default 3)")
    parser.add_argument("--candidates", type=int, default=123,
                        help="roster texts scored for identity (default 123: a class of 30's NAME box in both "
                             "word orders, ID and CLASS boxes, each box's own reading)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("error: bench/vlm.py needs a CUDA GPU (Qwen2.5-VL-7B in bf16 is ~17 GB of weights); "
              "--tiny runs the same code on a tiny model on the CPU", file=sys.stderr)
        return 2
    if args.backend == "vllm" and (args.tiny or args.variants):
        parser.error("--backend vllm runs on a CUDA GPU and has no --variants (they set up transformers' KV cache)")
    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    batch_sizes = args.batch_sizes or ([1, 2] if args.tiny else [1, 8, 32])
    new_tokens = args.new_tokens or (8 if args.tiny else 200)
    frame = model_input_size(page_size=A4_150, min_pixels=DEFAULT_MIN_PIXELS,
                             max_pixels=TINY_PIXELS if args.tiny else DEFAULT_MAX_PIXELS)
    torch.manual_seed(0)
    from ml.recognition.vlm_tiny import tiny_processor_build

    processor = tiny_processor_build()
    config = model_config(tiny=args.tiny, processor=processor)
    started = time.perf_counter()
    if args.backend == "vllm":
        model = None
        folder = Path(tempfile.mkdtemp(prefix="bench-vlm-"))
        generator = vllm_generator_build(config, processor=processor, folder=folder, batch=max(batch_sizes),
                                         new_tokens=new_tokens)
        variants = ["vllm"]
    else:
        model = model_build(config, device=device, dtype=dtype)
        generator = HfGenerator(VlmConfig(model_path="(built in memory)", device=device,
                                          min_pixels=DEFAULT_MIN_PIXELS,
                                          max_pixels=TINY_PIXELS if args.tiny else DEFAULT_MAX_PIXELS),
                                model=model, processor=processor)
        variants = args.variants or (["dynamic", "static"] if args.tiny else list(VARIANTS))
    built = time.perf_counter() - started
    print(f"{'tiny' if args.tiny else 'Qwen2.5-VL-7B'} shape, random weights, {dtype} on {device} "
          f"(built in {built:.1f} s); page frame {frame[0]}x{frame[1]}, {args.regions} regions, "
          f"{new_tokens} new tokens")
    rows = generate_bench(generator, variants=variants, batch_sizes=batch_sizes, frame=frame, regions=args.regions,
                          new_tokens=new_tokens, device=device)
    print(f"{'variant':>9} {'batch':>5} {'tokens in':>9} {'first s':>8} {'seconds':>8} {'pages/s':>8} "
          f"{'boxes/s':>8} {'peak GiB':>8}")
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:>9} {row['batch_size']:>5} {row['error']}")
        else:
            print(f"{row['variant']:>9} {row['batch_size']:>5} {row['prompt_tokens']:>9} {row['first_seconds']:>8.2f} "
                  f"{row['seconds']:>8.2f} {row['pages_per_s']:>8.2f} {row['boxes_per_s']:>8.1f} "
                  f"{_gib(row['peak_gib']):>8}")
    processing = [row["processor_s_per_page"] for row in rows if "error" not in row]
    if processing:
        print(f"processor (patches, tokens; on the GPU for transformers on CUDA): {min(processing):.3f} s a page")
    identity = candidates_bench(generator, frame=frame, candidates=args.candidates, device=device)
    print(f"identity: {identity['candidates']} roster texts scored against one box in {identity['seconds']:.2f} s, "
          f"peak {_gib(identity['peak_gib'])} GiB")
    if model is None:
        if args.json:
            args.json.write_text(json.dumps({"model": "Qwen2.5-VL-7B-Instruct shape", "backend": "vllm",
                                             "gpu": torch.cuda.get_device_name(), "frame": list(frame),
                                             "regions": args.regions, "build_seconds": built, "generate": rows,
                                             "identity": identity},
                                            indent=2))
        return 0
    steps = train_step_bench(
        model, config, frame=frame, regions=args.regions, answer_tokens=new_tokens, device=device, dtype=dtype,
        attentions=args.train_attention or (["sdpa"] if args.tiny else list(ATTENTION_IMPLEMENTATIONS)),
        checkpointing=[choice == "on" for choice in args.train_checkpointing],
        pack_pages=args.train_pages or ([1, 3] if args.tiny else [1, 4]), steps=args.train_steps)
    print(f"LoRA train step (ml.train's set-up, rank {steps[0]['lora_rank']}), one optimiser step a row:")
    print(f"{'attention':>17} {'ckpt':>4} {'pages':>5} {'tokens':>6} {'s/step':>7} {'s/page':>7} {'tokens/s':>8} "
          f"{'peak GiB':>8}")
    for step in steps:
        setting = f"{step['attention']:>17} {'on' if step['checkpointing'] else 'off':>4} {step['pages']:>5}"
        if "error" in step:
            print(f"{setting} {step['error']}")
        else:
            print(f"{setting} {step['tokens']:>6} {step['seconds_per_step']:>7.2f} {step['seconds_per_page']:>7.2f} "
                  f"{step['tokens_per_s']:>8.0f} {_gib(step['peak_gib']):>8}")
    if args.json:
        args.json.write_text(json.dumps({
            "model": "tiny" if args.tiny else "Qwen2.5-VL-7B-Instruct shape", "device": device, "dtype": str(dtype),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "frame": list(frame),
            "regions": args.regions, "build_seconds": built, "generate": rows, "identity": identity,
            "train_steps": steps,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
