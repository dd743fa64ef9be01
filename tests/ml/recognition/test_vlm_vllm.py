"""The vLLM back end's adapter (``ml.recognition.vlm_vllm``): these tests check our adapter, not vLLM.

vLLM needs a CUDA GPU and is not installed where the tests run, so a small test double of the ``vllm``
package goes into ``sys.modules``: ``LLM``, ``SamplingParams``, ``RequestOutput``/``CompletionOutput``,
``Logprob`` and ``lora.request.LoRARequest``, written from the vLLM 0.26.0 wheel's
``entrypoints/llm.py``, ``sampling_params.py``, ``outputs.py``, ``logprobs.py`` and ``lora/request.py``
with those signatures, defaults and output shapes (only the part the adapter uses). That the real
package still matches them can only be checked where it is installed (docker/README.md, "Serving the
VLM with vLLM").

The double's engine is a function each test gives: scripted outputs, or ``tiny_engine``, which runs
the tiny random Qwen2.5-VL with transformers the way vLLM runs a request (the processor with the
engine's ``mm_processor_kwargs``, greedy or sampled decoding until a stop token, which the answer
keeps, per-token log-probabilities of the raw logits, prompt log-probabilities with None at position
0). On it, the vLLM back end must give the transformers back end's answers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from PIL import Image

from ml.recognition.base import Region
from ml.recognition.vlm import HfGenerator, VlmPrompt, VlmRecognizer, generator_load, model_input_size
from ml.recognition.vlm_tiny import tiny_adapter_build
from tests.ml import test_vlm
from tests.ml.test_vlm import TINY_PIXELS, TINY_REGIONS, tiny_config, tiny_page

tiny = test_vlm.tiny  # the fixture: directories of the tiny random model, its adapter and the taught model

# --------------------------------------------------------------------------------------------------
# The vllm double (vLLM 0.26.0)

# vllm.engine.arg_utils.EngineArgs fields the adapter may pass through LLM(**kwargs).
ENGINE_ARGS = {"max_num_seqs", "max_model_len", "limit_mm_per_prompt", "enable_prefix_caching", "enable_lora",
               "max_loras", "max_lora_rank", "max_num_batched_tokens", "generation_config", "load_format"}


@dataclasses.dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclasses.dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    routed_experts: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    lora_request: Any = None


@dataclasses.dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput]
    finished: bool
    metrics: Any = None
    lora_request: Any = None
    encoder_prompt: str | None = None
    encoder_prompt_token_ids: list[int] | None = None
    num_cached_tokens: int | None = None


@dataclasses.dataclass
class SamplingParams:
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True
    skip_reading_prefix_cache: bool | None = None

    def __post_init__(self) -> None:  # vLLM's checks and normalisation, for the fields above
        if not 0.0 <= self.temperature <= 2.0 or not 0.0 < self.top_p <= 1.0 or self.top_k < -1:
            raise ValueError("temperature, top_p or top_k out of range")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        for count in (self.logprobs, self.prompt_logprobs):
            if count is not None and count != -1 and count < 0:
                raise ValueError("logprobs must be non-negative or -1")
        if self.repetition_penalty <= 0.0:
            raise ValueError("repetition_penalty must be greater than zero")
        if not all(isinstance(token, int) for token in self.stop_token_ids or []):
            raise ValueError("stop_token_ids must contain only integers")
        if self.temperature < 1e-5:  # greedy
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0
        if self.skip_reading_prefix_cache is None:
            self.skip_reading_prefix_cache = self.prompt_logprobs is not None


@dataclasses.dataclass(eq=False)
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""
    base_model_name: str | None = None

    def __post_init__(self) -> None:
        if self.lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {self.lora_int_id}")
        assert self.lora_path, "lora_path cannot be empty"


class LLM:
    """``vllm.LLM``: the constructor's named parameters the adapter may use, the rest as EngineArgs;
    ``generate`` answers each prompt with ``engine(llm, prompt, params, lora_request)``."""

    engine: ClassVar[Any] = None
    instances: ClassVar[list[LLM]] = []

    def __init__(self, model: str, *, tokenizer: str | None = None, dtype: str = "auto", seed: int = 0,
                 gpu_memory_utilization: float = 0.92, enforce_eager: bool = False,
                 mm_processor_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"not engine arguments: {sorted(unknown)}")
        self.model = model
        self.dtype = dtype
        self.gpu_memory_utilization = gpu_memory_utilization
        self.mm_processor_kwargs = mm_processor_kwargs or {}
        self.kwargs = kwargs
        self.calls: list[tuple[list, SamplingParams, Any]] = []
        LLM.instances.append(self)

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
                 tokenization_kwargs=None, mm_processor_kwargs=None) -> list[RequestOutput]:
        prompts = prompts if isinstance(prompts, list) else [prompts]
        params = sampling_params if sampling_params is not None else SamplingParams()
        self.calls.append((prompts, params, lora_request))
        return [type(self).engine(self, prompt, params, lora_request) for prompt in prompts]


@pytest.fixture
def vllm_double(monkeypatch):
    """The ``LLM`` class of a double installed as the ``vllm`` package; set ``.engine`` before generating."""
    package = types.ModuleType("vllm")
    package.LLM, package.SamplingParams = LLM, SamplingParams
    package.RequestOutput, package.CompletionOutput = RequestOutput, CompletionOutput
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, module in (("vllm", package), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(LLM, "instances", [])
    monkeypatch.setattr(LLM, "engine", None)
    return LLM


# --------------------------------------------------------------------------------------------------
# Engines for the double

_models: dict[str, Any] = {}


def _model(path: str, *, dummy: bool = False):
    """The model at ``path`` and its processor; ``dummy``: randomly initialised from its config alone, as
    vLLM's ``load_format="dummy"`` makes it."""
    from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    if path not in _models:
        model = (Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(path, local_files_only=True)) if dummy
                 else Qwen2_5_VLForConditionalGeneration.from_pretrained(path, local_files_only=True))
        _models[path] = (model.eval(), AutoProcessor.from_pretrained(path, local_files_only=True))
    return _models[path]


