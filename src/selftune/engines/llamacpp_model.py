"""Loading llama.cpp: the library (llama-cpp-python, optional), a GGUF loaded once and shared by
every engine on it, and a run's LoRA adapter applied to an engine's own context."""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def load_library() -> Any:
    try:
        import llama_cpp
        import llama_cpp._logger as logger  # installs llama.cpp's log callback
    except ImportError as exc:
        raise SelftuneError(
            "the llama.cpp engine needs llama-cpp-python: pip install 'selftune[llamacpp]'"
        ) from exc
    logger.set_verbose(os.environ.get("SELFTUNE_LLAMA_VERBOSE") == "1")
    return llama_cpp


class SharedModel:
    """A GGUF loaded once and shared by every engine on it, freed when the last one closes."""

    _open: dict[str, SharedModel] = {}
    _lock = threading.Lock()

    def __init__(self, lib: Any, path: Path):
        params = lib.llama_model_default_params()
        self.pointer = lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.pointer:
            raise SelftuneError(f"llama.cpp could not load {path}; is it a GGUF file?")
        self.lib, self.key, self.users = lib, str(path.resolve()), 0

    @classmethod
    def acquire(cls, lib: Any, path: Path) -> SharedModel:
        with cls._lock:
            model = cls._open.get(str(path.resolve())) or cls(lib, path)
            cls._open[model.key] = model
            model.users += 1
            return model

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users == 0:
                del self._open[self.key]
                self.lib.llama_model_free(self.pointer)


def apply_lora(lib: Any, model: Any, ctx: Any, path: Path, scale: float) -> Any:
    """Load the LoRA GGUF at `path` for `model` and apply it to `ctx`; returns the adapter."""
    if not path.exists():
        raise SelftuneError(f"{path} does not exist; run `selftune export --format lora-gguf`")
    adapter = lib.llama_adapter_lora_init(model, str(path).encode())
    if not adapter:
        raise SelftuneError(f"llama.cpp could not load the LoRA adapter {path}")
    adapters = (lib.llama_adapter_lora_p_ctypes * 1)(adapter)
    scales = (ctypes.c_float * 1)(scale)
    if lib.llama_set_adapters_lora(ctx, adapters, 1, scales):
        raise SelftuneError(f"llama.cpp could not apply the LoRA adapter {path}")
    return adapter
