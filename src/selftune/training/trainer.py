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
from selftune.training.callbacks import Budget, Interrupt, MetricsLog, TokenProgress
from selftune.training.encoding import encode_record
from selftune.training.packing import IGNORE, PackedCollator, build_rows, packed_loss


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


def training_arguments(config: TrainConfig, run_dir: Path, bf16: bool, has_valid: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    every = config.eval_every
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
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
    args = training_arguments(config, run_dir, bf16, bool(valid_rows))
    progress, interrupt, budget = TokenProgress(), Interrupt(), Budget(config.minutes)
    extra = list(callbacks or [])
    callbacks = [progress, MetricsLog(run_dir / "metrics.jsonl"), budget, interrupt, *extra]
    if valid_rows and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=valid_rows or None,
        data_collator=PackedCollator(tokenizer.pad_token_id),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the logs
    progress.trainer = trainer
    previous = signal.signal(signal.SIGINT, interrupt.request) if _main_thread() else None
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    train_seconds = float(result.metrics.get("train_runtime", time.monotonic() - started))
    final_eval = trainer.evaluate() if valid_rows else {}
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
        "valid_loss": final_eval.get("eval_loss"),
        "best_valid_loss": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "interrupted": interrupt.requested,
        "stopped_by": _stop_reason(trainer.state, config, interrupt.requested, budget.hit),
        "seconds": round(time.monotonic() - started, 1),
        "train_seconds": round(train_seconds, 1),
        "trained_tokens": tokens_seen,
        "tokens_per_second": round(tokens_seen / max(train_seconds, 1e-9), 1),
        "selftune_version": __version__,
    }
    if trainer.is_world_process_zero():
        (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _stop_reason(state: Any, config: TrainConfig, interrupted: bool, out_of_time: bool) -> str:
    if interrupted:
        return "interrupted"
    if out_of_time:
        return "minutes"
    if state.global_step >= state.max_steps:
        return "max_steps" if config.max_steps else "epochs"
    return "early_stopping"


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def steps_per_epoch(rows: int, config: TrainConfig, world: int = 1) -> int:
    return max(1, math.ceil(rows / (config.batch_size * config.gradient_accumulation * world)))
