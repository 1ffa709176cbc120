"""Trainer callbacks for selftune runs: metrics log, time budget, last-step evaluation, clean
Ctrl-C, progress bar.

Each is a small `transformers.TrainerCallback`; only the main process writes files or draws.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class MetricsLog(TrainerCallback):
    """Appends every log entry (loss, lr, eval loss, tokens/s) to runs/<id>/metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = path
        self.started = time.monotonic()
        self.trainer: Any = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if not state.is_world_process_zero:
            return
        entry = {"step": state.global_step, "epoch": state.epoch, **(logs or {})}
        entry["elapsed_s"] = round(time.monotonic() - self.started, 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


class Budget(TrainerCallback):
    """Stops (after evaluating and saving) when the next step would end past `deadline`
    (a `time.monotonic()` value) less `reserve_s` for the final evaluation and save."""

    def __init__(self, deadline: float | None, reserve_s: float = 0.0, plan: Any = None):
        self.deadline = deadline
        self.reserve_s = reserve_s
        self.plan = plan  # its measured evaluation cost is reserved too
        self.hit = False
        self.last = time.monotonic()
        self.step_s = 0.0

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        self.step_s = now - self.last
        if self.deadline is None or state.global_step >= state.max_steps:
            return control
        reserve = self.reserve_s + (getattr(self.plan, "eval_seconds", None) or 0.0)
        if _agree(now + self.step_s + reserve > self.deadline):
            self.hit = True
            control.should_training_stop = True
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = True
        return control


class EvaluateLastStep(TrainerCallback):
    """Evaluates (and so may keep as best) the last step's model, not only every `eval_steps`."""

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step >= state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True
            control.should_save = True
        return control


class Interrupt(TrainerCallback):
    """First Ctrl-C: finish the current step, save a checkpoint, stop cleanly. Second: abort."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nStopping after this step and saving a checkpoint (Ctrl-C again to abort).")

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if _agree(self.requested):
            self.requested = True
            control.should_training_stop = True
            control.should_save = True
        return control


def _agree(flag: bool) -> bool:
    """True on every rank when it is true on any (ranks must stop at the same step)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch

    value = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value)
    return bool(value.item() > 0)


class TokenProgress(TrainerCallback):
    """A tqdm bar over optimizer steps with loss, useful (non-padding) tokens/s and ETA."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self.bar: Any = None
        self.loss: float | None = None
        self.valid: float | None = None
        self.started = time.monotonic()
        self.first_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="train", unit="step"
            )
        self.started = time.monotonic()
        self.first_tokens = self.trainer.tokens_seen if self.trainer else 0

    def tokens_per_second(self) -> float:
        if self.trainer is None:
            return 0.0
        world = self.trainer.accelerator.num_processes
        done = (self.trainer.tokens_seen - self.first_tokens) * world
        return done / max(time.monotonic() - self.started, 1e-9)

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.bar is None:
            return
        shown = {"tok/s": f"{self.tokens_per_second():.0f}"}
        if self.loss is not None:
            shown["loss"] = f"{self.loss:.3f}"
        if self.valid is not None:
            shown["valid"] = f"{self.valid:.3f}"
        if self.bar.total != state.max_steps:  # a --minutes plan fixed or re-fitted its length
            self.bar.total = state.max_steps
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        logs = logs or {}
        if "loss" in logs:
            self.loss = float(logs["loss"])
            logs["tokens_per_second"] = round(self.tokens_per_second(), 1)
        if "eval_loss" in logs:
            self.valid = float(logs["eval_loss"])

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.bar is not None:
            self.bar.close()
            self.bar = None
