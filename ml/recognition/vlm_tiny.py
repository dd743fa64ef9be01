"""A tiny, randomly initialised Qwen2.5-VL with an offline processor, for tests.

There are no real Qwen2.5-VL weights on the machines that run the tests, so the VLM engine is tested
end to end on a model with the real architecture and the real processor classes, only very small:
``tiny_model_build`` writes a model directory (weights, config, image/video processors, a byte-level
BPE tokenizer with Qwen's special tokens, Qwen2-VL's chat template) that
``Qwen2_5_VLForConditionalGeneration.from_pretrained`` and ``AutoProcessor.from_pretrained`` load
with ``local_files_only=True``; ``tiny_adapter_build`` writes a peft LoRA adapter for it. Random
weights generate garbage, which is what the tests of the engine's retry and unread paths need.

Nothing here downloads anything; building both takes a second or two on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

# Qwen2.5-VL's special tokens, in its order (ids follow the learned vocabulary here, not Qwen's).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL / Qwen2.5-VL's chat template (as shipped in the Instruct checkpoints' chat_template.json).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Text the tokenizer learns its merges from: the shape of the prompts and answers it will see.
_CORPUS = (
    'Extract content sequentially from the answer sheet regions in the image and return it in JSON format.',
    '[{"index": 1, "bbox": [78, 65, 493, 139]}, {"index": 2, "bbox": [546, 67, 964, 139]}]',
    '[{"index": 56, "text": "listing"}, {"index": 57, "text": "reflected"}, {"index": 58, "text": ""}]',
    "Return only JSON: the answers are handwritten in English. photosynthesis 3.14 -12 x = 4",
    "按顺序提取图片中答题卡指定区域的内容，并以JSON格式返回。只返回JSON。",
    "system user assistant You are a helpful assistant.",
)


def tiny_tokenizer_build(*, vocab_size: int = 512):
    """A byte-level BPE tokenizer (any text encodes) with Qwen2.5-VL's special tokens."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=32768,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def tiny_processor_build(*, min_pixels: int = 28 * 28 * 4, max_pixels: int = 28 * 28 * 64):
    """Qwen2.5-VL's processor (Qwen2-VL image and video processors) over ``tiny_tokenizer_build``."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tiny_tokenizer_build(),
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=CHAT_TEMPLATE,
    )


def tiny_model_build(path: Path, *, seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL (model and processor) to ``path``; returns ``path``.

    Text model: 2 layers, hidden size 64, 2 heads (head dim 32, M-RoPE sections 4/6/6). Vision tower:
    1 block, hidden size 32, patch 14, spatial merge 2 (so images resize to multiples of 28, as the
    real model's do). About 0.2 M parameters, float32.
    """
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    path = Path(path)
    processor = tiny_processor_build()
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def tiny_adapter_build(*, model_path: Path, path: Path, rank: int = 4, seed: int = 0) -> Path:
    """Write a LoRA adapter for the model at ``model_path`` to ``path``; returns ``path``.

    LoRA on the language model's attention projections (the seed paper's set-up: low-rank matrices in
    the attention layers, vision tower and projector frozen). peft initialises B to zero, which would
    make the adapter a no-op, so B is filled with random values: merged and unmerged models then
    differ from the base, and tests can tell that the adapter was applied.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_path, local_files_only=True)
    lora = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        # The language model's attention only: the vision blocks' fused "qkv" is not matched.
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    path = Path(path)
    peft_model.save_pretrained(path)
    return path


def tiny_model_teach(
    *, model_path: Path, examples, max_steps: int = 200, lr: float = 5e-3
) -> int:
    """Overfit the model at ``model_path`` so that it answers each example's prompt as given; saves in place.

    ``examples`` are ``(image, user_text, answer)`` triples, the image already at the size the model
    sees. The language model (the vision tower stays frozen) learns by rote to continue the
    chat-templated prompt (image, then user text) with ``answer`` and ``<|im_end|>``, until every
    answer token is the most likely one with a mean loss under 0.1, so greedy decoding of that exact
    prompt reproduces the answer. That lets tests check the whole path (prompt, chat template,
    generation, parsing, confidences) on an answer known in advance. Adam with gradients clipped to
    norm 1 (without clipping it oscillates); training is deterministic (no dropout, full batch).
    Returns the number of steps taken (about 35 for a 22-token answer: a few seconds on an idle
    CPU); raises RuntimeError when ``max_steps`` were not enough.
    """
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_path, local_files_only=True)
    batches = []
    for image, text, answer in examples:
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        prompt_length = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
        inputs = processor(text=[prompt + answer + "<|im_end|>"], images=[image], return_tensors="pt")
        labels = inputs["input_ids"].clone()
        labels[:, :prompt_length] = -100
        batches.append((inputs, labels, prompt_length))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("visual" not in name)
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.Adam(trained, lr=lr)
    model.train()
    for step in range(max_steps):
        learnt = True
        optimiser.zero_grad()
        for inputs, labels, prompt_length in batches:
            out = model(**inputs, labels=labels)
            predicted = out.logits[0, prompt_length - 1 : -1].argmax(-1)
            right = bool((predicted == inputs["input_ids"][0, prompt_length:]).all())
            learnt = learnt and right and out.loss.item() < 0.1
            out.loss.backward()
        if learnt:
            break
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimiser.step()
    else:
        raise RuntimeError(f"the model did not learn the answers in {max_steps} steps")
    model.eval()
    model.save_pretrained(model_path)
    return step
