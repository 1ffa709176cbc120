"""The one interface every section of the report has, and the context they all run over.

A section (`sections/<name>.py`, listed in `sections.SECTIONS`) is a name, the entries of
`eval.sections` that turn it on, and four functions: `plan` chooses its sample from the shared
context and says which parts of the time budget it will spend (None: nothing to do here),
`run` computes its entries of report.json within those parts, `html` renders its part of
report.html from the report, and `summary` its lines of the CLI's summary. `report.evaluate_run`
plans every section turned on, gives the budget all their parts, then runs them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftune.config import EvalConfig
from selftune.evaluation.budget import EvalBudget, unlimited
from selftune.workspace import Workspace


@dataclass
class EvalContext:
    """What every section may read: the run's two sides, the dataset's splits, the settings, the
    budget. `prepared` holds what a section's `plan` chose for its `run` (by section name)."""

    run_dir: Path
    dataset_dir: Path
    config: EvalConfig
    wanted: set[str]  # the chosen entries of eval.sections
    max_len: int
    base: Any  # evaluation.compared_models.Side: the run with its adapter switched off
    tuned: Any
    train: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    private_facts: list[str] = field(default_factory=list)
    judge_endpoint: Any = None  # an OpenAI-compatible side the owner confirmed, or None
    ws: Workspace | None = None  # the workspace, for sections that read the store or facts
    budget: EvalBudget = field(default_factory=unlimited)
    progress: Callable[[str], Any] = lambda _: None
    timings: dict[str, float] = field(default_factory=dict)
    prepared: dict[str, Any] = field(default_factory=dict)

    @property
    def sides(self) -> dict[str, Any]:
        return {"base": self.base, "tuned": self.tuned}

    @property
    def scored(self) -> list[dict[str, Any]]:
        """The held-out split, or the training split when there is none (optimistic numbers)."""
        return self.valid or self.train

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        """`fn()`, announced to the progress callback and timed into report.json's timings_s."""
        self.progress(f"{name} ...")
        started = time.monotonic()
        result = fn()
        self.timings[name] = round(time.monotonic() - started, 1)
        return result


def no_lines(report: dict[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class Section:
    name: str  # the section's name (its key in report.json where it has one)
    turned_on_by: frozenset[str]  # entries of eval.sections that run it
    plan: Callable[[EvalContext], list[str] | None]  # budget parts it will spend; None: skip
    run: Callable[[EvalContext], dict[str, Any]]  # its entries of report.json
    html: Callable[[dict[str, Any]], str]  # its part of report.html ("" when it has none)
    summary: Callable[[dict[str, Any]], list[str]] = no_lines  # its lines of the CLI summary
