"""A run as files other tools load: the PEFT adapter without pickles (its base named so
transformers, PEFT and vLLM resolve it) and the merged model as safetensors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from selftune.artefacts import RunDir
from selftune.errors import SelftuneError

EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def public_base(base: str) -> str:
    """The base as someone else can name it: the embedded model by its public id."""
    from selftune.models import EMBEDDED_NAMES

    return EMBEDDED_HUB_ID if base in EMBEDDED_NAMES or not base else base


def export_adapter(run_dir: Path, target: Path, base: str) -> Path:
    """The PEFT adapter without pickles, its base named so transformers, PEFT and vLLM resolve
    it (not selftune's private cache folder)."""
    source = RunDir(run_dir).adapter_dir
    if not (source / "adapter_config.json").exists():
        raise SelftuneError(f"{run_dir} has no adapter (a full fine-tune exports merged only)")
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*PICKLES))
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = public_base(base)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return target


def merge_run(run_dir: Path, target: Path) -> Path:
    """The base with the run's adapter folded in (or the fully tuned model), as safetensors."""
    from selftune.models import load_tuned

    run = RunDir(run_dir)
    if run.weights == "full":
        shutil.copytree(run.model_dir, target, dirs_exist_ok=True)
        return target
    model, tokenizer = load_tuned(run_dir)
    merged = model.merge_and_unload()
    merged.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target
