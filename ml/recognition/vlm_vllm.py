"""The optional vLLM back end of the VLM engine: ``VllmGenerator`` answers ``VlmPrompt`` batches with vLLM.

``VlmConfig(backend="vllm")`` (``VLM_BACKEND=vllm``) makes ``generator_load`` build it instead of
``HfGenerator``. vLLM is not part of markdesk's install: it needs ``pip install vllm`` on a CUDA node
(``docker/README.md``, "Serving the VLM with vLLM"). Written against vLLM 0.26.0, the release whose
wheel pins torch 2.11 (the GPU node's): ``LLM.__init__``/``LLM.generate``, ``SamplingParams``,
``RequestOutput``/``CompletionOutput`` and ``LoRARequest`` as that release defines them.

The contract is ``HfGenerator``'s, and the same inputs give the same answer:

- Prompt: the model's processor (loaded with transformers, as the transformers path loads it) renders
  one user turn, image then text, with the generation prompt; vLLM gets that text and the page image
  (``{"prompt": text, "multi_modal_data": {"image": image}}``) and expands the image placeholder.
- Image: it arrives already resized to ``prompt.size`` (multiples of 28, area within the config's
  min/max pixels), and vLLM's processor gets the same bounds (``mm_processor_kwargs`` ``size``), so its
  resize is the identity. Checked on every answer: the processed prompt must hold exactly
  ``(width / 28) * (height / 28)`` image tokens.
- Decoding: greedy (temperature 0) unless ``do_sample`` (then ``temperature``/``top_p``, top-k off);
  the repetition penalty of the checkpoint's generation config, as transformers' ``generate`` applies
  it. Generation stops at the generation config's and the tokenizer's end and padding tokens; the answer
  is cut at the first of them and decoded by the transformers path's own code (``output_decode``),
  so text and token ends agree.
- Confidence: ``logprobs=0`` makes vLLM return the chosen token's log-probability only (the OpenAI
  convention: the sampled token always, plus the top ``logprobs``), from the raw logits (vLLM's default
  ``logprobs_mode`` "raw_logprobs"), i.e. what ``VlmOutput.token_probs`` documents.
- ``answers_score``: one request per answer, prompt = templated prefix + answer, ``prompt_logprobs=0``
  (each prompt position's own token's log-probability; position 0 has none); the answer's last
  positions are summed. vLLM 0.26 reads no prefix cache for a request that asks for prompt logprobs
  (cached positions would have none), so each answer prefills the page again; prefix caching still
  makes the retry prompts of ``VlmRecognizer`` (same page, other text) cheap.
- LoRA: ``adapter_path`` is served through vLLM's LoRA support (``enable_lora`` + ``LoRARequest``);
  merging it first (``python -m ml.vlm_merge``) is faster and is what ``docker/README.md`` recommends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml.recognition.vlm import (
    QWEN_FACTOR,
    VlmConfig,
    VlmOutput,
    VlmPrompt,
    chat_text,
    output_decode,
    processor_load,
    stop_ids,
)

# Room for the prompt's text around the image (instruction and region list: about 25 tokens a region).
PROMPT_TEXT_TOKENS = 2048
# vLLM 0.26's allowed ``max_lora_rank`` values (``vllm.config.lora.MaxLoRARanks``).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
MISSING = (
    "VLM_BACKEND=vllm needs the vllm package, which is not part of markdesk's install: "
    "pip install vllm on a CUDA node (docker/README.md, 'Serving the VLM with vLLM'), "
    "or use VLM_BACKEND=transformers"
)


def _vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as error:
        raise ImportError(MISSING) from error
    return vllm, LoRARequest


def lora_rank_bound(adapter_path: str) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds the adapter's rank (``r`` of its adapter_config.json)."""
    rank = int(json.loads((Path(adapter_path) / "adapter_config.json").read_text())["r"])
    for bound in LORA_RANKS:
        if bound >= rank:
            return bound
    raise ValueError(f"the adapter's rank {rank} is above vLLM's largest ({LORA_RANKS[-1]}): merge it with "
                     "python -m ml.vlm_merge and serve the merged model")


