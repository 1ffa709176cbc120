"""The report's sections for chat and leaks, each working through its sample within the budget:
perplexity (base and tuned on the same held-out batches), replies to held-out chat contexts and
their style, authorship and context fit, and the leak tests."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from selftune.config import EvalConfig
from selftune.evaluation.budget import EvalBudget
from selftune.evaluation.perplexity import (
    add_scores,
    as_perplexities,
    conversation_kind,
    scored_batches,
)

REPLY_CHUNK = 4  # held-out contexts replied to in one batched generate


def held_out_contexts(records: list[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    """Up to `limit` (context, real reply) pairs: each owner turn of the held-out chats with the
    turns before it; chosen at random (seeded) across sources."""
    pairs = []
    for r in records:
        if "messages" not in r:
            continue
        kind = conversation_kind(r)
        for i, m in enumerate(r["messages"]):
            if m["role"] == "assistant" and i > 0 and m["content"].strip():
                pairs.append(
                    {
                        "context": r["messages"][:i],
                        "real": m["content"],
                        "source": r.get("_meta", {}).get("source", "unknown"),
                        "kind": kind,
                    }
                )
    if len(pairs) > limit:
        pairs = random.Random(f"contexts-{seed}").sample(pairs, limit)
    return pairs


def generate_replies(
    sides: dict[str, Any], contexts: list[dict[str, Any]], config: EvalConfig, budget: EvalBudget
) -> None:
    """Adds each side's replies (`config.candidates` each) to the contexts the budget allows."""
    for chunk in budget.chunks("replies", contexts, REPLY_CHUNK, unit="held-out messages"):
        for name, side in sides.items():
            replies = side.chat_many(
                [c["context"] for c in chunk],
                config.candidates,
                config.temperature,
                config.max_new_tokens,
                config.seed,
            )
            for c, out in zip(chunk, replies, strict=True):
                c[name] = out


def perplexity_section(
    base: Any,
    tuned: Any,
    records: list[dict[str, Any]],
    max_len: int,
    budget: EvalBudget,
    seed: int = 0,
) -> dict[str, Any]:
    """Base and tuned perplexity on the same batches (in a seeded random order, so a budget
    that stops early scores a random part of the held-out set)."""
    batches = scored_batches(base.tokenizer, records, max_len)
    random.Random(f"perplexity-{seed}").shuffle(batches)
    totals: dict[str, dict[str, list[float]]] = {
        "base": defaultdict(lambda: [0.0, 0]),
        "tuned": defaultdict(lambda: [0.0, 0]),
    }
    for chunk in budget.chunks("perplexity", batches, unit="batches of held-out examples"):
        for batch in chunk:
            encoded = [item for _, _, item in batch]
            add_scores(totals["base"], batch, base.nll(encoded))
            add_scores(totals["tuned"], batch, tuned.nll(encoded))
    b, t = as_perplexities(totals["base"]), as_perplexities(totals["tuned"])
    if "all" not in b:
        return {}

    def rows(prefix: bool) -> dict[str, Any]:
        return {
            key.removeprefix("kind:"): {
                "base": b[key]["perplexity"],
                "tuned": t[key]["perplexity"],
                "tokens": b[key]["tokens"],
            }
            for key in b
            if key != "all" and key.startswith("kind:") == prefix
        }

    return {
        "perplexity": {"base": b["all"]["perplexity"], "tuned": t["all"]["perplexity"]},
        "perplexity_by_source": rows(False),
        "perplexity_by_kind": rows(True),
        "scored_tokens": b["all"]["tokens"],
    }


def style_section(contexts: list[dict[str, Any]], reference: list[str]) -> dict[str, Any]:
    from selftune.evaluation import style

    def flat(key: str, rows: list[dict[str, Any]]) -> list[str]:
        return [x for c in rows for x in c[key]] if key != "real" else [c["real"] for c in rows]

    out: dict[str, Any] = {
        "profile": {k: style.profile(flat(k, contexts)) for k in ("real", "base", "tuned")},
        "distance": {
            k: style.distance(flat(k, contexts), flat("real", contexts), reference)
            for k in ("base", "tuned")
        },
        "by_source": {},
    }
    for source in sorted({c["source"] for c in contexts}):
        rows = [c for c in contexts if c["source"] == source]
        out["by_source"][source] = {
            k: style.distance(flat(k, rows), flat("real", rows), reference)["distance"]
            for k in ("base", "tuned")
        } | {"contexts": len(rows)}
    return out


