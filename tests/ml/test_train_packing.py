"""Packed training rows, the attention choice and the frozen vision tower of ``ml.train``, on the tiny
random Qwen2.5-VL of ``ml.recognition.vlm_tiny`` (CPU, SDPA)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

from ml.recognition.vlm import DEFAULT_MIN_PIXELS
from ml.recognition.vlm_tiny import tiny_model_build
from ml.train import (
    ConfigError,
    PageCollator,
    PageDataset,
    PageExample,
    PagePack,
    answer_loss,
    checkpointing_set,
    config_load,
    lora_model,
    mrope_index,
    packs_build,
    processor_prepare,
    train,
)
from tests.ml.test_train import TINY_PIXELS, config_write, data_folder_build, tiny_settings


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packing")
    return {"root": root, "model": tiny_model_build(root / "model"), "data": data_folder_build(root / "data")}


def adapted_model(tiny, *, seed: int = 0):
    """The training model with random LoRA B matrices (peft starts them at zero, where the adapter would
    not change the forward pass and A would get no gradient)."""
    config = config_load(config_write(tiny["root"] / "lora.yaml", **tiny_settings(tiny, tiny["root"] / "unused")))
    model = lora_model(config, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.train()


def collator_for(tiny, model) -> PageCollator:
    processor = processor_prepare(model_path=str(tiny["model"]), min_pixels=DEFAULT_MIN_PIXELS,
                                  max_pixels=TINY_PIXELS)
    return PageCollator(processor=processor, max_length=1024, rope_index=mrope_index(model))


def loss_and_gradients(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()
                           if parameter.requires_grad}


def answer_tokens(batch) -> int:
    """Tokens the loss averages over: labelled ones that have a token before them (labels shift by one)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def test_a_packed_row_gives_the_token_weighted_loss_and_lora_gradients_of_its_pages_apart(tiny):
    model = adapted_model(tiny)
    collator = collator_for(tiny, model)
    examples = PageDataset(folder=tiny["data"], split="train").examples
    assert len(examples) == 3
    apart_loss = torch.zeros(())
    apart_gradients: dict[str, torch.Tensor] = {}
    total = 0
    for example in examples:
        batch = collator([example])
        loss, gradients = loss_and_gradients(model, batch)
        tokens = answer_tokens(batch)
        total += tokens
        apart_loss += loss * tokens
        for name, gradient in gradients.items():
            apart_gradients[name] = apart_gradients.get(name, 0) + gradient * tokens
    apart_loss /= total
    packed = collator([PagePack(examples=tuple(examples), length=sum(map(collator.length, examples)))])
    assert packed["input_ids"].shape == (1, sum(map(collator.length, examples)))
    assert "attention_mask" not in packed and answer_tokens(packed) == total
    loss, gradients = loss_and_gradients(model, packed)
    torch.testing.assert_close(loss, apart_loss, rtol=1e-5, atol=1e-6)
    assert gradients.keys() == apart_gradients.keys() and any("lora_A" in name for name in gradients)
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, apart_gradients[name] / total, rtol=1e-4, atol=1e-6, msg=name)

    # The comparison can fail: without the text positions that restart per page, the pages attend to
    # each other; with those 1-D positions for the image tokens too, the pages lose their 2-D layout.
    with torch.no_grad():
        mixed = model(**{**packed, "position_ids": packed["position_ids"][1:]}).loss
        flat = model(**{**packed, "position_ids": packed["position_ids"][:1].expand(4, -1, -1)}).loss
    assert abs(float(mixed) - float(apart_loss)) > 1e-4
    assert abs(float(flat) - float(apart_loss)) > 1e-4


def test_each_page_of_a_packed_row_keeps_its_own_rotary_positions_and_attention_bounds(tiny):
    model = adapted_model(tiny)
    collator = collator_for(tiny, model)
    examples = PageDataset(folder=tiny["data"], split="train").examples[:2]
    packed = collator([PagePack(examples=tuple(examples), length=0)])
    start = 0
    bounds = [0]
    for example in examples:
        alone = model.get_base_model().model.get_rope_index(
            **{key: value for key, value in collator([example]).items()
               if key in ("input_ids", "image_grid_thw", "mm_token_type_ids", "attention_mask")})[0]
        end = start + alone.shape[-1]
        assert torch.equal(packed["position_ids"][1:, :, start:end], alone)
        assert torch.equal(packed["position_ids"][0, 0, start:end], torch.arange(end - start))
        bounds.append(end)
        start = end
    # FlashAttention 2 (CUDA only) reads the same text positions as the bounds of its variable-length
    # kernel: the pages' own, so none attends to another.
    (starts, _), _ = prepare_fa_kwargs_from_position_ids(packed["position_ids"][0])
    assert starts.tolist() == bounds


def page(name: str) -> PageExample:
    return PageExample(image_path=Path(name), prompt="", answer="")


