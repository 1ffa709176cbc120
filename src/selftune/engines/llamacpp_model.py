"""Loading llama.cpp: the library (llama-cpp-python, optional), a GGUF loaded once and shared by
every engine on it, and a run's LoRA adapter applied to an engine's own context."""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError

# What this engine calls that only recent llama.cpp builds have (an older llama-cpp-python would
# fail mid-request with an AttributeError): checked at load time and by `auto`'s choice.
NEEDED_CALLS = (
    "llama_get_memory",
    "llama_memory_seq_cp",
    "llama_memory_seq_rm",
    "llama_set_adapters_lora",
    "llama_adapter_lora_init",
    "llama_model_load_from_file",
    "llama_init_from_model",
    "llama_model_get_vocab",
    "llama_vocab_is_eog",
    "llama_sampler_init_penalties",
    "llama_sampler_init_logit_bias",
    "llama_sampler_init_grammar",
    "LLAMA_FLASH_ATTN_TYPE_ENABLED",
)
NEEDED_CONTEXT_FIELDS = ("kv_unified", "flash_attn_type")


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def missing_features(lib: Any = None) -> list[str]:
    """What the installed llama-cpp-python lacks of what this engine calls ([] when nothing)."""
    if lib is None:
        import llama_cpp as lib
    missing = [name for name in NEEDED_CALLS if not hasattr(lib, name)]
    params = getattr(lib, "llama_context_params", None)
    fields = {name for name, *_ in getattr(params, "_fields_", ())}
    missing += [f"llama_context_params.{f}" for f in NEEDED_CONTEXT_FIELDS if f not in fields]
    return missing


def unsupported_reason(lib: Any = None) -> str | None:
    """Why the installed llama-cpp-python cannot run this engine, or None when it can."""
    missing = missing_features(lib)
    if not missing:
        return None
    if lib is None:
        import llama_cpp as lib
    version = getattr(lib, "__version__", "?")
    return (
        f"llama-cpp-python {version} lacks {', '.join(missing)}: install the tested one "
        "(pip install -c constraints.txt 'llama-cpp-python>=0.3,<0.4')"
    )


def load_library() -> Any:
    try:
        import llama_cpp
        import llama_cpp._logger as logger  # installs llama.cpp's log callback
    except ImportError as exc:
        raise SelftuneError(
            "the llama.cpp engine needs llama-cpp-python: pip install 'selftune[llamacpp]'"
        ) from exc
    reason = unsupported_reason(llama_cpp)
    if reason is not None:
        raise SelftuneError(f"the llama.cpp engine cannot run: {reason}")
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
