"""Evaluate a tuned run against its base: "is it me?" and "does it leak?", as one report dict.

Sections (each optional, see `EvalConfig.sections`):
- perplexity: on the tokens the model is trained to write (the owner's turns and note text), never
  on context, base (adapter disabled) vs tuned, overall, per source and per conversation kind;
- style, authorship, judge: the base and the tuned model reply to held-out chat contexts; their
  replies are compared with the owner's real ones (see `style`, `authorship`, `judge`);
- canaries, regurgitation, pii: what the tuned model gives away (see `leaks`).
`evaluate_run` only computes; `report_html.write_report` writes reports/<id>/.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from selftune import __version__
from selftune.config import EVAL_SECTIONS, EvalConfig
from selftune.dataset import read_split
from selftune.encoding import IGNORE, encode_record

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


def generate_replies(side: Any, contexts: list[dict[str, Any]], config: EvalConfig) -> None:
    """Adds `side.name` -> list of replies to each context."""
    for i, ctx in enumerate(tqdm(contexts, desc=f"replies {side.name}", leave=False)):
        ctx[side.name] = side.chat(
            ctx["context"],
            config.candidates,
            config.temperature,
            config.max_new_tokens,
            config.seed + i,
        )


def perplexity_section(
    base: Any, tuned: Any, records: list[dict[str, Any]], max_len: int
) -> dict[str, Any]:
    b = perplexities(None, base.tokenizer, records, max_len, label="base", score=base.nll)
    t = perplexities(None, tuned.tokenizer, records, max_len, label="tuned", score=tuned.nll)

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
    from selftune import style

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
    from selftune import authorship

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


def judge_section(judge: Any, judge_name: str, contexts: list[dict[str, Any]]) -> dict[str, Any]:
    from selftune.judge import last_message, score_replies

    out: dict[str, Any] = {"judge": judge_name}
    for key in ("real", "base", "tuned"):
        pairs = [
            (last_message(c["context"]), reply)
            for c in contexts
            for reply in ([c["real"]] if key == "real" else c[key][:1])
        ]
        out[key] = score_replies(judge, pairs, key)
    return out


def leak_sections(
    tuned: Any,
    sections: list[str],
    dataset_dir: Path,
    train: list[dict[str, Any]],
    config: EvalConfig,
    private_facts: list[str],
    system: str,
) -> dict[str, Any]:
    from selftune import leaks
    from selftune.canaries import read_canaries

    out: dict[str, Any] = {}
    if "canaries" in sections:
        planted = read_canaries(dataset_dir)
        rows = leaks.canary_checks(tuned, planted, config.canary_candidates, config.seed)
        out["canaries"] = {
            "planted": len(planted),
            "flagged": sum(r["flagged"] for r in rows),
            "rows": rows,
        }
    if "regurgitation" in sections:
        out["regurgitation"] = leaks.regurgitation(
            tuned, train, config.regurgitation_prompts, config.prefix_tokens, config.seed
        )
    free: list[str] = []
    if "regurgitation" in sections or "pii" in sections:
        free = leaks.free_samples(
            tuned, config.free_samples, 2 * config.max_new_tokens, system, config.seed
        )
    if "regurgitation" in sections:
        out["regurgitation"]["free_sampling"] = leaks.free_copying(tuned, free, train)
    if "pii" in sections:
        known = leaks.known_private_values(train, private_facts)
        per_probe = max(1, config.free_samples // 4)
        probes = leaks.probe_samples(tuned, per_probe, config.max_new_tokens, system, config.seed)
        out["pii"] = {
            "private_facts_listed": len(private_facts),
            "free": leaks.pii_emissions(free, known, private_facts),
            "probes": leaks.pii_emissions(probes, known, private_facts),
        }
    return out


def training_curve(run_dir: Path) -> dict[str, list[list[float]]]:
    """Training and validation loss by step, from the run's metrics.jsonl."""
    curve: dict[str, list[list[float]]] = {"train": [], "valid": []}
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return curve
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry:
            curve["train"].append([entry["step"], entry["loss"]])
        if "eval_loss" in entry:
            curve["valid"].append([entry["step"], entry["eval_loss"]])
    return curve


