"""Training presets by hardware: a laptop CPU, one GPU, several GPUs.

A preset fills the `train:` settings that twin.yaml does not set; command-line flags override
both. What each preset needs is written in docs/training.md.
"""

from __future__ import annotations

from typing import Any

from selftune.config import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    # the embedded 135M model on 2-8 cores: bf16 where the CPU has it, packed rows, minutes
    "cpu": {
        "base": "embedded",
        "method": "lora",
        "batch_size": 2,
        "gradient_accumulation": 1,
        "max_seq_len": 768,
        "learning_rate": 4e-4,
        "epochs": 3,
        "lora_r": 16,
        "gradient_checkpointing": False,
        "eval_every": 10,
    },
    # a 1-8B instruct model on one CUDA GPU (>= 8 GB for 1.5B, >= 16 GB for 7-8B) with QLoRA
    "gpu": {
        "base": "Qwen/Qwen2.5-1.5B-Instruct",
        "method": "qlora",
        "batch_size": 4,
        "gradient_accumulation": 4,
        "max_seq_len": 2048,
        "learning_rate": 2e-4,
        "epochs": 2,
        "lora_r": 16,
        "gradient_checkpointing": True,
        "eval_every": 50,
    },
    # several GPUs under `accelerate launch` (DDP / FSDP / DeepSpeed config from configs/accelerate)
    "multi-gpu": {
        "base": "Qwen/Qwen2.5-7B-Instruct",
        "method": "lora",
        "batch_size": 4,
        "gradient_accumulation": 2,
        "max_seq_len": 2048,
        "learning_rate": 2e-4,
        "epochs": 2,
        "lora_r": 16,
        "gradient_checkpointing": True,
        "eval_every": 50,
    },
}


def apply_preset(config: TrainConfig, name: str | None) -> list[str]:
    """Fill the settings `config` was not given explicitly from preset `name`; returns their names."""
    if name is None:
        return []
    explicit = set(config.model_fields_set)
    filled = []
    for key, value in PRESETS[name].items():
        if key not in explicit:
            setattr(config, key, value)
            filled.append(key)
    config.preset = name  # type: ignore[assignment]
    return filled
