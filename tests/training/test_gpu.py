"""The GPU path on the tiny model: QLoRA, bf16 LoRA, 2-process DDP and FSDP on CUDA devices.

Marked `gpu` and skipped without CUDA (the accelerate configs' check runs everywhere); `benchmarks/gpu.sh` runs them (`pytest -m gpu`) on a
machine with an NVIDIA GPU, after installing the CUDA build of torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
REPO = Path(__file__).resolve().parents[2]


def _trained(run_dir: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    return max(float(v.abs().max()) for k, v in weights.items() if "lora_B" in k)


@pytest.mark.gpu
@cuda
def test_qlora_trains_a_4bit_base_on_cuda(tiny_dataset, tiny_config, tmp_path):
    pytest.importorskip("bitsandbytes", reason="pip install 'selftune[gpu]'")
    from selftune.training.trainer import train

    tiny_config.method = "qlora"
    tiny_config.precision = "bf16"
    tiny_config.max_steps = 6
    summary = train(tiny_dataset, tmp_path / "run", tiny_config)
    assert summary["steps"] == 6 and summary["device"] == "cuda"
    assert _trained(tmp_path / "run") > 0


@pytest.mark.gpu
@cuda
def test_bf16_lora_learns_on_cuda(tiny_dataset, tiny_config, tmp_path):
    from selftune.training.trainer import train

    tiny_config.precision = "bf16"
    tiny_config.max_steps = 12
    summary = train(tiny_dataset, tmp_path / "run", tiny_config)
    assert summary["precision"] == "bf16" and summary["device"] == "cuda"
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [e["eval_loss"] for e in log if "eval_loss" in e]
    assert min(evals[1:]) < evals[0]
    assert torch.cuda.max_memory_allocated() > 0


@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml"])
def test_the_shipped_accelerate_configs_load(config):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(REPO / "configs" / "accelerate" / config))
    assert loaded.distributed_type.value in ("MULTI_GPU", "FSDP")
    assert loaded.mixed_precision == "bf16"


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml"])
def test_two_gpus_train_one_run(config, tiny_dataset, tiny_model_dir, tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    from tests.training.test_distributed import _run, _workspace

    ws = _workspace(tmp_path, "two", tiny_dataset)
    _run(
        [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(REPO / "configs" / "accelerate" / config),
            "--num_processes", "2", "--main_process_port", "29519",
            "-m", "selftune", "train", "--base", str(tiny_model_dir), "-w", str(ws.root),
            "--max-seq-len", "64", "--max-steps", "3", "--precision", "bf16",
            "--eval-every", "100",
        ]
    )  # fmt: skip
    (run,) = list(ws.runs_dir.iterdir())
    summary = json.loads((run / "run.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3
    assert _trained(run) > 0
