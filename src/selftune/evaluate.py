"""Evaluate a tuned run against its base on the dataset's held-out split.

Perplexity is computed on the tokens the model is trained to write (the owner's turns and note
text), never on context, for the base (adapter disabled) and the tuned model, overall and per
source. The report is written to reports/<id>/report.json.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from selftune import __version__
from selftune.dataset import read_split
from selftune.encoding import IGNORE, encode_record


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


def perplexities(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    max_len: int,
    batch_size: int = 8,
    label: str = "",
) -> dict[str, Any]:
    """Token-weighted perplexity overall and per source over the records' trained tokens."""
    items = [
        (r.get("_meta", {}).get("source", "unknown"), encode_record(tokenizer, r, max_len))
        for r in records
    ]
    items = [(s, it) for s, it in items if any(x != IGNORE for x in it["labels"][1:])]
    items.sort(key=lambda pair: len(pair[1]["input_ids"]))  # less padding per batch
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in tqdm(
        range(0, len(items), batch_size), desc=f"perplexity {label}".strip(), leave=False
    ):
        chunk = items[start : start + batch_size]
        for (source, _), (nll, n) in zip(
            chunk, token_nll(model, [it for _, it in chunk], pad), strict=True
        ):
            for key in ("all", source):
                totals[key][0] += nll
                totals[key][1] += n
    return {
        key: {"perplexity": math.exp(nll / n) if n else None, "tokens": n}
        for key, (nll, n) in sorted(totals.items())
    }


def evaluate_run(run_dir: Path, dataset_dir: Path, max_len: int = 1024) -> dict[str, Any]:
    """The report for a finished run: held-out perplexity of base vs tuned, overall and per source."""
    from selftune.models import load_tuned

    model, tokenizer = load_tuned(run_dir)
    records = read_split(dataset_dir, "valid")
    if not records:
        records = read_split(dataset_dir, "train")
        held_out = False
    else:
        held_out = True
    with model.disable_adapter():
        base = perplexities(model, tokenizer, records, max_len, label="base")
    tuned = perplexities(model, tokenizer, records, max_len, label="tuned")
    run_info = json.loads((run_dir / "run.json").read_text())
    return {
        "run": run_dir.name,
        "dataset": dataset_dir.name,
        "base_model": run_info["base"],
        "split": "valid" if held_out else "train (no held-out split: numbers are optimistic)",
        "perplexity": {"base": base["all"]["perplexity"], "tuned": tuned["all"]["perplexity"]},
        "perplexity_by_source": {
            source: {
                "base": base[source]["perplexity"],
                "tuned": tuned[source]["perplexity"],
                "tokens": base[source]["tokens"],
            }
            for source in base
            if source != "all"
        },
        "scored_tokens": base["all"]["tokens"],
        "train": {
            k: run_info.get(k)
            for k in ("steps", "epochs", "train_loss", "valid_loss", "seconds", "tokens_per_second")
        },
        "selftune_version": __version__,
    }
