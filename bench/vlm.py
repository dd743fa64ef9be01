"""Benchmark Qwen2.5-VL-7B-Instruct on one GPU: reading speed by batch size, and one LoRA training step.

    python bench/vlm.py [--batch-sizes 1 8 32] [--new-tokens 200] [--regions 12] [--json OUT.json]
    python bench/vlm.py --tiny      # CPU smoke run of the same code on ml.recognition.vlm_tiny's shapes

Nothing is downloaded: the model is built in memory, in bf16 on CUDA, from a ``Qwen2_5_VLConfig`` with
the 7B-Instruct checkpoint's exact shape (28 layers of 3584, 4 KV heads, vocabulary 152064; vision
tower 32 blocks of 1280) and random weights, which cost the same time per token as the real ones.
The input is what the engine sends for an A4 page at 150 dpi (1240 x 1754 px, 2772 visual tokens at
the engine's max_pixels) with ``--regions`` answer boxes: the chat-templated prompt's token count is
estimated from the engine's real prompt text (Qwen's tokenizer gives every digit its own token; the
rest is ~4 characters a token), the token ids themselves are random. Generation is greedy and
forced to exactly ``--new-tokens`` tokens (``min_new_tokens``), ~the JSON answer for 12 regions.

Reports, per batch size: seconds, pages/s, boxes/s (pages x regions) and peak GPU memory; then one
LoRA training step (rank 4 on the language model's attention, as ``ml.train``) on a full page with
the answer as labels, activation checkpointing on: seconds per optimiser step and peak memory.
Refuses (exit 2) without CUDA unless ``--tiny``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.recognition.base import Region  # noqa: E402
from ml.recognition.vlm import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, model_input_size, prompt_build  # noqa: E402

A4_150 = (1240, 1754)
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


def model_config(*, tiny: bool):
    """The ``Qwen2_5_VLConfig`` to build: the 7B's shape, or (``tiny``) ``vlm_tiny``'s as it writes it."""
    from transformers import Qwen2_5_VLConfig

    if not tiny:
        return Qwen2_5_VLConfig(**QWEN2_5_VL_7B)
    from ml.recognition.vlm_tiny import tiny_model_build

    with tempfile.TemporaryDirectory() as folder:
        return Qwen2_5_VLConfig.from_pretrained(tiny_model_build(Path(folder)))


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


def prompt_tokens(*, frame: tuple[int, int], regions: int) -> int:
    """Estimated text tokens of the engine's prompt for ``regions`` boxes laid out on a ``frame`` page,
    chat template included (see the module docstring)."""
    width, height = frame
    rows = math.ceil(regions / 2)
    boxes = [Region(index=n + 1, bbox=(
        (n % 2) * width // 2 + 20, (n // 2) * height // rows + 20, (n % 2 + 1) * width // 2 - 20,
        (n // 2 + 1) * height // rows - 20)) for n in range(regions)]
    text = prompt_build(regions=boxes)
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


def generate_bench(model, config, *, batch_sizes: list[int], frame: tuple[int, int], regions: int,
                   new_tokens: int, device: str, dtype: torch.dtype) -> list[dict]:
    """Greedy generation of exactly ``new_tokens`` per page, timed for each batch size."""
    from tqdm import tqdm

    generator = torch.Generator().manual_seed(0)
    text_tokens = prompt_tokens(frame=frame, regions=regions)
    settings = {"do_sample": False, "pad_token_id": config.text_config.pad_token_id,
                "eos_token_id": config.text_config.eos_token_id}
    # One short run first: CUDA context, cuBLAS handles and kernel selection are not reading time.
    warm = page_inputs(config, batch=1, frame=frame, text_tokens=text_tokens, device=device, dtype=dtype,
                       generator=generator)
    with torch.inference_mode():
        model.generate(**warm, max_new_tokens=2, min_new_tokens=2, **settings)
    rows = []
    for batch in tqdm(batch_sizes, desc="generate", unit="batch size"):
        inputs = page_inputs(config, batch=batch, frame=frame, text_tokens=text_tokens, device=device,
                             dtype=dtype, generator=generator)
        _peak_reset(device)
        row = {"batch_size": batch, "prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens": new_tokens}
        try:
            _sync(device)
            started = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings)
            _sync(device)
        except torch.cuda.OutOfMemoryError:
            rows.append({**row, "error": "out of memory", "peak_gib": _peak_gib(device)})
            continue
        seconds = time.perf_counter() - started
        generated = out.shape[1] - inputs["input_ids"].shape[1]
        rows.append({**row, "generated": int(generated), "seconds": seconds, "pages_per_s": batch / seconds,
                     "boxes_per_s": batch * regions / seconds, "peak_gib": _peak_gib(device)})
        del inputs, out
    return rows


def train_step_bench(model, config, *, frame: tuple[int, int], regions: int, answer_tokens: int, device: str,
                     dtype: torch.dtype, steps: int = 3) -> dict:
    """LoRA (rank 4, attention of the language model) on ``model``, activation checkpointing on, one page a
    step with the answer as labels; the mean time of the steps after the first and the peak memory."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)")
    model = get_peft_model(model, lora)
    model.config.use_cache = False  # the KV cache is for generation
    # Non-reentrant: no gradient needed on the frozen inputs. transformers 5 renamed gradient to
    # activation checkpointing (the old name warns).
    prefix = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    getattr(model, f"{prefix}_checkpointing_enable")(**{f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}})
    model.train()
    inputs = page_inputs(config, batch=1, frame=frame, text_tokens=prompt_tokens(frame=frame, regions=regions),
                         answer_tokens=answer_tokens, device=device, dtype=dtype,
                         generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, -answer_tokens:] = inputs["input_ids"][:, -answer_tokens:]
    optimiser = torch.optim.AdamW([parameter for parameter in model.parameters() if parameter.requires_grad], lr=5e-5)
    _peak_reset(device)
    times = []
    for _ in range(steps):
        _sync(device)
        started = time.perf_counter()
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        loss = loss.item()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - started)
    timed = times[1:] or times  # the first step also allocates the optimiser state
    return {"tokens": int(inputs["input_ids"].shape[1]), "answer_tokens": answer_tokens,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "seconds": sum(timed) / len(timed), "loss": loss, "peak_gib": _peak_gib(device)}


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/vlm.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU smoke run on vlm_tiny's shapes (default batch sizes 1 2, 8 new tokens)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="pages per generate call (default 1 8 32)")
    parser.add_argument("--new-tokens", type=int, help="tokens generated per page (default 200)")
    parser.add_argument("--regions", type=int, default=12, help="answer boxes per page (default 12)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("error: bench/vlm.py needs a CUDA GPU (Qwen2.5-VL-7B in bf16 is ~17 GB of weights); "
              "--tiny runs the same code on a tiny model on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    batch_sizes = args.batch_sizes or ([1, 2] if args.tiny else [1, 8, 32])
    new_tokens = args.new_tokens or (8 if args.tiny else 200)
    frame = model_input_size(page_size=A4_150, min_pixels=DEFAULT_MIN_PIXELS,
                             max_pixels=TINY_PIXELS if args.tiny else DEFAULT_MAX_PIXELS)
    torch.manual_seed(0)
    config = model_config(tiny=args.tiny)
    started = time.perf_counter()
    model = model_build(config, device=device, dtype=dtype)
    built = time.perf_counter() - started
    print(f"{'tiny' if args.tiny else 'Qwen2.5-VL-7B'} shape, random weights, {dtype} on {device} "
          f"(built in {built:.1f} s); page frame {frame[0]}x{frame[1]}, {args.regions} regions, "
          f"{new_tokens} new tokens")
    rows = generate_bench(model, config, batch_sizes=batch_sizes, frame=frame, regions=args.regions,
                          new_tokens=new_tokens, device=device, dtype=dtype)
    print(f"{'batch':>5} {'tokens in':>9} {'seconds':>8} {'pages/s':>8} {'boxes/s':>8} {'peak GiB':>8}")
    for row in rows:
        if "error" in row:
            print(f"{row['batch_size']:>5} {row['prompt_tokens']:>9} {row['error']}")
        else:
            print(f"{row['batch_size']:>5} {row['prompt_tokens']:>9} {row['seconds']:>8.2f} "
                  f"{row['pages_per_s']:>8.2f} {row['boxes_per_s']:>8.1f} {_gib(row['peak_gib']):>8}")
    step = train_step_bench(model, config, frame=frame, regions=args.regions, answer_tokens=new_tokens,
                            device=device, dtype=dtype, steps=2 if args.tiny else 3)
    print(f"LoRA train step (rank 4, activation checkpointing, {step['tokens']} tokens): "
          f"{step['seconds']:.2f} s, peak {_gib(step['peak_gib'])} GiB")
    if args.json:
        args.json.write_text(json.dumps({
            "model": "tiny" if args.tiny else "Qwen2.5-VL-7B-Instruct shape", "device": device, "dtype": str(dtype),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "frame": list(frame),
            "regions": args.regions, "build_seconds": built, "generate": rows, "train_step": step,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