def _logprobs(log_probs: torch.Tensor, token: int, count: int) -> dict[int, Logprob]:
    """One position as vLLM reports it: the given token (with its rank) and the top ``count``."""
    rank = int((log_probs > log_probs[token]).sum()) + 1
    position = {token: Logprob(float(log_probs[token]), rank)}
    for index, top in enumerate(torch.topk(log_probs, count).indices.tolist() if count > 0 else []):
        position.setdefault(top, Logprob(float(log_probs[top]), index + 1))
    return position


def tiny_engine(llm: LLM, prompt: dict, params: SamplingParams, lora_request) -> RequestOutput:
    """What vLLM does with one request, on the tiny model at ``llm.model`` run by transformers."""
    model, processor = _model(llm.model, dummy=llm.kwargs.get("load_format") == "dummy")
    inputs = processor(text=[prompt["prompt"]], images=[prompt["multi_modal_data"]["image"]], return_tensors="pt",
                       **llm.mm_processor_kwargs)
    prompt_ids = inputs["input_ids"][0].tolist()
    stops = set(params.stop_token_ids or []) | {processor.tokenizer.eos_token_id}
    sampled = params.temperature >= 1e-5
    decoding = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p} if sampled else {
        "do_sample": False}
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=params.max_tokens, min_new_tokens=params.min_tokens,
                             eos_token_id=sorted(stops), top_k=None,
                             repetition_penalty=params.repetition_penalty, output_logits=True,
                             return_dict_in_generate=True, **decoding)
        ids = out.sequences[0, len(prompt_ids):].tolist()
        prompt_log_probs = torch.log_softmax(model(**inputs).logits[0].float(), dim=-1)
    length = next((position + 1 for position, token in enumerate(ids) if token in stops), len(ids))
    ids = ids[:length]  # the stop token is kept, as vLLM keeps it in token_ids
    logprobs = None
    if params.logprobs is not None:
        logprobs = [_logprobs(torch.log_softmax(step[0].float(), dim=-1), token, params.logprobs)
                    for step, token in zip(out.logits, ids)]
    prompt_logprobs = None
    if params.prompt_logprobs is not None:
        prompt_logprobs = [None] + [_logprobs(prompt_log_probs[position - 1], prompt_ids[position],
                                              params.prompt_logprobs) for position in range(1, len(prompt_ids))]
    text = processor.tokenizer.decode(ids, skip_special_tokens=True) if params.detokenize else ""
    completion = CompletionOutput(index=0, text=text, token_ids=ids, cumulative_logprob=None, logprobs=logprobs,
                                  finish_reason="stop" if ids and ids[-1] in stops else "length")
    return RequestOutput(request_id=str(len(llm.calls)), prompt=prompt["prompt"], prompt_token_ids=prompt_ids,
                         prompt_logprobs=prompt_logprobs, outputs=[completion], finished=True,
                         lora_request=lora_request, num_cached_tokens=0)


