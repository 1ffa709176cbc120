"""Fixtures for training tests: a small dataset on disk and a fast config for the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftune.config import TrainConfig

REPLIES = ["they're grand", "2 new queens!!", "later x", "bring the smoker", "tea first"]


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "datasets" / "d1"
    folder.mkdir(parents=True)
    train, valid = [], []
    for i in range(12):
        reply = REPLIES[i % len(REPLIES)]
        record = {
            "messages": [
                {"role": "system", "content": "You are Mags."},
                {"role": "user", "content": f"Tobias: how are the bees {i}?"},
                {"role": "assistant", "content": reply},
            ]
        }
        (valid if i % 6 == 5 else train).append(record)
    train.append({"text": "# Hive log\n- queen seen\n  - frame 3"})
    for name, records in (("train", train), ("valid", valid)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture
def tiny_config(tiny_model_dir: Path) -> TrainConfig:
    return TrainConfig(
        base=str(tiny_model_dir),
        max_seq_len=64,
        batch_size=2,
        learning_rate=5e-3,
        lora_r=8,
        lora_dropout=0.0,
        eval_every=2,
        early_stopping_patience=None,
        precision="fp32",
    )
