"""The run's plan: how many optimizer steps, how often to evaluate, the learning rate and warm-up.

`--max-steps` wins, then `--epochs`; with only `--minutes` the first steps are measured
(`measure_step`, one untimed warm-up and one or two timed forward+backward passes on real rows,
no weight changed) together with a validation pass, and the run gets as many steps as fit in the
time left after the evaluations, the final save and a safety margin. Without a validation split,
or with `eval_every` unset, evaluation runs every epoch and at least `min_evals` times a run.
A time budget also stops the run (see `callbacks.Budget`) if the machine slows down.
The rules are written out in docs/training.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from selftune.config import TrainConfig

REFERENCE_STEPS = 100  # runs this long or longer use base_learning_rate as it is
MAX_LR_BOOST = 2.0
DEFAULT_EPOCHS = 3.0
MARGIN = 0.05  # share of the budget kept free for a machine that slows down
MAX_EVAL_SHARE = 0.3  # evaluations never take more than this share of a planned run


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


def make_plan(
    config: TrainConfig,
    steps_per_epoch: int,
    has_valid: bool,
    step_s: float | None = None,
    eval_s: float | None = None,
    budget_s: float | None = None,
) -> Plan:
    """The plan for a run of `steps_per_epoch` optimizer steps an epoch (a pure function: the
    measuring is done by the caller). `budget_s`: the seconds left for training and evaluating."""
    notes: list[str] = []
    if config.max_steps:
        steps, by = config.max_steps, "max_steps"
    elif config.epochs:
        steps, by = math.ceil(config.epochs * steps_per_epoch), "epochs"
    elif config.minutes and step_s and budget_s is not None:
        usable = max(budget_s * (1 - MARGIN), step_s)
        steps, notes = steps_for_budget(
            usable,
            step_s,
            (eval_s or 0.0) if has_valid else 0.0,
            steps_per_epoch,
            config.min_evals,
        )
        by = "minutes"
    else:
        steps, by = math.ceil(DEFAULT_EPOCHS * steps_per_epoch), "default epochs"
    if config.minutes and by in ("max_steps", "epochs"):
        notes.append(f"--{by.replace('_', '-')} given: {config.minutes:g} minutes only cap the run")
    every = config.eval_every or eval_interval(steps, steps_per_epoch, config.min_evals)
    lr = config.learning_rate or scaled_learning_rate(config.base_learning_rate, steps)
    return Plan(
        max_steps=steps,
        eval_every=every,
        warmup_steps=warmup(steps, config.warmup_ratio),
        learning_rate=lr,
        steps_per_epoch=steps_per_epoch,
        decided_by=by,
        epochs=steps / steps_per_epoch,
        evaluations=math.ceil(steps / every) if has_valid else 0,
        step_seconds=step_s,
        eval_seconds=eval_s,
        budget_seconds=budget_s,
        notes=notes,
    )


def _autocast(bf16: bool) -> Any:
    import contextlib

    import torch

    if not bf16:
        return contextlib.nullcontext()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16)


def _batches(rows: list[dict], size: int, collator: Any, device: Any) -> list[dict]:
    out = []
    for start in range(0, len(rows), size):
        batch = collator(rows[start : start + size])
        batch.pop("real_tokens", None)
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def measure_step(
    model: Any, rows: list[dict], collator: Any, config: TrainConfig, bf16: bool, timed: int = 1
) -> float:
    """Seconds of one optimizer step (forward + backward of `gradient_accumulation` batches of
    the longest rows), after one untimed warm-up pass; gradients are cleared, no weight moves."""
    from selftune.training.packing import packed_loss

    device = next(p for p in model.parameters()).device
    longest = sorted(rows, key=lambda r: -len(r["input_ids"]))[: config.batch_size]
    (batch,) = _batches(longest, config.batch_size, collator, device)
    model.train()

    def one() -> None:
        with _autocast(bf16):
            total, count = packed_loss(model, batch)
        (total / max(count, 1)).backward()

    one()
    started = time.monotonic()
    for _ in range(timed):
        one()
    seconds = (time.monotonic() - started) / timed
    model.zero_grad(set_to_none=True)
    return seconds * config.gradient_accumulation


def measure_eval(model: Any, rows: list[dict], collator: Any, batch_size: int, bf16: bool) -> float:
    """Seconds of one validation pass over `rows`, from one timed batch."""
    import torch

    from selftune.training.packing import packed_loss

    if not rows:
        return 0.0
    device = next(p for p in model.parameters()).device
    (batch,) = _batches(rows[:batch_size], batch_size, collator, device)
    model.eval()
    started = time.monotonic()
    with torch.no_grad(), _autocast(bf16):
        packed_loss(model, batch)
    seconds = time.monotonic() - started
    model.train()
    return seconds * math.ceil(len(rows) / batch_size)
