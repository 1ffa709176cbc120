"""Which engine serves a model, and why: the fast path (llama.cpp) whenever it can run.

`auto` picks llama.cpp when llama-cpp-python is installed and no CUDA GPU would serve the model
faster through transformers. Which GGUF serves a run follows one rule (docs/serving.md, "Which
GGUF serves a twin", measured by benchmarks/export_fidelity.py): only a file that keeps the
trained model's greedy tokens serves by default, and of those the fastest. A run that has no GGUF
yet gets one written the first time it is served: its adapter as a LoRA GGUF when the base has a
full-precision GGUF (seconds; the base stays loaded once for every run), else the merged model
at f16 (a LoRA on a quantized base, such as the embedded Q4_1 file, drifts from the trained
model). The reason is shown by `serve` and in `GET /v1/models`, so nobody is left guessing why a
model is slow.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftune.artefacts import RunDir
from selftune.errors import SelftuneError

# f16 first: it keeps the trained model's greedy text and is the fastest that does; q8_0 (asked
# for by `selftune export`) drifts after a few tokens
GGUF_PREFERENCE = ("f16", "bf16", "f32", "q8_0")
LORA_PREFIX = "lora-"
FULL_PRECISION = {0, 1, 32}  # GGUF general.file_type: all f32, mostly f16, mostly bf16


@dataclass(frozen=True)
class EngineChoice:
    kind: str  # "llamacpp", "transformers" or "openai"
    reason: str
    gguf: Path | None = None
    lora: Path | None = None
    write: str | None = None  # export this format first ("lora-gguf" or "f16")
    asked: bool = False  # named by the user, so no falling back

    def describe(self) -> str:
        return f"{self.kind}: {self.reason}"


def find_gguf(spec: Any) -> Path | None:
    """The model GGUF for a model: a run's `export/*.gguf` (not a LoRA adapter), or the base's."""
    if spec.run_dir is not None:
        export = RunDir(spec.run_dir).export_dir
        files = [f for f in sorted(export.glob("*.gguf")) if not f.name.startswith(LORA_PREFIX)]
        for kind in GGUF_PREFERENCE:
            for f in files:
                if kind in f.name.lower():
                    return f
        return files[0] if files else None
    return base_gguf(spec.base)


def find_lora_gguf(spec: Any) -> Path | None:
    if spec.run_dir is None:
        return None
    found = sorted(RunDir(spec.run_dir).export_dir.glob(f"{LORA_PREFIX}*.gguf"))
    return found[0] if found else None


def base_gguf(base: str) -> Path | None:
    """The base's own GGUF: the embedded model's file, a .gguf path, or one in a folder."""
    from selftune.models import EMBEDDED_NAMES, embedded_gguf_path

    if base in EMBEDDED_NAMES:
        try:
            return embedded_gguf_path()
        except SelftuneError:
            return None
    path = Path(base)
    if path.suffix == ".gguf" and path.exists():
        return path
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    return found[0] if found else None


def quantized(gguf: Path) -> bool:
    """Whether a GGUF's weights are quantized (Q4_1, Q8_0, ...), from its header."""
    path = Path(gguf).resolve()
    return _quantized(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _quantized(path: Path, mtime: int) -> bool:
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.file_type")
    if field is not None:
        return int(field.parts[field.data[0]][0]) not in FULL_PRECISION
    full = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16,
            gguf.GGMLQuantizationType.BF16}  # fmt: skip
    return any(t.tensor_type not in full for t in reader.tensors)


def _cuda_beats_llamacpp() -> bool:
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    import llama_cpp

    return not llama_cpp.llama_supports_gpu_offload()


def choose_engine(spec: Any, kind: str = "auto") -> EngineChoice:
    """Where `spec` runs; raises when `kind` is llamacpp and it cannot run there."""
    from selftune.engines import llamacpp_engine

    if kind == "transformers":
        return EngineChoice("transformers", "asked for (--engine transformers)")
    if kind == "openai":
        return EngineChoice("openai", "asked for (--engine openai --upstream URL)")
    asked = kind == "llamacpp"
    why = "asked for (--engine llamacpp)" if asked else "the fast CPU path"
    if not llamacpp_engine.available():
        if asked:
            raise SelftuneError(
                "--engine llamacpp needs llama-cpp-python: scripts/setup.sh installs it"
            )
        return EngineChoice(
            "transformers", "llama-cpp-python is not installed (pip install 'selftune[llamacpp]')"
        )
    unsupported = llamacpp_engine.unsupported_reason()
    if unsupported is not None:
        if asked:
            raise SelftuneError(f"--engine llamacpp cannot run: {unsupported}")
        return EngineChoice("transformers", unsupported)
    if not asked and _cuda_beats_llamacpp():
        return EngineChoice("transformers", "a CUDA GPU is here; this llama.cpp build is CPU-only")
    gguf = find_gguf(spec)
    if gguf is not None:
        return EngineChoice("llamacpp", f"{why}, on {gguf.name}", gguf, asked=asked)
    base = base_gguf(spec.base)
    if spec.run_dir is None:
        if asked:
            raise SelftuneError(
                f"no GGUF for base {spec.base!r}: give a .gguf file or a folder holding one"
            )
        return EngineChoice("transformers", f"the base {spec.base!r} has no GGUF file")
    lora = find_lora_gguf(spec)
    adapter = RunDir(spec.run_dir).weights == "adapter"
    if base is not None and quantized(base):
        reason = f"{why}, merged to f16 GGUF (a LoRA on the quantized {base.name} drifts)"
        return EngineChoice("llamacpp", reason, None, None, "f16", asked)
    if base is not None and lora is not None:
        return EngineChoice(
            "llamacpp", f"{why}, {lora.name} on {base.name}", base, lora, None, asked
        )
    if base is not None and adapter:
        reason = f"{why}, the adapter as LoRA GGUF on {base.name}"
        return EngineChoice("llamacpp", reason, base, None, "lora-gguf", asked)
    return EngineChoice("llamacpp", f"{why}, merged to f16 GGUF", None, None, "f16", asked)


def prepare(
    spec: Any, choice: EngineChoice, echo: Callable[[str], Any] | None = None
) -> EngineChoice:
    """Write the GGUF a choice needs (once; later serves find it). A run that cannot be
    written as GGUF (an architecture llama.cpp export does not cover) falls back to
    transformers under `auto`, with the reason."""
    if choice.write is None:
        return choice
    from selftune.export import export_run

    started = time.monotonic()
    target = RunDir(spec.run_dir).export_dir
    try:
        written = export_run(spec.run_dir, target, (choice.write,))
    except SelftuneError as exc:
        if choice.asked:
            raise
        return EngineChoice("transformers", f"no GGUF could be written ({exc})")
    took = time.monotonic() - started
    path = Path(written[choice.write])
    if echo is not None:
        echo(f"Wrote {path} for llama.cpp in {took:.0f}s (once; `selftune export` writes more)")
    if choice.write == "lora-gguf":
        reason = choice.reason.replace("the adapter as LoRA GGUF", path.name)
        return EngineChoice("llamacpp", reason, choice.gguf, path, None, choice.asked)
    return EngineChoice("llamacpp", choice.reason, path, None, None, choice.asked)
