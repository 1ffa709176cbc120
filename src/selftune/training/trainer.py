"""`train`: supervised fine-tuning (LoRA, QLoRA or full) of the base model on a built dataset,
into runs/<id>/ (adapter/ or model/, run.json, with `fit`'s metrics.jsonl and checkpoints/).

This module loads the model to train (base + LoRA, 4-bit base + LoRA, or the full model) and the
dataset's splits; `fit` runs the loop, and `RunDir.write_info` records the run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.artefacts import DatasetDir, RunDir, read_split
from selftune.config import TrainConfig
from selftune.errors import SelftuneError
from selftune.training.fit import encode_records, fit, latest_checkpoint, use_bf16


def encode_split(
    tokenizer: Any, folder: Path, split: str, max_len: int
) -> list[dict[str, list[int]]]:
    """Encoded examples of one split that have at least one trained token."""
    return encode_records(tokenizer, read_split(folder, split), max_len)


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
    # the adapters stay float32 (the optimizer's master weights) on a bf16 base too: `fit`'s
    # fused LoRA layers cast only the adapter weights to bf16, never the activations
    return get_peft_model(model, lora)


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


def train(
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    callbacks: list[Any] | None = None,
    echo: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune on `dataset_dir` into `run_dir`; returns the run summary written to run.json.

    With `resume`, training continues from the newest complete checkpoint under
    run_dir/checkpoints; `callbacks` are extra `TrainerCallback`s (tests, benchmarks).
    """
    from transformers import set_seed

    from selftune.models import load_tokenizer

    say = echo or (lambda text: print(text, file=sys.stderr))
    run = RunDir(run_dir)
    started = time.monotonic()
    set_seed(config.seed)
    tokenizer = load_tokenizer(config.base)
    train_items = encode_split(tokenizer, dataset_dir, "train", config.max_seq_len)
    valid_items = encode_split(tokenizer, dataset_dir, "valid", config.max_seq_len)
    if not train_items:
        raise SelftuneError(f"{dataset_dir} has no trainable examples (no owner turns or text)")
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(run.path, say)
        if checkpoint is None:
            raise SelftuneError(f"{run_dir} has no checkpoint to resume from; start a new run")
    model = load_for_training(config, use_bf16(config.precision))
    deadline = started + config.minutes * 60 if config.minutes else None
    fitted = fit(
        model,
        tokenizer,
        train_items,
        valid_items,
        run.path,
        config,
        checkpoint=checkpoint,
        deadline=deadline,
        callbacks=callbacks,
    )
    trainer = fitted.trainer
    trained = fitted.summary | {"seconds": round(time.monotonic() - started, 1)}
    info = run.record("train", DatasetDir(dataset_dir), trained)
    if trainer.is_world_process_zero():
        target = run.model_dir if config.method == "full" else run.adapter_dir
        trainer.save_model(str(target))
        tokenizer.save_pretrained(target)
        run.write_info(info)
    return info