def test_packs_fill_rows_greedily_up_to_max_length_in_a_seeded_order():
    examples = [page(f"{number}.png") for number in range(9)]
    lengths = [300, 700, 250, 400, 900, 100, 600, 350, 500]
    packs = packs_build(examples, lengths=lengths, max_length=1000, seed=3)
    placed = [example for pack in packs for example in pack.examples]
    assert sorted(placed, key=lambda example: example.image_path.name) == examples
    size = dict(zip(examples, lengths, strict=True))
    for pack in packs:
        assert pack.length == sum(size[example] for example in pack.examples) <= 1000
    # First fit: a pack is opened only when no earlier one had room, so sum(lengths) / max_length
    # rounds up to a lower bound that these lengths reach.
    assert len(packs) == 5
    assert packs == packs_build(examples, lengths=lengths, max_length=1000, seed=3)
    orders = {tuple(example.image_path.name for pack in packs_build(examples, lengths=lengths, max_length=1000,
                                                                    seed=seed) for example in pack.examples)
              for seed in range(5)}
    assert len(orders) > 1
    with pytest.raises(ConfigError, match="1001 tokens"):
        packs_build(examples[:1], lengths=[1001], max_length=1000, seed=0)


def test_training_with_packing_lowers_the_loss_in_fewer_steps(tiny, tmp_path):
    collator = collator_for(tiny, adapted_model(tiny))
    lengths = [collator.length(example) for example in PageDataset(folder=tiny["data"], split="train").examples]
    # Room for two of the three training pages a row: two rows an epoch.
    settings = tiny_settings(tiny, tmp_path / "run", packing=True, epochs=6, max_length=sum(sorted(lengths)[:2]) + 8)
    summary = train(config_load(config_write(tmp_path / "c.yaml", **settings)))
    losses = [loss for _, loss in summary.train_losses]
    assert summary.global_step == 12
    assert sum(losses[-3:]) / 3 < losses[0] - 0.2
    assert summary.best_eval_loss < summary.eval_losses[0][1]


def test_packing_needs_one_row_a_step(tiny, tmp_path):
    settings = tiny_settings(tiny, tmp_path / "run", packing=True, batch_size=2)
    with pytest.raises(ConfigError, match="batch_size 1"):
        train(config_load(config_write(tmp_path / "c.yaml", **settings)))


def test_an_attention_kernel_that_cannot_run_here_is_refused_before_loading(tiny, tmp_path):
    with pytest.raises(ConfigError, match="expected one of"):
        train(config_load(config_write(tmp_path / "a.yaml", **tiny_settings(tiny, tmp_path / "a",
                                                                             attn_implementation="flash"))))
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("FlashAttention 2 can run here")
    with pytest.raises(ConfigError, match="flash-attn"):
        train(config_load(config_write(tmp_path / "b.yaml", **tiny_settings(
            tiny, tmp_path / "b", attn_implementation="flash_attention_2"))))


def test_the_frozen_vision_tower_keeps_no_graph_even_with_activation_checkpointing(tiny):
    model = adapted_model(tiny)
    collator = collator_for(tiny, model)
    batch = collator(PageDataset(folder=tiny["data"], split="train").examples[:2])
    visual = model.get_base_model().model.visual
    seen = []
    visual.register_forward_hook(lambda module, inputs, output: seen.append(output.pooler_output))
    _, plain = loss_and_gradients(model, batch)
    checkpointing_set(model, True)
    _, checkpointed = loss_and_gradients(model, batch)
    assert len(seen) == 2
    for features in seen:
        assert not features.requires_grad and features.grad_fn is None
    for name, gradient in plain.items():
        torch.testing.assert_close(checkpointed[name], gradient, rtol=1e-5, atol=1e-7, msg=name)
    assert all(parameter.grad is None for name, parameter in model.named_parameters() if "visual" in name)


def test_both_presets_train_unpacked_with_sdpa_unless_told_otherwise():
    root = Path(__file__).resolve().parents[2]
    for name in ("qwen2_5_vl_lora.yaml", "qwen2_5_vl_lora_medium.yaml"):
        preset = config_load(root / "ml/configs" / name)
        assert (preset.packing, preset.attn_implementation, preset.batch_size) == (False, "sdpa", 1)


def test_the_answer_loss_equals_the_models_loss_with_logits_only_where_labels_follow(tiny):
    model = adapted_model(tiny)
    collator = collator_for(tiny, model)
    examples = PageDataset(folder=tiny["data"], split="train").examples
    for batch in (collator(examples[:2]), collator([PagePack(examples=tuple(examples), length=0)])):
        full, full_gradients = loss_and_gradients(model, batch)
        model.zero_grad(set_to_none=True)
        loss, outputs = answer_loss(model, batch)
        loss.backward()
        torch.testing.assert_close(loss.detach(), full, rtol=1e-5, atol=1e-6)
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                torch.testing.assert_close(parameter.grad, full_gradients[name], rtol=1e-4, atol=1e-6, msg=name)
        # Only the positions a label follows: the answers', not the prompts' with their page tokens.
        followed = (batch["labels"][:, 1:] != -100).any(dim=0)
        assert outputs.logits.shape[:2] == (batch["input_ids"].shape[0], int(followed.sum()))
        assert followed.sum() < batch["input_ids"].shape[1] / 4
