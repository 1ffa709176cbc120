"""A run as files other tools load: the PEFT adapter without pickles (its base named so
transformers, PEFT and vLLM resolve it, with a model card) and the merged model as safetensors
that transformers 4.x and 5.x read alike; both with the twin's prompt as their chat template's
default system message (`portable.py`)."""

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


def export_adapter(
    run_dir: Path, target: Path, base: str, system: str | None = None, name: str = "twin"
) -> Path:
    """The PEFT adapter without pickles, its base named so transformers, PEFT and vLLM resolve
    it (not selftune's private cache folder), with a model card and (given `system`) the twin's
    prompt as its chat template's default."""
    from selftune.export.portable import adapter_card, portable_tokenizer, set_twin_template

    source = RunDir(run_dir).adapter_dir
    if not (source / "adapter_config.json").exists():
        raise SelftuneError(f"{run_dir} has no adapter (a full fine-tune exports merged only)")
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*PICKLES))
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = public_base(base)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if (target / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(target)
        if set_twin_template(tokenizer, system):
            tokenizer.save_pretrained(target)
        portable_tokenizer(target)
    adapter_card(target, public_base(base), name, run_dir.name)
    return target


def merge_run(run_dir: Path, target: Path, system: str | None = None) -> Path:
    """The base with the run's adapter folded in (or the fully tuned model), as safetensors
    that transformers 4.x and 5.x read alike, its template defaulting to the twin's `system`."""
    from transformers import AutoTokenizer

    from selftune.export.portable import portable_config, portable_tokenizer, set_twin_template
    from selftune.models import load_tuned

    run = RunDir(run_dir)
    if run.weights == "full":
        shutil.copytree(run.model_dir, target, dirs_exist_ok=True)
        tokenizer = AutoTokenizer.from_pretrained(target)
    else:
        model, tokenizer = load_tuned(run_dir)
        merged = model.merge_and_unload()
        merged.save_pretrained(target, safe_serialization=True)
    set_twin_template(tokenizer, system)
    tokenizer.save_pretrained(target)
    portable_config(target)
    portable_tokenizer(target)
    return target
