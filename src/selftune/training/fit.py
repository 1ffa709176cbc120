"""`fit`: the one supervised training loop, called by `train` (a run on a dataset) and by
distill's SFT phase (kept texts + replay, continuing a parent's adapter).

transformers' Trainer runs the loop (accumulation, schedule, checkpoints, resume, DDP/FSDP/DeepSpeed
under `accelerate launch`, trackers); `fit` adds packed rows and a loss computed only where the
owner's next token is trained (see `packing`), the planned length (`planner`), a time budget,
Ctrl-C handling and a progress bar with tokens/s; in the step, each packed example's attention
runs on its own (`packed_attention`) and the LoRA layers in fused ops (`fused_lora`). It writes
into its folder metrics.jsonl, plan.json and checkpoints/, and returns what it measured (the
trainer's part of run.json).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftune.artefacts import RUN_CHECKPOINTS, RUN_METRICS
from selftune.config import TrainConfig
from selftune.training.callbacks import (
    Budget,
    EvaluateLastStep,
    Interrupt,
    MetricsLog,
    TokenProgress,
)
from selftune.training.encoding import encode_record
from selftune.training.packing import IGNORE, PackedCollator, build_rows, packed_loss
from selftune.training.planner import (
    PROVISIONAL_STEPS,
    LivePlan,
    Plan,
    lr_factor,
    make_plan,
    provisional_plan,
)

FINAL_RESERVE_S = 5.0  # saving the adapter and loading the best checkpoint at the end
PLAN_FILE = "plan.json"
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: it is complete with it


@dataclass
class Fitted:
    summary: dict[str, Any]  # what the loop measured; the trainer's keys of run.json
    trainer: Any  # the transformers Trainer, to save the model (rank zero only)


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str) -> bool:
    import torch

    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def encode_records(
    tokenizer: Any, records: list[dict[str, Any]], max_len: int
) -> list[dict[str, list[int]]]:
    """Encoded examples (ids + labels on the owner's tokens) that have a trained token."""
    encoded = []
    for record in records:
        item = encode_record(tokenizer, record, max_len)
        if any(label != IGNORE for label in item["labels"][1:]):
            encoded.append(item)
    return encoded


def to_rows(items: list[dict[str, list[int]]], max_len: int, packing: bool) -> list[dict]:
    """Training rows: packed, or one example per row (position ids still given)."""
    if packing:
        return build_rows(items, max_len)
    return [r for item in items for r in build_rows([item], max_len)]


def latest_checkpoint(folder: Path, echo: Callable[[str], Any] | None = None) -> str | None:
    """The newest complete checkpoint under `folder`'s checkpoints/, or None. A newer one
    without its trainer_state.json (killed while it was being saved) is passed over, saying so."""
    checkpoints = folder / RUN_CHECKPOINTS
    if not checkpoints.is_dir():
        return None
    numbered = sorted(
        (int(m.group(1)), p)
        for p in checkpoints.iterdir()
        if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    )
    skipped = []
    for _, path in reversed(numbered):
        if _complete(path):
            if skipped and echo is not None:
                echo(
                    f"{', '.join(skipped)} in {checkpoints} is incomplete (no {TRAINER_STATE}: "
                    f"killed while saving?); resuming from {path.name}"
                )
            return str(path)
        skipped.append(path.name)
    if skipped and echo is not None:
        echo(f"no complete checkpoint in {checkpoints} ({', '.join(skipped)} incomplete)")
    return None


def _complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / TRAINER_STATE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


def make_trainer_class() -> type:
    """A Trainer whose loss is `packed_loss`, normalised by trained tokens across accumulation."""
    from transformers import Trainer

    class PackedTrainer(Trainer):
        tokens_seen = 0
        plan: Plan | None = None

        def create_scheduler(self, num_training_steps, optimizer=None):  # type: ignore[no-untyped-def]
            """The learning-rate schedule of the live plan (its length may change mid-run)."""
            if self.lr_scheduler is None and self.plan is not None:
                from torch.optim.lr_scheduler import LambdaLR

                plan, kind, initial = (
                    self.plan,
                    self.args.lr_scheduler_type,
                    self.args.learning_rate,
                )
                self.lr_scheduler = LambdaLR(
                    optimizer or self.optimizer,
                    lambda step: lr_factor(plan, step, str(getattr(kind, "value", kind)), initial),
                )
                self._created_lr_scheduler = True
            return super().create_scheduler(num_training_steps, optimizer)

        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            # count trained tokens over the accumulated and global batch (see compute_loss)
            self.model_accepts_loss_kwargs = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
            real = inputs.pop("real_tokens", None)
            if model.training and real is not None:
                self.tokens_seen += int(real)
            total, count = packed_loss(model, inputs)
            if num_items_in_batch is None:
                loss = total / max(count, 1)
            else:
                # mean over every trained token of the accumulated (and, with DDP, global) batch;
                # DDP averages gradients over ranks, so scale back up as Trainer itself does
                loss = total / num_items_in_batch
                if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                    loss = loss * self.accelerator.num_processes
            return (loss, {}) if return_outputs else loss

    return PackedTrainer


def training_arguments(
    config: TrainConfig, folder: Path, bf16: bool, has_valid: bool, plan: Plan
) -> Any:
    import torch
    from transformers import TrainingArguments

    every = plan.eval_every
    return TrainingArguments(
        output_dir=str(folder / RUN_CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=plan.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=plan.warmup_steps,
        max_steps=plan.max_steps,
        eval_strategy="steps" if has_valid else "no",
        eval_steps=every,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=2,  # with load_best_model_at_end: the best and the latest are kept
        load_best_model_at_end=has_valid,
        metric_for_best_model="eval_loss" if has_valid else None,
        greater_is_better=False,
        logging_steps=max(1, min(5, every)),
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to=list(config.report_to) or "none",
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,  # TokenProgress draws the bar
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=True,
        average_tokens_across_devices=True,
        ddp_find_unused_parameters=False,
    )


def plan_run(config: TrainConfig, train_rows: list[dict], has_valid: bool, world: int = 1) -> Plan:
    """The plan before the run: fixed by max_steps or epochs, or provisional for --minutes
    (`LivePlan` fits it once the first steps are measured)."""
    per_epoch = steps_per_epoch(len(train_rows), config, world)
    if config.minutes and not (config.max_steps or config.epochs):
        return provisional_plan(config, per_epoch, has_valid)
    return make_plan(config, per_epoch, has_valid)


def fit(
    model: Any,
    tokenizer: Any,
    train_items: list[dict[str, list[int]]],
    valid_items: list[dict[str, list[int]]],
    folder: Path,
    config: TrainConfig,
    checkpoint: str | None = None,
    deadline: float | None = None,
    callbacks: list[Any] | None = None,
    interactive: bool = True,
) -> Fitted:
    """Train `model` on encoded examples (`encode_records`) into `folder`, as `config` plans.

    `checkpoint` (from `latest_checkpoint`) continues a run with the plan it started with;
    `deadline` (a `time.monotonic()` value) defaults to `config.minutes` from now; `callbacks`
    are extra `TrainerCallback`s (tests, benchmarks); `interactive` draws the progress bar and
    makes the first Ctrl-C stop cleanly after a checkpoint.
    """
    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback

    from selftune.training.fused_lora import fused_lora
    from selftune.training.packed_attention import packed_attention

    started = time.monotonic()
    train_rows = to_rows(train_items, config.max_seq_len, config.packing)
    valid_rows = to_rows(valid_items, config.max_seq_len, config.packing)
    bf16 = use_bf16(config.precision)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if deadline is None and config.minutes:
        deadline = started + config.minutes * 60
    plan = _resumed_plan(folder, config) if checkpoint else None
    if plan is None:
        plan = plan_run(config, train_rows, bool(valid_rows), world)
        (folder / PLAN_FILE).write_text(json.dumps(plan.as_dict(), indent=2) + "\n")
    args = training_arguments(config, folder, bf16, bool(valid_rows), plan)
    progress, interrupt = TokenProgress(), Interrupt()
    budget = Budget(deadline, reserve_s=FINAL_RESERVE_S, plan=plan)
    extra = list(callbacks or [])
    loop = [MetricsLog(folder / RUN_METRICS), budget, interrupt, *extra]
    if interactive:
        loop.insert(0, progress)
    if plan.max_steps == PROVISIONAL_STEPS and deadline is not None:
        step_tokens = config.batch_size * config.max_seq_len * config.gradient_accumulation
        valid_tokens = sum(len(r["input_ids"]) for r in valid_rows)
        live = LivePlan(
            plan, config, deadline, valid_tokens / step_tokens, folder / PLAN_FILE, FINAL_RESERVE_S
        )
        loop.insert(0, live)
    early = None
    if valid_rows:
        loop.append(EvaluateLastStep())
        if config.early_stopping_patience:
            early = EarlyStoppingCallback(
                config.early_stopping_patience, config.early_stopping_min_delta
            )
            loop.append(early)
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=valid_rows or None,
        data_collator=PackedCollator(tokenizer.pad_token_id),
        callbacks=loop,
    )
    trainer.plan = plan
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the logs
    progress.trainer = trainer
    handle = interactive and _main_thread()
    previous = signal.signal(signal.SIGINT, interrupt.request) if handle else None
    try:
        # the step's kernels (see the modules); the saved adapter or model is the same either way
        with packed_attention(model), fused_lora(model):
            result = trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    train_seconds = float(result.metrics.get("train_runtime", time.monotonic() - started))
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    best_loaded = bool(valid_rows and trainer.state.best_model_checkpoint)
    # the saved model is the best checkpoint: its validation loss is the best one measured
    valid_loss = trainer.state.best_metric if best_loaded else (evals[-1] if evals else None)
    world = trainer.accelerator.num_processes
    tokens_seen = trainer.tokens_seen * world
    summary = {
        "base": config.base,
        "settings": config.model_dump(),
        "method": config.method,
        "precision": "bf16" if bf16 else "fp32",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "processes": world,
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0), 3),
        "train_examples": len(train_items),
        "valid_examples": len(valid_items),
        "train_rows": len(train_rows),
        "packing_efficiency": round(
            sum(len(r["input_ids"]) for r in train_rows)
            / (max(len(train_rows), 1) * config.max_seq_len),
            3,
        ),
        "train_loss": result.training_loss,
        "valid_loss": valid_loss,
        "last_valid_loss": evals[-1] if evals else None,
        "evaluations": len(evals),
        "best_valid_loss": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_step": _checkpoint_step(trainer.state.best_model_checkpoint),
        "interrupted": interrupt.requested,
        "stopped_by": _stop_reason(trainer.state, plan, interrupt.requested, budget.hit, early),
        "plan": plan.as_dict(),
        "seconds": round(time.monotonic() - started, 1),
        "train_seconds": round(train_seconds, 1),
        "trained_tokens": tokens_seen,
        "tokens_per_second": round(tokens_seen / max(train_seconds, 1e-9), 1),
    }
    return Fitted(summary, trainer)


