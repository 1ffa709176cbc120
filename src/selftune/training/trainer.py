"""Supervised fine-tuning (LoRA, QLoRA or full) of the base model on a built dataset.

transformers' Trainer runs the loop (accumulation, schedule, checkpoints, resume, DDP/FSDP/DeepSpeed
under `accelerate launch`, trackers); selftune adds packed rows and a loss computed only where the
owner's next token is trained (see `packing`), a time budget, Ctrl-C handling, a progress bar with
tokens/s, and runs/<id>/{run.json, metrics.jsonl, adapter/ or model/, checkpoints/}.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.artefacts import read_split
from selftune.config import TrainConfig
from selftune.errors import SelftuneError
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


def encode_split(
    tokenizer: Any, folder: Path, split: str, max_len: int
) -> list[dict[str, list[int]]]:
    """Encoded examples of one split that have at least one trained token."""
    encoded = []
    for record in read_split(folder, split):
        item = encode_record(tokenizer, record, max_len)
        if any(label != IGNORE for label in item["labels"][1:]):
            encoded.append(item)
    return encoded


def to_rows(items: list[dict[str, list[int]]], max_len: int, packing: bool) -> list[dict]:
    """Training rows: packed, or one example per row (position ids still given)."""
    if packing:
        return build_rows(items, max_len)
    return [r for item in items for r in build_rows([item], max_len)]


def load_for_training(config: TrainConfig, bf16: bool) -> Any:
    """The model to train: base + LoRA adapter, 4-bit base + LoRA (QLoRA), or the full model."""
    import torch

    from selftune.models import load_model, resolve_base

    if config.method == "qlora":
        model = _load_4bit(resolve_base(config.base), bf16)
    elif config.method == "lora" and bf16:
        # frozen base weights in bf16: half the memory, no per-step cast; adapters stay float32
        model = load_model(config.base, torch.bfloat16)
    else:
        model = load_model(config.base)
    model.config.use_cache = False
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if config.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )
    # on a bf16 CPU the adapters train in bf16 too: float32 adapters cost a cast of every
    # activation in and out of each of the 7 adapters per layer (profiled: 1.6x slower step)
    cpu_bf16 = bf16 and config.method == "lora" and not torch.cuda.is_available()
    return get_peft_model(model, lora, autocast_adapter_dtype=not cpu_bf16)


def _load_4bit(path: str, bf16: bool) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise SelftuneError(
            "method 'qlora' needs a CUDA GPU (4-bit weights via bitsandbytes); on this machine "
            "use `--method lora` or `--preset cpu`"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise SelftuneError(
            "method 'qlora' needs bitsandbytes: `pip install 'selftune[gpu]'`"
        ) from exc
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = torch.bfloat16 if bf16 else torch.float16
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=quant, dtype=compute, device_map={"": local_rank}
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


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
    config: TrainConfig, run_dir: Path, bf16: bool, has_valid: bool, plan: Plan
) -> Any:
    import torch
    from transformers import TrainingArguments

    every = plan.eval_every
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
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


def train(
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune on `dataset_dir` into `run_dir`; returns the run summary written to run.json.

    With `resume`, training continues from the newest checkpoint under run_dir/checkpoints;
    `callbacks` are extra `TrainerCallback`s (tests, benchmarks).
    """
    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from selftune.models import load_tokenizer

    started = time.monotonic()
    set_seed(config.seed)
    tokenizer = load_tokenizer(config.base)
    train_items = encode_split(tokenizer, dataset_dir, "train", config.max_seq_len)
    valid_items = encode_split(tokenizer, dataset_dir, "valid", config.max_seq_len)
    if not train_items:
        raise SelftuneError(f"{dataset_dir} has no trainable examples (no owner turns or text)")
    train_rows = to_rows(train_items, config.max_seq_len, config.packing)
    valid_rows = to_rows(valid_items, config.max_seq_len, config.packing)
    checkpoint = None
    if resume:
        checkpoint = (
            get_last_checkpoint(str(run_dir / "checkpoints"))
            if (run_dir / "checkpoints").is_dir()
            else None
        )
        if checkpoint is None:
            raise SelftuneError(f"{run_dir} has no checkpoint to resume from; start a new run")

    bf16 = use_bf16(config.precision)
    model = load_for_training(config, bf16)
    collator = PackedCollator(tokenizer.pad_token_id)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    deadline = started + config.minutes * 60 if config.minutes else None
    plan = _resumed_plan(run_dir, config) if checkpoint else None
    if plan is None:
        plan = plan_run(config, train_rows, bool(valid_rows), world)
        (run_dir / PLAN_FILE).write_text(json.dumps(plan.as_dict(), indent=2) + "\n")
    args = training_arguments(config, run_dir, bf16, bool(valid_rows), plan)
    progress, interrupt = TokenProgress(), Interrupt()
    budget = Budget(deadline, reserve_s=FINAL_RESERVE_S, plan=plan)
    extra = list(callbacks or [])
    callbacks = [progress, MetricsLog(run_dir / "metrics.jsonl"), budget, interrupt, *extra]
    if plan.max_steps == PROVISIONAL_STEPS and deadline is not None:
        step_tokens = config.batch_size * config.max_seq_len * config.gradient_accumulation
        valid_tokens = sum(len(r["input_ids"]) for r in valid_rows)
        live = LivePlan(
            plan, config, deadline, valid_tokens / step_tokens, run_dir / PLAN_FILE, FINAL_RESERVE_S
        )
        callbacks.insert(0, live)
    early = None
    if valid_rows:
        callbacks.append(EvaluateLastStep())
        if config.early_stopping_patience:
            early = EarlyStoppingCallback(
                config.early_stopping_patience, config.early_stopping_min_delta
            )
            callbacks.append(early)
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=valid_rows or None,
        data_collator=collator,
        callbacks=callbacks,
    )
    trainer.plan = plan
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the logs
    progress.trainer = trainer
    previous = signal.signal(signal.SIGINT, interrupt.request) if _main_thread() else None
    try:
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
    if trainer.is_world_process_zero():
        target = run_dir / ("model" if config.method == "full" else "adapter")
        trainer.save_model(str(target))
        tokenizer.save_pretrained(target)
    epochs_done = float(trainer.state.epoch or 0)
    summary = {
        "id": run_dir.name,
        "base": config.base,
        "dataset": dataset_dir.name,
        "dataset_path": str(dataset_dir.resolve()),
        "settings": config.model_dump(),
        "method": config.method,
        "precision": "bf16" if bf16 else "fp32",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "processes": world,
        "steps": trainer.state.global_step,
        "epochs": round(epochs_done, 3),
        "train_examples": len(train_items),
        "valid_examples": len(valid_items),
        "train_rows": len(train_rows),
        "packing_efficiency": round(
            sum(len(r["input_ids"]) for r in train_rows) / (len(train_rows) * config.max_seq_len),
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
        "selftune_version": __version__,
    }
    if trainer.is_world_process_zero():
        (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


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


def _resumed_plan(run_dir: Path, config: TrainConfig) -> Plan | None:
    """The plan a resumed run started with (its --max-steps may extend it)."""
    path = run_dir / PLAN_FILE
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