def authorship_section(
    train: list[dict[str, Any]],
    valid: list[dict[str, Any]],
    contexts: list[dict[str, Any]],
    seed: int,
) -> dict[str, Any]:
    from selftune.evaluation import authorship

    mine, others = authorship.chat_messages(train)
    classifier = authorship.fit(mine, others, seed)
    held_mine, held_others = authorship.chat_messages(valid)
    acc = classifier.accuracy(held_mine, held_others)
    return {
        "classifier": "character 1-4-grams, TF-IDF, logistic regression",
        "trained_on": {"yours": len(mine), "others": len(others)},
        "held_out_accuracy": round(acc, 4) if acc is not None else None,
        "held_out": {"yours": len(held_mine), "others": len(held_others)},
        "real": authorship.taken_for_owner(classifier, [c["real"] for c in contexts]),
        "base": authorship.taken_for_owner(classifier, [x for c in contexts for x in c["base"]]),
        "tuned": authorship.taken_for_owner(classifier, [x for c in contexts for x in c["tuned"]]),
    }


def judge_section(
    judge: Any, judge_name: str, contexts: list[dict[str, Any]], budget: EvalBudget
) -> dict[str, Any]:
    from selftune.evaluation.judge import last_message, score_replies

    sums = {k: [0.0, 0] for k in ("real", "base", "tuned")}
    for chunk in budget.chunks("judge", contexts, REPLY_CHUNK, unit="replied messages"):
        for key in sums:
            pairs = [
                (last_message(c["context"]), reply)
                for c in chunk
                for reply in ([c["real"]] if key == "real" else c[key][:1])
            ]
            scored = score_replies(judge, pairs, key)
            if scored["scored"]:
                sums[key][0] += scored["mean"] * scored["scored"]
                sums[key][1] += scored["scored"]
    out: dict[str, Any] = {"judge": judge_name}
    for key, (total, n) in sums.items():
        out[key] = {"scored": int(n), "mean": round(total / n, 4) if n else None}
    return out


def leak_sections(
    tuned: Any,
    sections: list[str],
    dataset_dir: Path,
    train: list[dict[str, Any]],
    config: EvalConfig,
    private_facts: list[str],
    system: str,
    budget: EvalBudget,
) -> dict[str, Any]:
    from selftune.dataset.canaries import read_canaries
    from selftune.evaluation import leaks

    out: dict[str, Any] = {}
    if "canaries" in sections:
        planted = read_canaries(dataset_dir)
        rows = leaks.canary_checks(
            tuned,
            planted,
            config.canary_candidates,
            config.seed,
            budget.chunks("canaries", planted),
        )
        out["canaries"] = {
            "planted": len(planted),
            "flagged": sum(r["flagged"] for r in rows),
            "rows": rows,
        }
    if "regurgitation" in sections:
        out["regurgitation"] = leaks.regurgitation(
            tuned, train, config.regurgitation_prompts, config.prefix_tokens, config.seed, budget
        )
    free: list[str] = []
    if "regurgitation" in sections or "pii" in sections:
        free = leaks.free_samples(
            tuned, config.free_samples, 2 * config.max_new_tokens, system, config.seed, budget
        )
    if "regurgitation" in sections:
        out["regurgitation"]["free_sampling"] = leaks.free_copying(tuned, free, train)
    if "pii" in sections:
        known = leaks.known_private_values(train, private_facts)
        per_probe = max(1, config.free_samples // 4)
        probes = leaks.probe_samples(
            tuned, per_probe, config.max_new_tokens, system, config.seed, budget
        )
        out["pii"] = {
            "private_facts_listed": len(private_facts),
            "free": leaks.pii_emissions(free, known, private_facts),
            "probes": leaks.pii_emissions(probes, known, private_facts),
        }
    return out
