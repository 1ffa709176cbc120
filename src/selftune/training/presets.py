"""Training presets by hardware: a laptop CPU, one GPU, several GPUs.

A preset fills the `train:` settings that twin.yaml leaves unset or at their default (the
twin.yaml that `selftune init` writes lists every key with its default); command-line flags
override both. The CPU preset plans a run of `minutes` unless epochs or max_steps are given.
What each preset needs is written in docs/training.md.
"""

from __future__ import annotations

from typing import Any

from selftune.config import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    # the embedded 135M model on 2-8 cores: bf16 where the CPU has it, packed rows, a time plan
    "cpu": {
        "base": "embedded",
        "method": "lora",
        "batch_size": 2,
        "gradient_accumulation": 1,
        "max_seq_len": 768,
        "base_learning_rate": 4e-4,
        "minutes": 4,
        "lora_r": 16,
        "gradient_checkpointing": False,
    },
    # a 1-8B instruct model on one CUDA GPU (>= 8 GB for 1.5B, >= 16 GB for 7-8B) with QLoRA
    "gpu": {
        "base": "Qwen/Qwen2.5-1.5B-Instruct",
        "method": "qlora",
        "batch_size": 4,
        "gradient_accumulation": 4,
        "max_seq_len": 2048,
        "base_learning_rate": 2e-4,
        "epochs": 2,
        "lora_r": 16,
        "gradient_checkpointing": True,
    },
    # several GPUs under `accelerate launch` (DDP / FSDP / DeepSpeed config from configs/accelerate)
    "multi-gpu": {
        "base": "Qwen/Qwen2.5-7B-Instruct",
        "method": "lora",
        "batch_size": 4,
        "gradient_accumulation": 2,
        "max_seq_len": 2048,
        "base_learning_rate": 2e-4,
        "epochs": 2,
        "lora_r": 16,
        "gradient_checkpointing": True,
    },
}


def given(config: TrainConfig) -> set[str]:
    """Settings given explicitly: set (in twin.yaml or by a flag) to something else than the
    field's default."""
    fields = type(config).model_fields
    return {k for k in config.model_fields_set if getattr(config, k) != fields[k].default}


def apply_preset(config: TrainConfig, name: str | None) -> list[str]:
    """Fill the settings `config` was not given explicitly from preset `name`; returns their names.
    A preset's time budget is left out when epochs or max_steps were given."""
    if name is None:
        return []
    explicit = given(config)
    filled = []
    for key, value in PRESETS[name].items():
        if key in explicit:
            continue
        if key == "minutes" and explicit & {"epochs", "max_steps"}:
            continue
        setattr(config, key, value)
        filled.append(key)
    config.preset = name  # type: ignore[assignment]
    return filled
