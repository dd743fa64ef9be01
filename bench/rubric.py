"""Benchmark one training step of the rubric model (``ml.train_rubric``) on the Qwen2.5-VL-7B shape.

    python bench/rubric.py            # one CUDA GPU: the 7B-Instruct's exact shape, random weights, bf16
    python bench/rubric.py --tiny     # CPU smoke run of the same code on ml.recognition.vlm_tiny's shapes

The model is built as ``bench/vlm.py`` builds it (no weights are needed); the step is the trainer's:
LoRA of ``RubricTrainConfig``'s preset (rank 8, attention and MLP of the language model), activation
checkpointing, the regression head on each dimension's score token, and ``ml.rubric.joint_loss``
(cross-entropy on the feedback + L1 on the scores), AdamW. The input is one answer image at the
preset's ``max_pixels`` (an A4 page scaled into it, the largest a record can be), a rubric prompt of
``--prompt-tokens`` text tokens with ``--dimensions`` score tokens at its end, and ``--feedback-tokens``
of feedback. Prints the mean seconds per step (after the first, which also makes the optimiser state)
and the peak GPU memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.recognition.vlm import DEFAULT_MIN_PIXELS, model_input_size  # noqa: E402
from ml.rubric import joint_loss, score_head_build  # noqa: E402
from ml.train import checkpointing_set, lora_apply  # noqa: E402
from ml.train_rubric import RubricTrainConfig  # noqa: E402


def _vlm_bench():
    spec = importlib.util.spec_from_file_location("bench_vlm", ROOT / "bench" / "vlm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rubric_step_bench(*, tiny: bool, dimensions: int, prompt_tokens: int, feedback_tokens: int,
                      steps: int) -> dict:
    vlm = _vlm_bench()
    from ml.recognition.vlm_tiny import tiny_processor_build

    device = "cpu" if tiny else "cuda"
    dtype = torch.float32 if tiny else torch.bfloat16
    preset = RubricTrainConfig(model_path="-")
    frame = model_input_size(page_size=vlm.A4_150, min_pixels=DEFAULT_MIN_PIXELS,
                             max_pixels=vlm.TINY_PIXELS if tiny else preset.max_pixels)
    torch.manual_seed(0)
    config = vlm.model_config(tiny=tiny, processor=tiny_processor_build())
    started = time.perf_counter()
    model = vlm.model_build(config, device=device, dtype=dtype)
    built = time.perf_counter() - started
    model = lora_apply(model, preset)  # the trainer's adapter, vision tower outside autograd
    checkpointing_set(model, preset.gradient_checkpointing)
    model.train()
    head = score_head_build(config.text_config.hidden_size).to(device)
    inputs = vlm.page_inputs(config, batch=1, frame=frame, text_tokens=prompt_tokens, answer_tokens=feedback_tokens,
                             device=device, dtype=dtype, generator=torch.Generator().manual_seed(1))
    length = inputs["input_ids"].shape[1]
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, -feedback_tokens:] = inputs["input_ids"][:, -feedback_tokens:]
    # The score tokens close the prompt, one a dimension, as ml.rubric.scoring_prefix writes them.
    columns = torch.arange(length - feedback_tokens - dimensions, length - feedback_tokens, device=device)
    batch = {**inputs, "labels": labels, "score_rows": torch.zeros_like(columns), "score_cols": columns,
             "score_targets": torch.rand(dimensions, generator=torch.Generator().manual_seed(2)).to(device)}
    trainable = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimiser = torch.optim.AdamW(trainable, lr=preset.learning_rate)
    vlm._peak_reset(device)
    times = []
    for _ in range(steps):
        vlm._sync(device)
        begun = time.perf_counter()
        loss, ce, l1 = joint_loss(model=model, head=head, batch=batch, score_weight=preset.score_weight)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        vlm._sync(device)
        times.append(time.perf_counter() - begun)
    timed = times[1:] or times
    return {"model": "tiny" if tiny else "Qwen2.5-VL-7B-Instruct shape", "device": device, "dtype": str(dtype),
            "built_seconds": built, "frame": list(frame), "tokens": int(length), "dimensions": dimensions,
            "feedback_tokens": feedback_tokens,
            "trainable_parameters": sum(p.numel() for p in trainable),
            "seconds_per_step": sum(timed) / len(timed), "ce": ce.item(), "l1": l1.item(),
            "peak_gib": vlm._peak_gib(device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/rubric.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run on vlm_tiny's shapes")
    parser.add_argument("--dimensions", type=int, default=3, help="rubric dimensions (score tokens), default 3")
    parser.add_argument("--prompt-tokens", type=int, default=400, help="text tokens of the rubric prompt (default 400)")
    parser.add_argument("--feedback-tokens", type=int, default=120, help="tokens of feedback learnt (default 120)")
    parser.add_argument("--steps", type=int, default=3, help="training steps (the first is not timed)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("error: bench/rubric.py needs a CUDA GPU for the 7B shape; --tiny runs the same code on the CPU",
              file=sys.stderr)
        return 2
    result = rubric_step_bench(tiny=args.tiny, dimensions=args.dimensions, prompt_tokens=args.prompt_tokens,
                               feedback_tokens=args.feedback_tokens, steps=args.steps)
    peak = "-" if result["peak_gib"] is None else f"{result['peak_gib']:.1f}"
    print(f"{result['model']}, random weights, {result['dtype']} on {result['device']} (built in "
          f"{result['built_seconds']:.1f} s); answer image {result['frame'][0]}x{result['frame'][1]}, "
          f"{result['tokens']} tokens, {result['dimensions']} score tokens, {result['feedback_tokens']} feedback tokens")
    print(f"rubric train step (LoRA rank 8 on attention and MLP, head, L1 + cross-entropy, activation "
          f"checkpointing; {result['trainable_parameters']:,} trainable): {result['seconds_per_step']:.2f} s, "
          f"peak {peak} GiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
