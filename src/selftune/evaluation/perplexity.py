"""Held-out perplexity: the summed negative log-likelihood of the owner's tokens, per source and
per conversation kind."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from selftune.training.encoding import IGNORE, encode_record

SPEAKER_PREFIX = re.compile(r"^([^\n:]{1,40}): ")


MAX_SCORED = 512  # positions projected through the vocabulary head per forward pass


def token_nll(
    model: Any, batch: list[dict[str, list[int]]], pad_id: int, max_scored: int = MAX_SCORED
) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, scored tokens) for each item of a batch.

    The batch runs in parts of at most `max_scored` scored positions, and the vocabulary head
    only at those positions (`logits_to_keep`), so memory stays at ~max_scored x vocab floats
    whatever the batch (a 49k vocabulary: 100 MB, instead of batch x length x vocab)."""
    out: list[tuple[float, int]] = []
    part: list[dict[str, list[int]]] = []
    scored = 0
    for item in batch:
        n = sum(1 for t in item["labels"][1:] if t != IGNORE)
        if part and scored + n > max_scored:
            out += _part_nll(model, part, pad_id)
            part, scored = [], 0
        part.append(item)
        scored += n
    if part:
        out += _part_nll(model, part, pad_id)
    return out


def _part_nll(
    model: Any, batch: list[dict[str, list[int]]], pad_id: int
) -> list[tuple[float, int]]:
    import torch
    import torch.nn.functional as F

    from selftune.training.packing import target_mask

    width = max(len(item["input_ids"]) for item in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), IGNORE)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        mask[row, :n] = 1
    keep, targets = target_mask(labels)
    if not keep.any():
        return [(0.0, 0)] * len(batch)
    device = next(p for p in model.parameters()).device
    with torch.no_grad():
        logits = model(
            input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep.to(device)
        ).logits
        logits = logits.reshape(-1, logits.shape[-1]).float()
        losses = F.cross_entropy(logits, targets.to(device), reduction="none").cpu()
    rows = keep.nonzero()[:, 0]
    sums = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, rows, losses.double())
    counts = keep.sum(dim=1)
    return [(float(sums[i]), int(counts[i])) for i in range(len(batch))]


def conversation_kind(record: dict[str, Any]) -> str:
    """'note', 'group' or 'direct': from the dataset's meta when it says, else from the record
    (group chats name their speakers, "Name: text")."""
    meta = record.get("_meta", {})
    if meta.get("conversation_kind"):
        return str(meta["conversation_kind"])
    if "text" in record:
        return "note"
    names = set()
    for m in record["messages"]:
        if m["role"] == "user":
            found = SPEAKER_PREFIX.match(m["content"])
            if not found:
                return "direct"
            names.add(found.group(1))
    return "group" if names else "direct"


def scored_batches(
    tokenizer: Any, records: list[dict[str, Any]], max_len: int, batch_size: int = 8
) -> list[list[tuple[str, str, dict[str, list[int]]]]]:
    """Batches of (source, 'kind:...', encoded record) with at least one trained token, similar
    lengths together (less padding)."""
    items = [
        (
            r.get("_meta", {}).get("source", "unknown"),
            "kind:" + conversation_kind(r),
            encode_record(tokenizer, r, max_len),
        )
        for r in records
    ]
    items = [x for x in items if any(t != IGNORE for t in x[2]["labels"][1:])]
    items.sort(key=lambda x: len(x[2]["input_ids"]))
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def add_scores(
    totals: dict[str, list[float]],
    batch: list[tuple[str, str, dict[str, list[int]]]],
    scores: list[tuple[float, int]],
) -> None:
    for (source, kind, _), (nll, n) in zip(batch, scores, strict=True):
        for key in ("all", source, kind):
            totals[key][0] += nll
            totals[key][1] += n


def as_perplexities(totals: dict[str, list[float]]) -> dict[str, Any]:
    return {
        key: {"perplexity": math.exp(nll / n) if n else None, "tokens": int(n)}
        for key, (nll, n) in sorted(totals.items())
    }


def perplexities(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    max_len: int,
    batch_size: int = 8,
    label: str = "",
    score: Callable[[list[dict[str, list[int]]]], list[tuple[float, int]]] | None = None,
) -> dict[str, Any]:
    """Token-weighted perplexity overall ('all'), per source and per conversation kind
    ('kind:group', ...) over the records' trained tokens."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    score = score or (lambda batch: token_nll(model, batch, pad))
    batches = scored_batches(tokenizer, records, max_len, batch_size)
    for batch in tqdm(batches, desc=f"perplexity {label}".strip(), leave=False):
        add_scores(totals, batch, score([it for _, _, it in batch]))
    return as_perplexities(totals)
