"""Attention over packed rows, one example at a time, instead of a row-wide block-diagonal mask.

A packed row holds several examples whose position ids restart at 0 (`packing`). transformers'
`sdpa` attention turns those restarts into a row x row block-diagonal mask, and the CPU
flash-attention kernel then computes every query-key block of the row, masked or not, without
its causal shortcut, and with the key/value heads copied out for grouped-query attention:
profiled on the embedded model (one 768-token row of ~4 examples, one thread), 36 % of a training
step. Here each example's span gets its own `scaled_dot_product_attention(is_causal=True)`: the
same arithmetic on the kept blocks only (sum of length^2 / 2 instead of row^2), grouped heads
read in place.

`packed_attention(model)` switches a model to it for the duration of a `with` block (training
and its evaluations) and back after, only for the families whose attention is plain causal
softmax attention (`FAMILIES`, no sliding window); any other model keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

NAME = "selftune_packed"
# plain causal attention (no sliding window, soft-capping, sinks or bias in the scores)
FAMILIES = ("llama", "qwen2", "qwen3", "mistral")


def segment_lengths(positions: torch.Tensor) -> list[int]:
    """Lengths of the runs of consecutive position ids (0, 1, 2, 0, 1 -> [3, 2]) in one row."""
    if positions.numel() == 0:
        return []
    breaks = torch.nonzero(positions[1:] != positions[:-1] + 1).flatten() + 1
    edges = [0, *breaks.tolist(), positions.numel()]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def packed_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query (batch, heads, seq, dim), key and value
    (batch, kv_heads, seq, dim); returns (batch, seq, heads, dim) and no weights."""
    if attention_mask is not None or kwargs.get("sliding_window") or kwargs.get("softcap"):
        raise ValueError(f"{NAME} attention takes no mask, sliding window or soft-capping")
    gqa = query.shape[1] != key.shape[1]
    rows = []
    for b, (q, k, v) in enumerate(
        zip(query.unbind(0), key.unbind(0), value.unbind(0), strict=True)
    ):
        if position_ids is None:
            lengths = [q.shape[1]]
        else:
            lengths = segment_lengths(position_ids[min(b, position_ids.shape[0] - 1)])
        parts = [
            F.scaled_dot_product_attention(
                qs.unsqueeze(0),
                ks.unsqueeze(0),
                vs.unsqueeze(0),
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
                enable_gqa=gqa,
            )
            for qs, ks, vs in zip(
                q.split(lengths, dim=1),
                k.split(lengths, dim=1),
                v.split(lengths, dim=1),
                strict=True,
            )
        ]
        rows.append(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
    out = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return out.transpose(1, 2).contiguous(), None


def supports_packed_attention(model: Any) -> bool:
    """True for a model of `FAMILIES` with sdpa attention and no sliding window."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in FAMILIES:
        return False
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    window = getattr(config, "sliding_window", None)
    return not (window and getattr(config, "use_sliding_window", True))


@contextmanager
def packed_attention(model: Any) -> Iterator[bool]:
    """Run `model` (a causal LM, through a PEFT wrapper too) with `packed_attention_forward`
    inside the block when it `supports_packed_attention`; yields whether it does."""
    from transformers import AttentionInterface

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not supports_packed_attention(inner):
        yield False
        return
    AttentionInterface.register(NAME, packed_attention_forward)
    config = inner.config
    previous = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield True
    finally:
        config._attn_implementation = previous
