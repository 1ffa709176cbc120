"""Evaluate a tuned run against its base: "is it me?" and "does it leak?", as one report dict.

`eval.sections` chooses what runs (see `EvalConfig.sections`); each entry turns on one of the
report's sections (`sections.SECTIONS`: perplexity; replies to held-out chats for style,
authorship and judge; note continuations for style and authorship; leak tests for canaries,
regurgitation and pii; picks; memory). Every section plans its sample first, then all run within
the one time budget `eval.minutes` (see `budget`), which sizes each part and records what it
left out. `evaluate_run` only computes; `html.write_report` writes reports/<id>/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.artefacts import RunDir, read_split
from selftune.config import EVAL_SECTIONS, EvalConfig
from selftune.errors import SelftuneError
from selftune.evaluation.budget import EvalBudget, default_minutes
from selftune.evaluation.section import EvalContext
from selftune.evaluation.sections import SECTIONS
from selftune.evaluation.verdict import verdict
from selftune.workspace import Workspace

TRAIN_KEYS = (
    "steps", "epochs", "train_loss", "valid_loss", "seconds", "tokens_per_second", "stopped_by",
)  # fmt: skip


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
    ws: Workspace | None = None,
) -> dict[str, Any]:
    """The report for a finished run. With neither `config` nor `sections` only perplexity is
    computed (seconds; what the demo needs); `selftune eval` runs `config.sections`. The picks
    and memory sections read the store and facts.yaml, so they run only when `ws` is given
    (`run_eval` gives it)."""
    from selftune.evaluation.compared_models import load_sides

    if sections is None:
        sections = config.sections if config is not None else ["perplexity"]
    unknown = set(sections) - set(EVAL_SECTIONS)
    if unknown:
        raise SelftuneError(
            f"unknown eval section(s) {', '.join(sorted(unknown))}; choose from {', '.join(EVAL_SECTIONS)}"
        )
    config = config or EvalConfig()
    base, tuned = load_sides(run_dir)
    train = read_split(dataset_dir, "train")
    valid = read_split(dataset_dir, "valid")
    run_info = RunDir(run_dir).info()
    ctx = EvalContext(
        run_dir, dataset_dir, config, set(sections), max_len, base, tuned, train, valid,
        private_facts or [], judge_endpoint, ws, progress=progress or (lambda _: None),
    )  # fmt: skip
    planned = [
        (section, parts)
        for section in SECTIONS
        if ctx.wanted & section.turned_on_by and (parts := section.plan(ctx)) is not None
    ]
    ctx.budget = EvalBudget(default_minutes(config.minutes), [p for _, ps in planned for p in ps])
    report: dict[str, Any] = {
        "run": run_dir.name,
        "dataset": dataset_dir.name,
        "base_model": run_info["base"],
        "split": "valid" if valid else "train (no held-out split: numbers are optimistic)",
        "sections": list(sections),
        "train": {k: run_info.get(k) for k in TRAIN_KEYS} | {"curve": training_curve(run_dir)},
        "settings": config.model_dump(),
        "timings_s": ctx.timings,
        "selftune_version": __version__,
    }
    for section, _ in planned:
        report |= section.run(ctx)
    report["budget"] = ctx.budget.summary()
    report["verdict"] = verdict(report)
    return report
