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
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from selftune import __version__
from selftune.artefacts import read_split
from selftune.config import EVAL_SECTIONS, EvalConfig
from selftune.evaluation.perplexity import conversation_kind, perplexities


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


def judge_section(judge: Any, judge_name: str, contexts: list[dict[str, Any]]) -> dict[str, Any]:
    from selftune.evaluation.judge import last_message, score_replies

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
    from selftune.build.canaries import read_canaries
    from selftune.evaluation import leaks

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
    memory: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report for a finished run. With neither `config` nor `sections` only perplexity is
    computed (seconds; what the demo needs); `selftune eval` runs `config.sections`.
    `memory(base, tuned, train, valid)` computes the facts and memory section
    (selftune.evaluation.memory; it needs the workspace, so `run_eval` passes it)."""
    from selftune.evaluation.html import verdict
    from selftune.evaluation.sides import load_sides

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
    if "memory" in sections and memory is not None:
        report["memory"] = timed("memory", lambda: memory(base, tuned, train, valid))
    report["verdict"] = verdict(report)
    return report


def _owner_messages(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    from selftune.evaluation.authorship import chat_messages

    return chat_messages(records)


def _a_system_prompt(records: list[dict[str, Any]]) -> str:
    for r in records:
        if "messages" in r and r["messages"][0]["role"] == "system":
            return r["messages"][0]["content"]
    return "Reply as the owner would."
