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


def token_nll(
    model: Any, batch: list[dict[str, list[int]]], pad_id: int
) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, scored tokens) for each item of a batch."""
    import torch
    import torch.nn.functional as F

    width = max(len(item["input_ids"]) for item in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), IGNORE)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        mask[row, :n] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
    losses = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(shift_labels.shape)
    scored = (shift_labels != IGNORE).sum(dim=1)
    return [(float(losses[i].sum()), int(scored[i])) for i in range(len(batch))]


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
    items = [
        (
            r.get("_meta", {}).get("source", "unknown"),
            "kind:" + conversation_kind(r),
            encode_record(tokenizer, r, max_len),
        )
        for r in records
    ]
    items = [x for x in items if any(t != IGNORE for t in x[2]["labels"][1:])]
    items.sort(key=lambda x: len(x[2]["input_ids"]))  # less padding per batch
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    score = score or (lambda batch: token_nll(model, batch, pad))
    for start in tqdm(
        range(0, len(items), batch_size), desc=f"perplexity {label}".strip(), leave=False
    ):
        chunk = items[start : start + batch_size]
        for (source, kind, _), (nll, n) in zip(
            chunk, score([it for _, _, it in chunk]), strict=True
        ):
            for key in ("all", source, kind):
                totals[key][0] += nll
                totals[key][1] += n
    return {
        key: {"perplexity": math.exp(nll / n) if n else None, "tokens": n}
        for key, (nll, n) in sorted(totals.items())
    }
