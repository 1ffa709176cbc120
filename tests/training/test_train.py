"""Training on the tiny model: it learns, logs, checkpoints, resumes and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal

import pytest

from selftune.config import TrainConfig
from selftune.training.presets import PRESETS, apply_preset
from selftune.training.trainer import train

SUMMARY_KEYS = {
    "id", "base", "dataset", "steps", "epochs", "train_loss", "valid_loss", "seconds",
    "tokens_per_second", "precision",
}  # fmt: skip


def _adapter_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_lowers_validation_loss_and_writes_the_run(
    tiny_dataset, tiny_config, tmp_path, precision
):
    """bf16: base and (on CPU) adapters in bfloat16 under autocast must still learn."""
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    tiny_config.max_steps = 12
    tiny_config.precision = precision
    summary = train(tiny_dataset, run_dir, tiny_config)
    assert set(summary) >= SUMMARY_KEYS
    assert summary["steps"] == 12 and summary["trained_tokens"] > 0
    assert summary["precision"] == precision
    assert json.loads((run_dir / "run.json").read_text())["id"] == "r1"
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [e["eval_loss"] for e in log if "eval_loss" in e]
    assert len(evals) >= 5 and min(evals[1:]) < evals[0]
    assert any("tokens_per_second" in e for e in log)
    # LoRA B matrices start at zero: a trained adapter has moved them
    weights = _adapter_weights(run_dir)
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())
    # the best checkpoint is kept next to the latest
    assert summary["best_checkpoint"] and os.path.isdir(summary["best_checkpoint"])


def test_resume_continues_from_the_last_checkpoint(tiny_dataset, tiny_config, tmp_path):
    run_dir = tmp_path / "runs" / "r2"
    run_dir.mkdir(parents=True)
    tiny_config.max_steps = 4
    first = train(tiny_dataset, run_dir, tiny_config)
    assert first["steps"] == 4
    tiny_config.max_steps = 6
    second = train(tiny_dataset, run_dir, tiny_config, resume=True)
    assert second["steps"] == 6
    steps = [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert max(steps) == 6 and steps.count(4) >= 1  # logged before and after the resume


def test_ctrl_c_saves_a_checkpoint_and_stops(tiny_dataset, tiny_config, tmp_path):
    from transformers import TrainerCallback

    class PressCtrlC(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    run_dir = tmp_path / "runs" / "r3"
    run_dir.mkdir(parents=True)
    tiny_config.max_steps = 50
    tiny_config.eval_every = 40
    summary = train(tiny_dataset, run_dir, tiny_config, callbacks=[PressCtrlC()])
    assert summary["interrupted"] and summary["stopped_by"] == "interrupted"
    assert summary["steps"] == 2
    assert (run_dir / "checkpoints" / "checkpoint-2").is_dir()
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    # the handler is restored after training
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_qlora_without_cuda_says_what_to_do(tiny_dataset, tiny_config, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from selftune.errors import SelftuneError

    tiny_config.method = "qlora"
    with pytest.raises(SelftuneError, match="CUDA"):
        train(tiny_dataset, tmp_path, tiny_config)


def test_preset_fills_only_what_twin_yaml_leaves_out():
    config = TrainConfig.model_validate({"learning_rate": 1e-5})
    filled = apply_preset(config, "gpu")
    assert config.learning_rate == 1e-5 and "learning_rate" not in filled
    assert config.method == "qlora" and config.max_seq_len == PRESETS["gpu"]["max_seq_len"]


def test_resume_passes_over_a_checkpoint_killed_while_saving(tiny_dataset, tiny_config, tmp_path):
    """kill -9 during a checkpoint save leaves checkpoint-N without trainer_state.json (written
    last); --resume takes the newest complete one and says so."""
    run_dir = tmp_path / "runs" / "r3"
    run_dir.mkdir(parents=True)
    tiny_config.max_steps = 4
    train(tiny_dataset, run_dir, tiny_config)
    newest = run_dir / "checkpoints" / "checkpoint-4"
    (newest / "trainer_state.json").unlink()
    said: list[str] = []
    tiny_config.max_steps = 6
    resumed = train(tiny_dataset, run_dir, tiny_config, resume=True, echo=said.append)
    assert resumed["steps"] == 6
    assert any("checkpoint-4" in s and "resuming from checkpoint-2" in s for s in said), said
