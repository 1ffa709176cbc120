"""The training step's kernels compute what PEFT and transformers compute: the fused LoRA layers
(`fused_lora`) against PEFT's forward, per-example attention (`packed_attention`) against the
block-diagonal mask, and a short training run's loss curve against the unfused, masked one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from selftune.training.fused_lora import FusedLinear, fused_lora  # noqa: E402
from selftune.training.packed_attention import packed_attention, segment_lengths  # noqa: E402
from selftune.training.packing import PackedCollator, build_rows, packed_loss  # noqa: E402


def _lora_model(model_dir, dtype, adapter_dtype=None, seed=0):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(base, lora, autocast_adapter_dtype=adapter_dtype is None)
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if "lora_" in name:  # B starts at zero; a trained-looking B makes every gradient count
            param.data = (torch.randn(param.shape, generator=generator) * 0.05).to(
                adapter_dtype or param.dtype
            )
    return model


def _batch(seed=1):
    generator = torch.Generator().manual_seed(seed)
    items = []
    for length in (13, 7, 21, 4, 9):
        ids = torch.randint(5, 200, (length,), generator=generator).tolist()
        items.append({"input_ids": ids, "labels": ids})
    rows = build_rows(items, 32)
    batch = PackedCollator(0)(rows)
    batch.pop("real_tokens")
    return batch


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    total, count = packed_loss(model, dict(batch))
    (total / count).backward()
    grads = {
        n: p.grad.detach().float().clone()
        for n, p in model.named_parameters()
        if p.grad is not None
    }
    return float((total / count).detach()), grads


def test_fused_lora_forward_and_gradients_equal_peft(tiny_model_dir):
    model = _lora_model(tiny_model_dir, torch.float32)
    batch = _batch()
    loss, grads = _loss_and_grads(model, batch)
    with fused_lora(model) as fused:
        assert fused == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
        assert any(type(m) is FusedLinear for m in model.modules())
        fused_loss, fused_grads = _loss_and_grads(model, batch)
    assert not any(type(m) is FusedLinear for m in model.modules())  # swapped back after
    assert fused_loss == pytest.approx(loss, rel=1e-5)
    assert set(fused_grads) == set(grads) and len(grads) == 2 * 2 * 7
    for name, grad in grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_fused_bf16_with_float32_adapters_tracks_peft_in_bf16(tiny_model_dir):
    """The old CPU bf16 step (PEFT, bf16 adapters) and the fused one (float32 master adapters,
    bf16 arithmetic) agree to bf16's precision."""
    old = _lora_model(tiny_model_dir, torch.bfloat16, adapter_dtype=torch.bfloat16)
    new = _lora_model(tiny_model_dir, torch.bfloat16, adapter_dtype=torch.float32)
    assert {p.dtype for n, p in new.named_parameters() if "lora_" in n} == {torch.float32}
    batch = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, grads = _loss_and_grads(old, batch)
        with fused_lora(new):
            fused_loss, fused_grads = _loss_and_grads(new, batch)
    assert fused_loss == pytest.approx(loss, rel=2e-2)
    for name, grad in grads.items():
        cosine = torch.nn.functional.cosine_similarity(
            fused_grads[name].flatten(), grad.flatten(), dim=0
        )
        assert cosine > 0.98, name
        assert fused_grads[name].dtype == torch.float32


def test_segment_lengths_split_at_position_restarts():
    assert segment_lengths(torch.tensor([0, 1, 2, 0, 1, 0, 0, 1, 2, 3])) == [3, 2, 1, 4]
    assert segment_lengths(torch.tensor([5, 6, 7])) == [3]


def test_packed_attention_equals_the_block_diagonal_mask(tiny_model_dir):
    model = _lora_model(tiny_model_dir, torch.float32)
    batch = _batch()
    assert len(segment_lengths(batch["position_ids"][0])) > 1  # really packed
    loss, grads = _loss_and_grads(model, batch)
    with packed_attention(model) as active:
        assert active
        packed_loss_, packed_grads = _loss_and_grads(model, batch)
    assert model.get_base_model().config._attn_implementation == "sdpa"  # restored
    assert packed_loss_ == pytest.approx(loss, rel=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _curve(model, batches, steps, fast):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        if fast:
            with packed_attention(model), fused_lora(model):
                loss, _ = _loss_and_grads(model, batch)
        else:
            loss, _ = _loss_and_grads(model, batch)
        optimizer.step()
        losses.append(loss)
    return losses


def test_loss_curve_of_the_fused_step_equals_the_plain_one(tiny_model_dir):
    batches = [_batch(seed) for seed in (1, 2, 3)]
    plain = _curve(_lora_model(tiny_model_dir, torch.float32), batches, 12, fast=False)
    fast = _curve(_lora_model(tiny_model_dir, torch.float32), batches, 12, fast=True)
    assert plain[-1] < plain[0]  # it learns, so the curves compare something
    assert fast == pytest.approx(plain, rel=1e-4)