def trl_callbacks(folder: Path, minutes: float | None) -> tuple[list[Any], Budget]:
    """The callbacks a TRL trainer (distill's DPO/KTO phases) runs with: the metrics log in
    `folder` and a time budget of `minutes` from now (whose `hit` says it stopped the run)."""
    budget = Budget(time.monotonic() + minutes * 60 if minutes else None)
    return [MetricsLog(folder / RUN_METRICS), budget], budget


def _stop_reason(state: Any, plan: Plan, interrupted: bool, out_of_time: bool, early: Any) -> str:
    """What ended the run: interrupted, time limit (the budget ran out before the plan did),
    early_stopping (validation stopped improving), or the plan's end (max_steps, epochs,
    planned_steps for a --minutes plan, default epochs)."""
    if interrupted:
        return "interrupted"
    if early is not None and early.early_stopping_patience_counter >= early.early_stopping_patience:
        return "early_stopping"
    if out_of_time:
        return "time limit"
    if state.global_step >= plan.max_steps:
        return "planned_steps" if plan.decided_by == "minutes" else plan.decided_by
    return "early_stopping"


def _checkpoint_step(path: str | None) -> int | None:
    if not path:
        return None
    tail = Path(path).name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _resumed_plan(folder: Path, config: TrainConfig) -> Plan | None:
    """The plan a resumed run started with (its --max-steps may extend it)."""
    path = folder / PLAN_FILE
    if not path.exists():
        return None
    plan = Plan(**json.loads(path.read_text()))
    if config.max_steps:
        plan.max_steps = config.max_steps
    return plan


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def steps_per_epoch(rows: int, config: TrainConfig, world: int = 1) -> int:
    return max(1, math.ceil(rows / (config.batch_size * config.gradient_accumulation * world)))
