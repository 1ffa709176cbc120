"""Evaluate a tuned run against its base: "is it me?" and "does it leak?", as one report dict.

Sections (each optional, see `EvalConfig.sections`):
- perplexity: on the tokens the model is trained to write (the owner's turns and note text), never
  on context, base (adapter disabled) vs tuned, overall, per source and per conversation kind;
- style, authorship, judge: the base and the tuned model reply to held-out chat contexts, and
  continue the beginnings of held-out notes (see `notes`); their texts are compared with the
  owner's real ones (see `style`, `authorship`, `judge`), per source;
- canaries, regurgitation, pii: what the tuned model gives away (see `leaks`).
Every part runs within the time budget `eval.minutes` (see `budget`), which sizes its sample and
records what it left out. `evaluate_run` only computes; `html.write_report` writes reports/<id>/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.artefacts import RunDir, read_split
from selftune.config import EVAL_SECTIONS, EvalConfig
from selftune.evaluation.budget import EvalBudget, default_minutes
from selftune.evaluation.sections import (
    authorship_section,
    generate_replies,
    held_out_contexts,
    judge_section,
    leak_sections,
    perplexity_section,
    style_section,
)

__all__ = ["evaluate_run", "held_out_contexts", "training_curve"]


def training_curve(run_dir: Path) -> dict[str, list[list[float]]]:
    """Training and validation loss by step, from the run's metrics.jsonl."""
    curve: dict[str, list[list[float]]] = {"train": [], "valid": []}
    path = RunDir(run_dir).metrics_path
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
    picks: Callable[[], dict[str, Any]] | None = None,
    memory: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report for a finished run. With neither `config` nor `sections` only perplexity is
    computed (seconds; what the demo needs); `selftune eval` runs `config.sections`.
    `memory(base, tuned, train, valid)` computes the facts and memory section
    (selftune.evaluation.memory; it needs the workspace, so `run_eval` passes it)."""
    from selftune.evaluation.html import verdict
    from selftune.evaluation.notes import continue_notes, note_prompts, notes_section
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
    sides = {"base": base, "tuned": tuned}
    train = read_split(dataset_dir, "train")
    valid = read_split(dataset_dir, "valid")
    held_out = bool(valid)
    scored = valid if held_out else train
    run_info = RunDir(run_dir).info()
    wanted = set(sections)
    generating = wanted & {"style", "authorship", "judge"}
    contexts: list[dict[str, Any]] = []
    notes_held: list[dict[str, Any]] = []
    notes_train: list[dict[str, Any]] = []
    if generating:
        contexts = held_out_contexts(scored, config.contexts, config.seed)
        tok, n_new = base.tokenizer, config.max_new_tokens
        notes_held = note_prompts(tok, scored, config.note_prompts, n_new, config.seed)
        if "authorship" in wanted:
            notes_train = note_prompts(tok, train, config.note_prompts, n_new, config.seed + 1)
    parts = ["perplexity"] if "perplexity" in wanted else []
    parts += (["replies"] if contexts else []) + (["notes"] if notes_held else [])
    parts += ["judge"] if "judge" in wanted and contexts and config.judge != "none" else []
    parts += [p for p in ("canaries", "regurgitation", "pii") if p in wanted]
    parts += ["free"] if {"regurgitation", "pii"} & wanted else []
    budget = EvalBudget(default_minutes(config.minutes), parts)
    report: dict[str, Any] = {
        "run": run_dir.name,
        "dataset": dataset_dir.name,
        "base_model": run_info["base"],
        "split": "valid" if held_out else "train (no held-out split: numbers are optimistic)",
        "sections": list(sections),
        "train": {
            k: run_info.get(k)
            for k in (
                "steps",
                "epochs",
                "train_loss",
                "valid_loss",
                "seconds",
                "tokens_per_second",
                "stopped_by",
            )
        }  # fmt: skip
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

    if "perplexity" in wanted:
        report |= timed(
            "perplexity",
            lambda: perplexity_section(base, tuned, scored, max_len, budget, config.seed),
        )
    if contexts:
        timed(
            f"replies to {len(contexts)} held-out messages",
            lambda: generate_replies(sides, contexts, config, budget),
        )
        contexts = [c for c in contexts if "tuned" in c]
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
    if notes_held:
        timed(
            f"continuations of {len(notes_held)} held-out note beginnings",
            lambda: continue_notes(sides, notes_held, notes_train, config, budget),
        )
        report["notes"] = notes_section(
            base.tokenizer, notes_held, notes_train, train, config, sorted(wanted)
        )
    owner_reference, _ = _owner_messages(train)
    if "style" in wanted and contexts:
        report["style"] = timed("style", lambda: style_section(contexts, owner_reference))
    if "authorship" in wanted and contexts:
        report["authorship"] = timed(
            "authorship", lambda: authorship_section(train, valid, contexts, config.seed)
        )
    if "judge" in parts:
        judge = judge_endpoint or {"base": base, "tuned": tuned}.get(config.judge)
        if judge is not None:
            name = config.judge if config.judge != "endpoint" else f"endpoint {config.judge_model}"
            report["judge"] = timed("judge", lambda: judge_section(judge, name, contexts, budget))
    leak_wanted = [s for s in ("canaries", "regurgitation", "pii") if s in wanted]
    if leak_wanted:
        system = _a_system_prompt(train)
        report["leaks"] = timed(
            "leaks",
            lambda: leak_sections(
                tuned, leak_wanted, dataset_dir, train, config, private_facts or [], system, budget
            ),
        )
    if "picks" in sections and picks is not None:  # needs the store: see evaluation.picks
        report["picks"] = timed("picks", picks)
    if "memory" in sections and memory is not None:
        report["memory"] = timed("memory", lambda: memory(base, tuned, train, valid))
    report["budget"] = budget.summary()
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
