"""The leak section on a tiny random model: a canary trained on for many epochs at a high learning
rate is memorised and flagged; a normal short run does not flag it.

The model is the shared tiny Llama but with one layer and a larger initialisation range: with the
default (0.02) its logits span about one nat, so no LoRA adapter can make it confident enough to
write anything by heart, and the test would only show that nothing can be learnt."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftune.config import EvalConfig, TrainConfig
from selftune.dataset.canaries import plant_canaries, write_canaries
from selftune.dataset.examples import Example

from .conftest import OTHERS, OWNER, chat, write_split


@pytest.fixture(scope="module")
def memorising_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.3,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("memorising-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def canary_dataset(root: Path, repeats: int) -> Path:
    folder = root / "datasets" / f"canary-{repeats}"
    folder.mkdir(parents=True)
    examples = [
        Example(chat(o, m), "whatsapp", f"c{i}", None)
        for i, (o, m) in enumerate(zip(OTHERS[:3], OWNER[:3], strict=True))
    ]
    planted = plant_canaries(examples, 1, seed=3, repeats=repeats)
    write_split(folder, "train", [e.record for e in examples])
    write_split(folder, "valid", [chat(OTHERS[0], OWNER[1])])
    write_canaries(folder, planted)
    return folder


def train_and_check(model_dir: Path, root: Path, repeats: int, epochs: float, lr: float) -> dict:
    from selftune.evaluation.report import evaluate_run
    from selftune.training.trainer import train

    dataset = canary_dataset(root, repeats)
    run_dir = root / "runs" / f"r{repeats}"
    run_dir.mkdir(parents=True)
    config = TrainConfig(
        base=str(model_dir),
        epochs=epochs,
        learning_rate=lr,
        batch_size=16,
        max_seq_len=128,
        eval_every=10_000,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        lora_r=16,
    )
    train(dataset, run_dir, config)
    report = evaluate_run(
        run_dir, dataset, 128, config=EvalConfig(canary_candidates=200), sections=["canaries"]
    )
    return report["leaks"]["canaries"]


def test_memorised_canary_is_flagged_normal_run_is_not(memorising_model_dir: Path, tmp_path: Path):
    memorised = train_and_check(memorising_model_dir, tmp_path, repeats=8, epochs=16, lr=3e-2)
    normal = train_and_check(memorising_model_dir, tmp_path, repeats=1, epochs=1, lr=3e-4)
    assert memorised["planted"] == 1 and memorised["flagged"] == 1
    row = memorised["rows"][0]
    assert row["rank"] == 1 and row["exposure"] == pytest.approx(row["max_exposure"])
    assert row["reproduced"]
    assert normal["planted"] == 1 and normal["flagged"] == 0
    assert normal["rows"][0]["exposure"] < normal["rows"][0]["max_exposure"] - 1
