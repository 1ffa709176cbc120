#!/usr/bin/env bash
# The GPU checks, on a machine with an NVIDIA GPU; without one it says so and exits 0.
#   bash benchmarks/gpu.sh
# 1. the CUDA build of the locked torch version (constraints.txt) and bitsandbytes ('.[gpu]'),
#    into .venv (scripts/setup.sh dev first, when there is none);
# 2. the GPU tests (`pytest -m gpu`: QLoRA, bf16 LoRA, the accelerate configs, 2-process DDP and
#    FSDP when there are two devices);
# 3. the training benchmark (benchmarks/train.py) on the embedded model;
# then appends the figures (GPU, torch, tests, tokens/s, peak memory) to benchmarks/RESULTS.md.
# TORCH_INDEX_URL picks where the CUDA wheel comes from (default: PyPI, whose Linux wheel is CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "benchmarks/gpu.sh: no GPU here (nvidia-smi finds no NVIDIA device): no GPU checks run."
  exit 0
fi
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  SELFTUNE_NO_LLAMACPP=${SELFTUNE_NO_LLAMACPP:-1} bash scripts/setup.sh dev
  PY=.venv/bin/python
fi
TORCH=$(sed -n 's/^torch==//p' constraints.txt)
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "Installing the CUDA build of torch $TORCH ..."
  "$PY" -m pip install -q --force-reinstall --no-deps "torch==$TORCH" \
    --index-url "${TORCH_INDEX_URL:-https://pypi.org/simple}"
  "$PY" -m pip install -q "torch==$TORCH" --index-url "${TORCH_INDEX_URL:-https://pypi.org/simple}"
fi
"$PY" -m pip install -q -c constraints.txt -e '.[gpu]' || echo "(bitsandbytes not installed: QLoRA test skips)"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"'

OUT=$(mktemp -d)
set +e
"$PY" -m pytest tests -m gpu -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/tests.txt"
tests_rc=${PIPESTATUS[0]}
"$PY" benchmarks/train.py --steps-ref 8 --steps-selftune 8 --json "$OUT/train.json" 2>&1 | tee "$OUT/train.txt"
set -e
"$PY" - "$OUT" <<'PY'
import json, subprocess, sys, time
from pathlib import Path

out = Path(sys.argv[1])
import torch

gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
tests = [line for line in (out / "tests.txt").read_text().splitlines() if " in " in line][-1:]
lines = [
    "",
    f"## GPU checks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, benchmarks/gpu.sh)",
    "",
    f"{gpu}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
    f"`pytest -m gpu`: {tests[0].strip('= ') if tests else 'no summary line'}.",
    "",
]
bench = out / "train.json"
if bench.exists():
    lines += ["| run | useful tokens/s | peak RSS MB | seconds |", "|---|---:|---:|---:|"]
    for r in json.loads(bench.read_text()):
        lines.append(
            f"| {r['name']} | {r['tokens_per_second']:.0f} | {r['own_peak_rss_mb']} "
            f"| {r['seconds']:.1f} |"
        )
    lines.append("")
    lines.append("(MFU in benchmarks/train.py is against the CPU's peak: not shown for a GPU.)")
with open("benchmarks/RESULTS.md", "a") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit "$tests_rc"