class VllmGenerator:
    """Qwen2.5-VL served by a vLLM ``LLM`` engine (+ optional LoRA adapter); answers ``VlmPrompt`` batches.

    ``config``: ``model_path`` (a merged fine-tune, or the base model with ``adapter_path``), ``dtype``
    ("auto": the checkpoint's, bfloat16 for Qwen2.5-VL), ``batch_size`` (the most sequences vLLM runs at
    once), ``min_pixels``/``max_pixels``, ``max_new_tokens``, sampling and ``confidence`` as for
    ``HfGenerator``; ``device`` is vLLM's choice (its CUDA device). ``gpu_memory_utilization`` is the
    share of the GPU vLLM takes for weights, activations and KV cache; ``max_model_len`` (default:
    the largest image's visual tokens + ``PROMPT_TEXT_TOKENS`` + ``max_new_tokens``) bounds a sequence;
    ``engine_options`` go to ``vllm.LLM`` as they are (e.g. ``enforce_eager=True``).
    """

    def __init__(self, config: VlmConfig, *, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 **engine_options: Any) -> None:
        vllm, lora_request = _vllm()
        self.config = config
        size = {"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels}
        options: dict[str, Any] = {
            "dtype": config.dtype,
            "max_num_seqs": max(config.batch_size, 1),
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len or (
                config.max_pixels // QWEN_FACTOR**2 + PROMPT_TEXT_TOKENS + config.max_new_tokens),
            "limit_mm_per_prompt": {"image": 1, "video": 0},
            "mm_processor_kwargs": {"size": size},
            "enable_prefix_caching": True,
        }
        self.lora = None
        if config.adapter_path is not None:
            options.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank_bound(config.adapter_path))
            self.lora = lora_request("adapter", 1, str(config.adapter_path))
        self.llm = vllm.LLM(config.model_path, **{**options, **engine_options})
        self.sampling_overrides: dict[str, Any] = {}
        self._sampling_params = vllm.SamplingParams

        processor = processor_load(model_path=config.model_path, adapter_path=config.adapter_path)
        image_processor = processor.image_processor
        self.processor = processor
        self.factor = int(image_processor.patch_size) * int(image_processor.merge_size)
        tokenizer = processor.tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
        generation = _generation_config(config.model_path)
        self.stop_ids = stop_ids(generation_config=generation, tokenizer=tokenizer)
        self.repetition_penalty = float(getattr(generation, "repetition_penalty", None) or 1.0)

    def _text(self, prompt: VlmPrompt) -> str:
        return chat_text(processor=self.processor, text=prompt.text)

    def _request(self, prompt: VlmPrompt, text: str) -> dict[str, Any]:
        return {"prompt": text, "multi_modal_data": {"image": prompt.image}}

    def sampling_params(self):
        """The ``SamplingParams`` of a reading: the config's decoding, stops and (with ``confidence``) logprobs;
        ``sampling_overrides`` replace or add fields (``bench/vlm.py`` forces the answer's length with them)."""
        config = self.config
        sampling = {"temperature": config.temperature, "top_p": config.top_p} if config.do_sample else {
            "temperature": 0.0}
        return self._sampling_params(**{
            "max_tokens": config.max_new_tokens,
            "top_k": 0,
            "repetition_penalty": self.repetition_penalty,
            "stop_token_ids": sorted(self.stop_ids),
            "logprobs": 0 if config.confidence else None,
            "detokenize": False,  # decoded here, as the transformers path decodes
            **sampling,
            **self.sampling_overrides,
        })

    def _resize_check(self, prompt: VlmPrompt, prompt_token_ids: Sequence[int]) -> None:
        width, height = prompt.size
        expected = (width // self.factor) * (height // self.factor)
        seen = sum(1 for token in prompt_token_ids if token == self.image_token_id)
        if seen != expected:
            raise RuntimeError(f"vLLM's processor resized the page to {seen} visual tokens, the prompt's boxes "
                               f"assume {prompt.size} ({expected} tokens)")

    def __call__(self, prompts: Sequence[VlmPrompt]) -> list[VlmOutput]:
        requests = [self._request(prompt, self._text(prompt)) for prompt in prompts]
        results = self.llm.generate(requests, self.sampling_params(), use_tqdm=False, lora_request=self.lora)
        outputs = []
        for prompt, result in zip(prompts, results, strict=True):
            self._resize_check(prompt, result.prompt_token_ids)
            completion = result.outputs[0]
            ids = list(completion.token_ids)
            length = next((position for position, token in enumerate(ids) if token in self.stop_ids), len(ids))
            probs = None
            if self.config.confidence:
                probs = [math.exp(step[token].logprob) for token, step in zip(ids[:length], completion.logprobs)]
            outputs.append(output_decode(tokenizer=self.processor.tokenizer, ids=ids[:length], probs=probs))
        return outputs

    def answers_score(self, prompt: VlmPrompt, answers: Sequence[str], *, batch_size: int = 8) -> list[float]:
        """The log-probability (natural log, summed over its tokens) the model gives each of ``answers``
        as its reply to ``prompt`` (``HfGenerator.answers_score``); ``batch_size`` answers a ``generate`` call."""
        prefix = self._text(prompt)
        tokenizer = self.processor.tokenizer
        # One token is generated (vLLM generates at least one); only the prompt's log-probabilities count.
        params = self._sampling_params(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        scores: list[float] = []
        step = max(1, batch_size)
        for first in range(0, len(answers), step):
            chunk = list(answers[first : first + step])
            results = self.llm.generate([self._request(prompt, prefix + answer) for answer in chunk], params,
                                        use_tqdm=False, lora_request=self.lora)
            for answer, result in zip(chunk, results, strict=True):
                self._resize_check(prompt, result.prompt_token_ids)
                length = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
                # The answer's tokens end the prompt; counted from the end, so a list that leaves out
                # positions it did not compute still lines up.
                scores.append(float(sum(result.prompt_logprobs[-back][result.prompt_token_ids[-back]].logprob
                                        for back in range(1, length + 1))))
        return scores


def _generation_config(model_path: str):
    """The checkpoint's generation config (transformers' ``GenerationConfig``), None when it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path, local_files_only=True)
    except OSError:
        return None
