"""`accelerate launch -m selftune train` for real: 2 CPU processes (gloo) against 1 process.

Each optimizer step covers every packed row once (one process: all rows in its batch; two
processes: half each), dropout is off, so both must end with the same adapter up to noise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selftune.training.packing import build_rows

REPO = Path(__file__).resolve().parents[2]


def _row_count(tokenizer_dir: Path, dataset: Path, max_len: int) -> int:
    from transformers import AutoTokenizer

    from selftune.training.trainer import encode_split

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return len(build_rows(encode_split(tokenizer, dataset, "train", max_len), max_len))


def _workspace(tmp_path: Path, name: str, dataset: Path):
    from selftune.config import render_yaml
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / name, ["Mags"])
    ws.config.train.lora_dropout = 0.0  # dropout draws differ between processes
    ws.config.train.lora_r = 8
    ws.config_path.write_text(render_yaml(ws.config))
    shutil.copytree(dataset, ws.datasets_dir / dataset.name)
    return ws


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_processes_train_one_adapter_like_one_process(tiny_dataset, tiny_model_dir, tmp_path):
    pytest.importorskip("accelerate")
    from safetensors.torch import load_file

    max_len = next(
        n for n in (64, 96, 128, 160, 192) if _row_count(tiny_model_dir, tiny_dataset, n) % 2 == 0
    )
    rows = _row_count(tiny_model_dir, tiny_dataset, max_len)
    common = [
        "train", "--base", str(tiny_model_dir), "--max-seq-len", str(max_len), "--epochs", "3",
        "--lr", "5e-3", "--precision", "fp32", "--seed", "0", "--eval-every", "100",
    ]  # fmt: skip
    single = _workspace(tmp_path, "one", tiny_dataset)
    _run(
        [
            sys.executable,
            "-m",
            "selftune",
            *common,
            "-w",
            str(single.root),
            "--batch-size",
            str(rows),
        ]
    )
    double = _workspace(tmp_path, "two", tiny_dataset)
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", "29517",
    ]  # fmt: skip
    _run(
        [*launch, "-m", "selftune", *common, "-w", str(double.root), "--batch-size", str(rows // 2)]
    )

    (run_one,) = list(single.runs_dir.iterdir())
    runs_two = list(double.runs_dir.iterdir())
    assert len(runs_two) == 1, "both ranks must share one run folder"
    summary = json.loads((runs_two[0] / "run.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3
    one = load_file(run_one / "adapter" / "adapter_model.safetensors")
    two = load_file(runs_two[0] / "adapter" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    moved = max(float(v.abs().max()) for k, v in one.items() if "lora_B" in k)
    assert moved > 1e-3  # training happened
    import torch

    # Adam turns near-zero gradients into full-size steps, so compare whole tensors, not elements
    for key in one:
        gap = float(torch.linalg.norm(one[key] - two[key]))
        size = float(torch.linalg.norm(one[key]))
        assert gap < 1e-3 * size, (key, gap, size)
