"""The run's plan: how many optimizer steps, how often to evaluate, the learning rate and warm-up.

`--max-steps` wins, then `--epochs` (`make_plan`, fixed before the run). With only `--minutes`
the run starts on a provisional plan and `LivePlan` measures its first steps (the first one,
which pays for warm-up, is not counted unless it alone is a large part of the budget), then
gives the run as many steps as fit in the time left after the evaluations it will make, and
evaluates every epoch and at least `min_evals` times. After each evaluation it measures what the
evaluation and checkpoint cost and fits the remaining steps again, so a machine that slows down
or speeds up still ends the run near its budget. The learning-rate schedule reads the live plan
(`lr_factor`). The rules are written out in docs/training.md.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from selftune.config import TrainConfig

REFERENCE_STEPS = 100  # runs this long or longer use base_learning_rate as it is
MAX_LR_BOOST = 2.0
DEFAULT_EPOCHS = 3.0
MARGIN = 0.05  # share of the budget kept free for a machine that slows down
MAX_EVAL_SHARE = 0.3  # evaluations never take more than this share of a planned run
PROVISIONAL_STEPS = 1_000_000  # until the first steps are measured
RECENT = 5  # steps whose mean duration predicts the next ones
FORWARD_SHARE = 1 / 3  # a validation pass over N tokens costs about this share of training on N


@dataclass
class Plan:
    max_steps: int
    eval_every: int
    warmup_steps: int
    learning_rate: float
    steps_per_epoch: int
    decided_by: str  # "max_steps", "epochs", "minutes" or "default epochs"
    epochs: float = 0.0
    evaluations: int = 0
    step_seconds: float | None = None
    eval_seconds: float | None = None
    budget_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("step_seconds", "eval_seconds", "budget_seconds", "epochs"):
            if out[key] is not None:
                out[key] = round(out[key], 2)
        return out


def scaled_learning_rate(base: float, steps: int) -> float:
    """`base` for runs of REFERENCE_STEPS or more; shorter runs move further per step
    (x sqrt(REFERENCE_STEPS / steps), at most MAX_LR_BOOST x)."""
    boost = math.sqrt(REFERENCE_STEPS / max(steps, 1))
    return base * min(MAX_LR_BOOST, max(1.0, boost))


def eval_interval(steps: int, steps_per_epoch: int, min_evals: int) -> int:
    """Steps between evaluations: at least once an epoch and at least `min_evals` times."""
    return max(1, min(steps_per_epoch, steps // max(min_evals, 1)))


def warmup(steps: int, ratio: float) -> int:
    return max(1, math.ceil(ratio * steps)) if ratio > 0 else 0


def steps_for_budget(
    seconds: float, step_s: float, eval_s: float, steps_per_epoch: int, min_evals: int
) -> tuple[int, list[str]]:
    """Most steps whose training and evaluations fit in `seconds` (at least one)."""
    notes = []
    evals = min_evals
    steps = 1
    for _ in range(4):  # the number of evaluations depends on the steps: a few rounds settle it
        eval_cost = min(evals * eval_s, MAX_EVAL_SHARE * seconds)
        steps = max(1, int((seconds - eval_cost) // step_s))
        every = eval_interval(steps, steps_per_epoch, min_evals)
        evals = math.ceil(steps / every)
    if eval_s and evals * eval_s > MAX_EVAL_SHARE * seconds:
        notes.append(
            f"a validation pass takes {eval_s:.0f}s: {evals} of them would exceed "
            f"{MAX_EVAL_SHARE:.0%} of the budget; fewer evaluations than planned will fit"
        )
    return steps, notes


def make_plan(config: TrainConfig, steps_per_epoch: int, has_valid: bool) -> Plan:
    """The fixed plan of a run whose length max_steps or epochs decide (3 epochs by default)."""
    notes: list[str] = []
    if config.max_steps:
        steps, by = config.max_steps, "max_steps"
    elif config.epochs:
        steps, by = math.ceil(config.epochs * steps_per_epoch), "epochs"
    else:
        steps, by = math.ceil(DEFAULT_EPOCHS * steps_per_epoch), "default epochs"
    if config.minutes and by in ("max_steps", "epochs"):
        notes.append(f"--{by.replace('_', '-')} given: {config.minutes:g} minutes only cap the run")
    every = config.eval_every or eval_interval(steps, steps_per_epoch, config.min_evals)
    return Plan(
        max_steps=steps,
        eval_every=every,
        warmup_steps=warmup(steps, config.warmup_ratio),
        learning_rate=config.learning_rate
        or scaled_learning_rate(config.base_learning_rate, steps),
        steps_per_epoch=steps_per_epoch,
        decided_by=by,
        epochs=steps / steps_per_epoch,
        evaluations=math.ceil(steps / every) if has_valid else 0,
        notes=notes,
    )


def provisional_plan(config: TrainConfig, steps_per_epoch: int, has_valid: bool) -> Plan:
    """The plan a --minutes run starts with: no end, no evaluation, until `LivePlan` measures."""
    lr = config.learning_rate or config.base_learning_rate * MAX_LR_BOOST
    return Plan(
        max_steps=PROVISIONAL_STEPS,
        eval_every=PROVISIONAL_STEPS,
        warmup_steps=1 if config.warmup_ratio > 0 else 0,
        learning_rate=lr,
        steps_per_epoch=steps_per_epoch,
        decided_by="minutes",
        evaluations=0,
    )


def lr_factor(plan: Plan, step: int, schedule: str, initial_lr: float) -> float:
    """Multiplier of the optimizer's initial learning rate at `step` under the live plan:
    linear warm-up to the plan's peak, then cosine or linear decay to 0 at its last step, or
    constant."""
    peak = plan.learning_rate / initial_lr
    if step < plan.warmup_steps:
        return peak * (step + 1) / (plan.warmup_steps + 1)
    if schedule == "constant_with_warmup":
        return peak
    done = (step - plan.warmup_steps) / max(1, plan.max_steps - plan.warmup_steps)
    done = min(1.0, done)
    if schedule == "linear":
        return peak * (1.0 - done)
    return peak * 0.5 * (1.0 + math.cos(math.pi * done))


class LivePlan(TrainerCallback):
    """Plans a --minutes run from its measured steps and re-fits it after every evaluation."""

    def __init__(
        self,
        plan: Plan,
        config: TrainConfig,
        deadline: float,
        valid_share: float,
        path: Path | None = None,
        reserve_s: float = 0.0,
    ):
        self.plan, self.config, self.deadline = plan, config, deadline
        self.valid_share = valid_share  # validation tokens / tokens of one optimizer step
        self.path, self.reserve_s = path, reserve_s
        self.planned = False
        self.step_times: list[float] = []
        self.first_step = 0.0
        self.step_started = self.step_ended = time.monotonic()
        self.evaluated = False

    def _left(self) -> float:
        return self.deadline - time.monotonic() - self.reserve_s

    def _step_s(self) -> float:
        recent = self.step_times[-RECENT:]
        return sum(recent) / len(recent) if recent else self.first_step

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        if self.evaluated:  # the evaluation and checkpoint after the last step
            self.plan.eval_seconds = now - self.step_ended
            self.evaluated = False
            self._refit(state)
        self.step_started = now

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.step_ended = time.monotonic()
        took = self.step_ended - self.step_started
        if state.global_step == 1 and not self.step_times:
            self.first_step = took
        else:
            self.step_times.append(took)
        big_first = self.first_step > 0.15 * (self.deadline - self.step_started)
        if not self.planned and (self.step_times or big_first):
            self._first_plan(state)
            if state.global_step >= state.max_steps:  # the first step already used the budget
                control.should_training_stop = True
        return control

    def on_evaluate(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.evaluated = True

    def _first_plan(self, state: Any) -> None:
        step_s = self._step_s()
        eval_s = self.plan.eval_seconds or step_s * self.valid_share * FORWARD_SHARE
        usable = max(self._left() * (1 - MARGIN), 0.0)
        more, notes = steps_for_budget(
            usable, step_s, eval_s, self.plan.steps_per_epoch, self.config.min_evals
        )
        total = state.global_step + (more if usable >= step_s else 0)
        every = self.config.eval_every or eval_interval(
            total, self.plan.steps_per_epoch, self.config.min_evals
        )
        self.plan.eval_every = every
        self.plan.notes = notes
        self.plan.eval_seconds = eval_s
        self.planned = True
        self._set(state, total)
        state.eval_steps = state.save_steps = every

    def _refit(self, state: Any) -> None:
        """After an evaluation: the steps that still fit, with the measured evaluation cost."""
        if not self.planned:
            return
        step_s, every = self._step_s(), self.plan.eval_every
        per_step = step_s + (self.plan.eval_seconds or 0.0) / every
        more = int(max(self._left() * (1 - MARGIN), 0.0) // max(per_step, 1e-9))
        self._set(state, state.global_step + max(more, 1))  # the step about to start runs

    def _set(self, state: Any, total: int) -> None:
        total = max(total, state.global_step)
        plan = self.plan
        plan.max_steps = total
        plan.warmup_steps = warmup(total, self.config.warmup_ratio)
        plan.learning_rate = self.config.learning_rate or scaled_learning_rate(
            self.config.base_learning_rate, total
        )
        plan.epochs = total / plan.steps_per_epoch
        plan.evaluations = math.ceil(total / plan.eval_every)
        plan.step_seconds = self._step_s()
        plan.budget_seconds = self.deadline - self.step_ended
        state.max_steps = total
        if self.path is not None:
            self.path.write_text(json.dumps(plan.as_dict(), indent=2) + "\n")
