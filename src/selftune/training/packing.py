"""Sequence packing: short encoded examples share rows of at most `max_seq_len` tokens.

Rows are filled first-fit decreasing. Inside a row, position ids restart at 0 for every example;
with no attention mask, transformers builds a block-diagonal causal mask from those restarts, so
no token attends across an example boundary. Padding at the end of a row is one more "example"
(position ids from 0, labels ignored) and never touches a real token. The first token of each
example is never a target: it would otherwise be predicted from the previous example.

The loss side (`packed_loss`) computes logits only at positions whose next token is trained,
which is a small share of a chat row, instead of the full batch x seq x vocab tensor.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100


def pack_examples(lengths: list[int], max_len: int) -> list[list[int]]:
    """Group example indices into rows whose total length is at most `max_len` (first-fit decreasing)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        size = min(lengths[i], max_len)
        for r, free in enumerate(room):
            if free >= size:
                rows[r].append(i)
                room[r] -= size
                break
        else:
            rows.append([i])
            room.append(max_len - size)
    return rows


def build_rows(items: list[dict[str, list[int]]], max_len: int) -> list[dict[str, list[int]]]:
    """Packed rows: concatenated input_ids, labels (first token of each example ignored), positions."""
    rows = []
    for members in pack_examples([len(item["input_ids"]) for item in items], max_len):
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for i in members:
            item_ids = items[i]["input_ids"][:max_len]
            item_labels = items[i]["labels"][:max_len]
            ids += item_ids
            labels += [IGNORE] + list(item_labels[1:])
            positions += list(range(len(item_ids)))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": positions})
    return rows


class PackedCollator:
    """Pads packed rows to the longest in the batch; padding is its own segment, never trained."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(row["input_ids"]) for row in rows)
        ids, labels, positions, real = [], [], [], 0
        for row in rows:
            pad = width - len(row["input_ids"])
            real += len(row["input_ids"])
            ids.append(row["input_ids"] + [self.pad_token_id] * pad)
            labels.append(row["labels"] + [IGNORE] * pad)
            positions.append(row["position_ids"] + list(range(pad)))
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.tensor(positions),
            "real_tokens": torch.tensor(real),
        }


def target_mask(labels: Any) -> tuple[Any, Any]:
    """(bool mask of positions whose next token is trained, those next tokens)."""
    import torch

    shifted = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE)], dim=1)
    keep = shifted != IGNORE
    return keep, shifted[keep]


def packed_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(summed cross-entropy over trained tokens, their count) for one packed batch.

    The decoder runs once; the vocabulary head and the loss run only at the kept positions and
    in chunks (`loss.chunked_loss`), so the positions x vocabulary logits never exist at once.
    A model wrapped for DDP (or one whose head is not a plain linear layer) goes through its own
    forward instead, with `logits_to_keep` (a boolean mask) so that only the kept hidden states
    are projected, keeping gradient synchronisation as usual.
    """
    import torch.nn.functional as F

    from selftune.training.loss import chunked_loss, decoder_and_head

    keep, targets = target_mask(batch["labels"])
    parts = decoder_and_head(model)
    if parts is not None:  # the vocabulary head and the loss in chunks (see `loss`)
        return chunked_loss(*parts, batch, keep, targets)
    outputs = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
        use_cache=False,
    )
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    return F.cross_entropy(logits, targets, reduction="sum"), int(targets.numel())