def scripted_engine(*completions: tuple[list[int], list[float] | None]):
    """An engine that answers the given (token ids, log-probabilities) in turn, over the real prompt ids."""
    queue = list(completions)

    def engine(llm, prompt, params, lora_request):
        _, processor = _model(llm.model)
        prompt_ids = processor(text=[prompt["prompt"]], images=[prompt["multi_modal_data"]["image"]],
                               return_tensors="pt", **llm.mm_processor_kwargs)["input_ids"][0].tolist()
        ids, lps = queue.pop(0)
        logprobs = None if lps is None else [{token: Logprob(lp, 1)} for token, lp in zip(ids, lps)]
        return RequestOutput(request_id="0", prompt=prompt["prompt"], prompt_token_ids=prompt_ids, prompt_logprobs=None,
                             outputs=[CompletionOutput(0, "", ids, None, logprobs)], finished=True)

    return engine


def page_prompt(text: str = "read this") -> VlmPrompt:
    page = tiny_page()
    size = model_input_size(page_size=page.size, max_pixels=TINY_PIXELS)
    return VlmPrompt(image=page.resize(size, Image.Resampling.BICUBIC), text=text, size=size)


# --------------------------------------------------------------------------------------------------
# Tests


def test_without_vllm_installed_the_back_end_names_the_package_to_install(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm then raises ImportError

    with pytest.raises(ImportError, match=r"pip install vllm on a CUDA node"):
        generator_load(tiny_config(tiny["base"], backend="vllm"))


def test_the_engine_gets_the_model_its_limits_and_the_configured_image_bounds(vllm_double, tiny):
    from ml.recognition.vlm_vllm import PROMPT_TEXT_TOKENS, VllmGenerator

    generator = generator_load(tiny_config(tiny["base"], backend="vllm", batch_size=32, dtype="bfloat16"))

    assert isinstance(generator, VllmGenerator) and generator.factor == 28 and generator.lora is None
    (llm,) = vllm_double.instances
    assert (llm.model, llm.dtype, llm.gpu_memory_utilization) == (str(tiny["base"]), "bfloat16", 0.9)
    assert llm.mm_processor_kwargs == {"size": {"shortest_edge": 28 * 28 * 4, "longest_edge": TINY_PIXELS}}
    assert llm.kwargs == {"max_num_seqs": 32, "max_model_len": 16 + PROMPT_TEXT_TOKENS + 16,
                          "enable_prefix_caching": True, "limit_mm_per_prompt": {"image": 1, "video": 0}}
    VllmGenerator(tiny_config(tiny["base"]), max_model_len=9000, enforce_eager=True)
    assert vllm_double.instances[1].kwargs["max_model_len"] == 9000


def test_reading_is_greedy_with_the_chosen_tokens_logprobs_and_stops_at_the_end_tokens(vllm_double, tiny):
    generator = generator_load(tiny_config(tiny["base"], backend="vllm", max_new_tokens=40))
    tokenizer = generator.processor.tokenizer
    end, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")

    params = generator.sampling_params()

    assert (params.temperature, params.top_k, params.max_tokens, params.logprobs) == (0.0, 0, 40, 0)
    assert set(params.stop_token_ids) == {end, pad} and params.detokenize is False
    sampled = generator_load(tiny_config(tiny["base"], backend="vllm", do_sample=True, confidence=False))
    params = sampled.sampling_params()
    assert (params.temperature, params.top_p, params.top_k, params.logprobs) == (0.95, 0.7, 0, None)


def test_the_prompt_is_the_chat_templated_user_turn_with_the_page_image(vllm_double, tiny):
    vllm_double.engine = scripted_engine(([5, 6], None))
    generator = generator_load(tiny_config(tiny["base"], backend="vllm", confidence=False))
    prompt = page_prompt("read this")

    generator([prompt])

    ((requests, _, lora),) = vllm_double.instances[0].calls
    assert requests == [{"prompt": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                   "<|vision_start|><|image_pad|><|vision_end|>read this<|im_end|>\n"
                                   "<|im_start|>assistant\n",
                         "multi_modal_data": {"image": prompt.image}}]
    assert lora is None


def test_outputs_are_cut_at_the_first_stop_and_carry_each_tokens_probability_and_end(vllm_double, tiny):
    generator = generator_load(tiny_config(tiny["base"], backend="vllm"))
    tokenizer = generator.processor.tokenizer
    ids = tokenizer('[{"index": 1, "text": "ok"}]', add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    lps = [-0.1 * (position + 1) for position in range(len(ids))]
    vllm_double.engine = scripted_engine((ids + [end, ids[0]], lps + [-0.5, -0.5]))

    (output,) = generator([page_prompt()])

    assert output.text == '[{"index": 1, "text": "ok"}]'
    assert output.token_probs == pytest.approx([math.exp(lp) for lp in lps])
    assert len(output.token_ends) == len(ids) and output.token_ends[-1] == len(output.text)
    assert list(output.token_ends) == sorted(output.token_ends)


def test_answers_are_scored_by_the_prompt_logprobs_of_their_own_tokens_only(vllm_double, tiny):
    generator = generator_load(tiny_config(tiny["base"], backend="vllm"))
    tokenizer = generator.processor.tokenizer
    answers = ['[{"index": 1, "text": "ok"}]', "x"]

    def engine(llm, prompt, params, lora_request):
        prefix = [generator.image_token_id] * 12 + [1, 2, 3]  # the 84 x 112 page: 12 visual tokens
        answer = tokenizer(prompt["prompt"].split("assistant\n")[-1], add_special_tokens=False)["input_ids"]
        ids, answer_length = prefix + answer, len(answer)
        # -100 on every position before the answer; the answer's k-th token from the end gets -k.
        values = [-100.0] * len(ids)
        for back in range(1, answer_length + 1):
            values[-back] = -float(back)
        positions = [None] + [{token: Logprob(value)} for token, value in zip(ids[1:], values[1:])]
        if prompt["prompt"].endswith("x"):  # a list that leaves out the positions it did not compute
            positions = [None] + positions[-answer_length:]
        assert params.prompt_logprobs == 0 and params.max_tokens == 1 and params.temperature == 0.0
        return RequestOutput("0", prompt["prompt"], ids, positions, [CompletionOutput(0, "", [7], None, None)], True)

    vllm_double.engine = engine
    lengths = [len(tokenizer(answer, add_special_tokens=False)["input_ids"]) for answer in answers]

    scores = generator.answers_score(page_prompt(), answers, batch_size=1)

    assert scores == [-sum(range(1, length + 1)) for length in lengths]
    assert len(vllm_double.instances[0].calls) == 2  # batch_size answers a call


def test_an_adapter_is_served_as_a_lora_request(vllm_double, tiny, tmp_path):
    from ml.recognition.vlm_vllm import lora_rank_bound

    adapter = tiny_adapter_build(model_path=tiny["base"], path=tmp_path / "adapter", rank=4)
    vllm_double.engine = scripted_engine(([5], None))
    generator = generator_load(tiny_config(tiny["base"], backend="vllm", adapter_path=str(adapter), confidence=False))

    generator([page_prompt()])

    (llm,) = vllm_double.instances
    assert (llm.kwargs["enable_lora"], llm.kwargs["max_loras"], llm.kwargs["max_lora_rank"]) == (True, 1, 8)
    ((_, _, lora),) = llm.calls
    assert (lora.lora_int_id, lora.lora_path) == (1, str(adapter))
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(ValueError, match="ml.vlm_merge"):
        lora_rank_bound(str(tmp_path / "big"))


def test_a_page_the_engine_would_resize_is_refused(vllm_double, tiny):
    vllm_double.engine = tiny_engine
    generator = generator_load(tiny_config(tiny["base"], backend="vllm", max_new_tokens=2))

    with pytest.raises(RuntimeError, match="resized"):
        generator([VlmPrompt(image=Image.new("RGB", (448, 448)), text="hello", size=(448, 448))])


def test_the_vllm_back_end_reads_a_page_end_to_end_like_the_transformers_one(vllm_double, tiny):
    vllm_double.engine = tiny_engine
    config = tiny_config(tiny["taught"], max_new_tokens=32, device="cpu", backend="vllm")
    recognizer = VlmRecognizer(config)

    readings = recognizer.read_page(page=tiny_page(), regions=TINY_REGIONS)

    assert [(reading.index, reading.text) for reading in readings] == [(1, "ok"), (2, "")]
    assert all(0.5 < reading.confidence <= 1.0 for reading in readings)
    assert recognizer.last_attempts == (1,) and recognizer.generate_calls == 1
    hf = HfGenerator(dataclasses.replace(config, backend="transformers"))
    prompts = [page_prompt("read this"), page_prompt("read that")]
    for ours, theirs in zip(recognizer.load()(prompts), hf(prompts), strict=True):
        assert (ours.text, ours.token_ends) == (theirs.text, theirs.token_ends)
        assert ours.token_probs == pytest.approx(theirs.token_probs, abs=1e-4)
    region = Region(index=1, bbox=(10, 10, 200, 100))
    candidates = ["ok", "Noah Chen", ""]
    scores = recognizer.candidates_score(page=tiny_page(), region=region, candidates=candidates)
    assert scores == pytest.approx(VlmRecognizer(dataclasses.replace(config, backend="transformers")).candidates_score(
        page=tiny_page(), region=region, candidates=candidates), abs=1e-3)


def test_the_bench_reads_through_vllm_on_a_dummy_loaded_model_with_forced_answer_lengths(vllm_double, tmp_path):
    import importlib.util

    from ml.recognition.vlm_tiny import tiny_processor_build

    spec = importlib.util.spec_from_file_location("bench_vlm", Path(__file__).parents[3] / "bench" / "vlm.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    vllm_double.engine = tiny_engine
    processor = tiny_processor_build()

    generator = bench.vllm_generator_build(bench.model_config(tiny=True, processor=processor), processor=processor,
                                           folder=tmp_path, batch=2, new_tokens=5)
    rows = bench.generate_bench(generator, variants=["vllm"], batch_sizes=[1, 2], frame=(84, 112), regions=2,
                                new_tokens=5, device="cpu")

    (llm,) = vllm_double.instances
    assert llm.kwargs["load_format"] == "dummy" and llm.kwargs["max_num_seqs"] == 2 and llm.dtype == "bfloat16"
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert all(params.min_tokens == params.max_tokens == 5 for _, params, _ in llm.calls)
    assert [(row["variant"], row["batch_size"], row["generated"]) for row in rows] == [("vllm", 1, 5), ("vllm", 2, 5)]
    assert all(row["pages_per_s"] > 0 and row["peak_gib"] is None for row in rows)
