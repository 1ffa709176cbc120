"""The llama.cpp engine checks that the installed llama-cpp-python has what it calls, and `auto`
falls back to transformers with that reason instead of an AttributeError mid-request."""

from __future__ import annotations

import ctypes
import sys
import types

import pytest

from selftune.errors import SelftuneError


def old_llama_cpp() -> types.ModuleType:
    """A llama-cpp-python from before the memory API, flash_attn_type and kv_unified."""
    lib = types.ModuleType("llama_cpp")
    lib.__version__ = "0.2.90"
    for name in ("llama_model_load_from_file", "llama_init_from_model", "llama_kv_cache_seq_rm"):
        setattr(lib, name, lambda *a: None)

    class llama_context_params(ctypes.Structure):  # noqa: N801 (llama.cpp's name)
        _fields_ = [("n_ctx", ctypes.c_uint32), ("flash_attn", ctypes.c_bool)]

    lib.llama_context_params = llama_context_params
    return lib


def test_the_installed_llama_cpp_python_has_everything_the_engine_calls():
    lib = pytest.importorskip("llama_cpp")
    from selftune.engines import llamacpp_engine

    assert llamacpp_engine.missing_features(lib) == []
    assert llamacpp_engine.unsupported_reason(lib) is None


def test_an_old_llama_cpp_python_is_named_with_what_it_lacks():
    from selftune.engines import llamacpp_engine

    missing = llamacpp_engine.missing_features(old_llama_cpp())
    assert "llama_get_memory" in missing and "llama_set_adapters_lora" in missing
    assert "llama_context_params.kv_unified" in missing
    assert "llama_context_params.flash_attn_type" in missing
    assert "llama_model_load_from_file" not in missing
    reason = llamacpp_engine.unsupported_reason(old_llama_cpp())
    assert reason.startswith("llama-cpp-python 0.2.90 lacks llama_get_memory")
    assert "constraints.txt" in reason


def test_auto_falls_back_to_transformers_on_an_old_llama_cpp_python(monkeypatch, tmp_path):
    from selftune.engines import ModelSpec, choose_engine

    gguf = tmp_path / "base.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", old_llama_cpp())
    spec = ModelSpec("base", str(gguf))
    choice = choose_engine(spec, "auto")
    assert choice.kind == "transformers"
    assert "llama-cpp-python 0.2.90 lacks" in choice.reason and "kv_unified" in choice.reason
    with pytest.raises(SelftuneError, match="--engine llamacpp cannot run: llama-cpp-python 0.2"):
        choose_engine(spec, "llamacpp")
