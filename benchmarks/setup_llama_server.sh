#!/usr/bin/env bash
# Build llama.cpp's own server (llama-server) and its batched decode benchmark (llama-batched-bench,
# the roof: every sequence in one llama_decode) from the llama.cpp sources that llama-cpp-python
# vendors in its source distribution, so benchmarks/serve.py can compare selftune against both with
# the same llama.cpp version. Nothing but the package registry is contacted.
#   benchmarks/setup_llama_server.sh            builds into ~/.cache/selftune/llama-server
#   LLAMA_SERVER_DIR=/opt/ls benchmarks/setup_llama_server.sh
#   SDIST=llama_cpp_python-0.3.36.tar.gz benchmarks/setup_llama_server.sh   (use a downloaded sdist)
# About 10 minutes on 2 cores. Prints the path of the llama-server binary on its last line;
# llama-batched-bench lies beside it.
set -euo pipefail
DEST=${LLAMA_SERVER_DIR:-$HOME/.cache/selftune/llama-server}
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$DEST"
cd "$DEST"
if [ -x bin/llama-server ] && [ -x bin/llama-batched-bench ]; then
  echo "$DEST/bin/llama-server"
  exit 0
fi
if [ -z "${SDIST:-}" ]; then
  # the same version as the installed llama-cpp-python, when there is one
  VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)
  SPEC=llama-cpp-python${VERSION:+==$VERSION}
  "$PYTHON" -m pip download -q --no-binary :all: --no-deps "$SPEC" -d sdist
  SDIST=$(ls sdist/llama_cpp_python-*.tar.gz | tail -1)
fi
if [ ! -d src/vendor/llama.cpp ]; then
  rm -rf src && mkdir src
  tar -xzf "$SDIST" -C src --strip-components=1
fi
cmake -S src/vendor/llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build build --target llama-server llama-batched-bench -j "$JOBS"
mkdir -p bin
cp build/bin/llama-server build/bin/llama-batched-bench bin/
echo "$DEST/bin/llama-server"
