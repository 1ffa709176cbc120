"""The chunked vocabulary head + cross-entropy gives the loss and gradients of the plain one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selftune.training.loss import ChunkedCrossEntropy


@pytest.mark.parametrize("weight_trained", [False, True])
def test_chunked_cross_entropy_equals_the_plain_loss_and_gradients(weight_trained):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=weight_trained)
    targets = torch.randint(0, 50, (37,))
    plain = F.cross_entropy(hidden @ weight.t(), targets, reduction="sum")
    plain.backward()
    expected = (hidden.grad.clone(), weight.grad.clone() if weight_trained else None)
    hidden.grad = None
    weight.grad = None
    chunked = ChunkedCrossEntropy.apply(hidden, weight, targets, 8)  # 5 chunks, the last short
    (2.0 * chunked).backward()
    assert float(chunked.detach()) == pytest.approx(float(plain.detach()), rel=1e-9)
    assert torch.allclose(hidden.grad, 2.0 * expected[0])
    if weight_trained:
        assert torch.allclose(weight.grad, 2.0 * expected[1])


def test_packed_loss_takes_the_chunked_path_and_matches_the_model_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from selftune.training.loss import decoder_and_head
    from selftune.training.packing import IGNORE, packed_loss, target_mask

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).float()
    assert decoder_and_head(model) is not None
    ids = torch.randint(5, 500, (2, 12))
    labels = ids.clone()
    labels[:, :4] = IGNORE
    positions = torch.cat([torch.arange(6), torch.arange(6)]).repeat(2, 1)
    batch = {"input_ids": ids, "labels": labels, "position_ids": positions}
    total, count = packed_loss(model, batch)
    keep, targets = target_mask(labels)
    with torch.no_grad():
        out = model(input_ids=ids, position_ids=positions, logits_to_keep=keep, use_cache=False)
    logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
    reference = F.cross_entropy(logits, targets, reduction="sum")
    assert count == int(keep.sum())
    assert float(total.detach()) == pytest.approx(float(reference), rel=1e-5)