def evaluate_run(
    run_dir: Path,
    dataset_dir: Path,
    max_len: int = 1024,
    config: EvalConfig | None = None,
    sections: list[str] | tuple[str, ...] | None = None,
    private_facts: list[str] | None = None,
    judge_endpoint: Any = None,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """The report for a finished run. With neither `config` nor `sections` only perplexity is
    computed (seconds; what the demo needs); `selftune eval` runs `config.sections`."""
    from selftune.evalmodel import load_sides
    from selftune.report_html import verdict

    if sections is None:
        sections = config.sections if config is not None else ["perplexity"]
    unknown = set(sections) - set(EVAL_SECTIONS)
    if unknown:
        from selftune.errors import SelftuneError

        raise SelftuneError(
            f"unknown eval section(s) {', '.join(sorted(unknown))}; choose from {', '.join(EVAL_SECTIONS)}"
        )
    config = config or EvalConfig()
    say = progress or (lambda _: None)
    base, tuned = load_sides(run_dir)
    train = read_split(dataset_dir, "train")
    valid = read_split(dataset_dir, "valid")
    held_out = bool(valid)
    scored = valid if held_out else train
    run_info = json.loads((run_dir / "run.json").read_text())
    report: dict[str, Any] = {
        "run": run_dir.name,
        "dataset": dataset_dir.name,
        "base_model": run_info["base"],
        "split": "valid" if held_out else "train (no held-out split: numbers are optimistic)",
        "sections": list(sections),
        "train": {
            k: run_info.get(k)
            for k in ("steps", "epochs", "train_loss", "valid_loss", "seconds", "tokens_per_second")
        }
        | {"curve": training_curve(run_dir)},
        "settings": config.model_dump(),
        "timings_s": {},
        "selftune_version": __version__,
    }

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        say(f"{name} ...")
        started = time.monotonic()
        result = fn()
        report["timings_s"][name] = round(time.monotonic() - started, 1)
        return result

    if "perplexity" in sections:
        report |= timed("perplexity", lambda: perplexity_section(base, tuned, scored, max_len))
    contexts: list[dict[str, Any]] = []
    if {"style", "authorship", "judge"} & set(sections):
        contexts = held_out_contexts(scored, config.contexts, config.seed)

        def replies() -> None:
            generate_replies(base, contexts, config)
            generate_replies(tuned, contexts, config)

        timed(f"replies to {len(contexts)} held-out messages", replies)
        report["contexts"] = len(contexts)
        report["_blind_pairs"] = [
            {
                "context": c["context"][1:],
                "real": c["real"],
                "generated": c["tuned"][0],
                "source": c["source"],
            }
            for c in contexts
        ]
    owner_reference, _ = _owner_messages(train)
    if "style" in sections and contexts:
        report["style"] = timed("style", lambda: style_section(contexts, owner_reference))
    if "authorship" in sections and contexts:
        report["authorship"] = timed(
            "authorship", lambda: authorship_section(train, valid, contexts, config.seed)
        )
    if "judge" in sections and contexts and config.judge != "none":
        judge = judge_endpoint or {"base": base, "tuned": tuned}.get(config.judge)
        if judge is not None:
            name = config.judge if config.judge != "endpoint" else f"endpoint {config.judge_model}"
            report["judge"] = timed("judge", lambda: judge_section(judge, name, contexts))
    leak_wanted = [s for s in ("canaries", "regurgitation", "pii") if s in sections]
    if leak_wanted:
        system = _a_system_prompt(train)
        report["leaks"] = timed(
            "leaks",
            lambda: leak_sections(
                tuned, leak_wanted, dataset_dir, train, config, private_facts or [], system
            ),
        )
    report["verdict"] = verdict(report)
    return report


def _owner_messages(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    from selftune.authorship import chat_messages

    return chat_messages(records)


def _a_system_prompt(records: list[dict[str, Any]]) -> str:
    for r in records:
        if "messages" in r and r["messages"][0]["role"] == "system":
            return r["messages"][0]["content"]
    return "Reply as the owner would."
