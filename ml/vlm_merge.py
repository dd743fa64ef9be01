"""Merge a LoRA adapter into its Qwen2.5-VL base model: the seed paper's merge-then-infer step.

    python -m ml.vlm_merge --model BASE_DIR --adapter ADAPTER_DIR --out MERGED_DIR

The merged directory holds the full weights (adapter folded in, peft no longer needed), the
generation config and the processor, so ``VlmConfig(model_path=MERGED_DIR)`` serves it. Everything
is local: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def model_merge(*, model_path: Path | str, adapter_path: Path | str, out_path: Path | str, dtype: str = "auto") -> Path:
    """Load the base model, apply the adapter, fold it in (``merge_and_unload``) and save to ``out_path``.

    ``dtype`` "auto" keeps the checkpoint's own dtype (bfloat16 for Qwen2.5-VL-7B: ~16 GB of RAM on a
    CPU); "float32", "bfloat16" or "float16" force one. The processor comes from the model directory,
    else from the adapter directory. ``out_path`` must not exist or be empty.
    """
    import torch
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ml.recognition.vlm import dtype_kwargs, processor_load

    out = Path(out_path)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(model_path), local_files_only=True, **dtype_kwargs(torch_dtype)
    )
    model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=False)
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    processor_load(model_path=str(model_path), adapter_path=str(adapter_path)).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.vlm_merge", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="base Qwen2.5-VL directory")
    parser.add_argument("--adapter", required=True, help="peft LoRA adapter directory")
    parser.add_argument("--out", required=True, help="directory to write the merged model to (new or empty)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    try:
        out = model_merge(model_path=args.model, adapter_path=args.adapter, out_path=args.out, dtype=args.dtype)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"merged model written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
