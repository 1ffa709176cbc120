"""Cross-entropy over a large vocabulary without the positions x vocabulary logits in memory.

The vocabulary head and the loss run in chunks of `CHUNK` positions; each chunk's gradient with
respect to its hidden states (and the head's weight, if it is trained) is computed in the forward
pass, so the backward pass only scales what was kept. The arithmetic is that of the usual
head + cross-entropy backward (softmax - one-hot, times the weight), done chunk by chunk: no
recomputation, and memory of one chunk's logits instead of all of them (for 1,536 trained
positions and a 49k vocabulary: ~50 MB instead of ~1 GB of logits, their float32 copy,
log-softmax and gradients).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CHUNK = 256


class ChunkedCrossEntropy(torch.autograd.Function):
    """sum over positions of cross_entropy(hidden @ weight.T, targets), chunk by chunk."""

    @staticmethod
    def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, chunk: int) -> Any:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight.to(hidden.dtype)
        wide = torch.promote_types(hidden.dtype, torch.float32)  # bf16 logits: softmax in fp32
        total = torch.zeros((), dtype=wide, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=wide) if need_weight else None
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            t = targets[start : start + chunk]
            logits = (h @ w.t()).to(wide)
            total += F.cross_entropy(logits, t, reduction="sum")
            if need_hidden or need_weight:
                dlogits = torch.softmax(logits, dim=-1)
                dlogits[torch.arange(t.shape[0], device=t.device), t] -= 1.0
                dlogits = dlogits.to(hidden.dtype)
                if grad_hidden is not None:
                    grad_hidden[start : start + chunk] = dlogits @ w
                if grad_weight is not None:
                    grad_weight += (dlogits.t() @ h).to(wide)
        ctx.save_for_backward(
            grad_hidden if grad_hidden is not None else torch.empty(0),
            grad_weight if grad_weight is not None else torch.empty(0),
        )
        ctx.has = (grad_hidden is not None, grad_weight is not None)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: Any) -> Any:
        grad_hidden, grad_weight = ctx.saved_tensors
        has_hidden, has_weight = ctx.has
        dh = grad_hidden * grad_output.to(grad_hidden.dtype) if has_hidden else None
        dw = (grad_weight * grad_output).to(ctx.weight_dtype) if has_weight else None
        return dh, dw, None, None


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder, vocabulary head) of a causal LM (through a PEFT wrapper) whose logits are just
    `hidden @ head.weight.T`; None for anything else (a DDP wrapper, a biased, adapted or
    soft-capped head), which then takes the model's own forward."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not (hasattr(inner, "get_decoder") and hasattr(inner, "get_output_embeddings")):
        return None
    head = inner.get_output_embeddings()
    config = getattr(inner, "config", None)
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(config, attr, None) not in (None, 1, 1.0):
            return None
    return inner.get_decoder(), head


def chunked_loss(
    decoder: Any, head: Any, batch: dict[str, Any], keep: Any, targets: Any
) -> tuple[Any, int]:
    """(summed cross-entropy over the kept positions, their count) through `decoder` + `head`."""
    hidden = decoder(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).last_hidden_state
    total = ChunkedCrossEntropy.apply(hidden[keep], head.weight, targets, CHUNK)
    return total, int(targets.numel())
