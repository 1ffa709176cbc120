"""LoRA fine-tuning of the base model on a built dataset, with transformers' Trainer and PEFT.

Loss is on the owner's turns only (see `encoding`). Training is bounded by epochs, a step budget
and a time budget, reports training and validation loss, and saves only the adapter under
runs/<id>/adapter with `run.json` (what made it) and `metrics.jsonl` (the loss log).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.config import TrainConfig
from selftune.dataset import read_split
from selftune.encoding import encode_record
from selftune.errors import SelftuneError


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


def _encode_split(
    tokenizer: Any, folder: Path, split: str, max_len: int
) -> list[dict[str, list[int]]]:
    encoded = []
    for record in read_split(folder, split):
        item = encode_record(tokenizer, record, max_len)
        if any(label != -100 for label in item["labels"]):
            encoded.append(item)
    return encoded


class _ListDataset:
    def __init__(self, items: list[dict[str, list[int]]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


def train(dataset_dir: Path, run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on `dataset_dir`; returns the run summary written to run.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from selftune.models import load_model, load_tokenizer

    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(config.base)
    train_items = _encode_split(tokenizer, dataset_dir, "train", config.max_seq_len)
    valid_items = _encode_split(tokenizer, dataset_dir, "valid", config.max_seq_len)
    if not train_items:
        raise SelftuneError(f"{dataset_dir} has no trainable examples (no owner turns or text)")
    trained_tokens = sum(len(item["input_ids"]) for item in train_items)

    model = load_model(config.base)
    model.config.use_cache = False
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    bf16 = use_bf16(config.precision)
    metrics_path = run_dir / "metrics.jsonl"
    started = time.monotonic()

    class Budget(TrainerCallback):
        """Stops at the time budget and writes every log entry to metrics.jsonl."""

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if config.minutes and time.monotonic() - started > config.minutes * 60:
                control.should_training_stop = True
                control.should_evaluate = bool(valid_items)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            with metrics_path.open("a", encoding="utf-8") as fh:
                entry = {"step": state.global_step, "epoch": state.epoch, **(logs or {})}
                entry["elapsed_s"] = round(time.monotonic() - started, 2)
                fh.write(json.dumps(entry) + "\n")

    steps_per_epoch = math.ceil(
        len(train_items) / (config.batch_size * config.gradient_accumulation)
    )
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=int(
            config.warmup_ratio * (config.max_steps or steps_per_epoch * config.epochs)
        ),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        eval_strategy="steps" if valid_items else "no",
        eval_steps=config.eval_every,
        logging_steps=max(1, min(10, config.eval_every)),
        save_strategy="no",
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        seed=config.seed,
        disable_tqdm=False,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
    )
    # batches of similar lengths, padded to the longest: little padding, no cross-example attention
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(train_items),
        eval_dataset=_ListDataset(valid_items) if valid_items else None,
        data_collator=collator,
        callbacks=[Budget()],
    )
    result = trainer.train()
    final_eval = trainer.evaluate() if valid_items else {}
    elapsed = time.monotonic() - started
    model.save_pretrained(run_dir / "adapter")
    tokenizer.save_pretrained(run_dir / "adapter")
    epochs_done = float(trainer.state.epoch or 0)
    summary = {
        "id": run_dir.name,
        "base": config.base,
        "dataset": dataset_dir.name,
        "dataset_path": str(dataset_dir.resolve()),
        "settings": config.model_dump(),
        "precision": "bf16" if bf16 else "fp32",
        "steps": trainer.state.global_step,
        "epochs": round(epochs_done, 3),
        "train_examples": len(train_items),
        "valid_examples": len(valid_items),
        "train_loss": result.training_loss,
        "valid_loss": final_eval.get("eval_loss"),
        "seconds": round(elapsed, 1),
        "tokens_per_second": round(trained_tokens * epochs_done / max(elapsed, 1e-9), 1),
        "selftune_version": __version__,
    }
    (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
