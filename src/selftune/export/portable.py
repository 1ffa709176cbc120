"""Exported folders that other tools read as the twin: the twin's system prompt as the chat
template's default, configs and tokenizer files that transformers 4.x reads as 5.x does (many
vLLM and TGI installs still run 4.x), and an adapter model card that names a base others can
resolve.

transformers 5 writes rotary settings only as `rope_parameters`; 4.x reads `rope_theta` (else
silently 10000) and `rope_scaling`, so both are written. Its tokenizer class `TokenizersBackend`
does not exist in 4.x; `PreTrainedTokenizerFast` is the same fast tokenizer in both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
NEW_ONLY_CLASSES = ("TokenizersBackend",)


def set_twin_template(tokenizer: Any, system: str | None) -> bool:
    """Make the twin's prompt the template's default system message; False when the template's
    shape cannot be derived (its own default then stays, and the export says so)."""
    from selftune.templates import twin_template

    if system is None or not tokenizer.chat_template:
        return False
    try:
        tokenizer.chat_template = twin_template(tokenizer, system)
    except Exception:  # noqa: BLE001 (SelftuneError, or a template that raises on our probes)
        return False
    return True


def portable_config(folder: Path) -> None:
    """config.json readable by transformers 4.x the same way: rope_theta and rope_scaling
    beside rope_parameters, torch_dtype beside dtype."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    rope = config.get("rope_parameters") or {}
    if "full_attention" in rope:  # per layer type (Gemma 3): 4.x has two keys for it
        config.setdefault("rope_theta", rope["full_attention"].get("rope_theta"))
        if "sliding_attention" in rope:
            local = rope["sliding_attention"].get("rope_theta")
            config.setdefault("rope_local_base_freq", local)
        rope = rope["full_attention"]
    elif "rope_theta" in rope:
        config.setdefault("rope_theta", rope["rope_theta"])
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    if scaling.get("rope_type", "default") != "default":
        config.setdefault("rope_scaling", scaling)
    if "dtype" in config:
        config.setdefault("torch_dtype", config["dtype"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def portable_tokenizer(folder: Path) -> None:
    """tokenizer_config.json naming a tokenizer class both 4.x and 5.x have."""
    path = folder / "tokenizer_config.json"
    if not path.exists():
        return
    settings = json.loads(path.read_text())
    if settings.get("tokenizer_class") in NEW_ONLY_CLASSES:
        settings["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")


def adapter_card(folder: Path, base: str, name: str, run_id: str) -> None:
    """README.md: a model card whose `base_model` is the public base (not a cache path)."""
    front = ["---", f"base_model: {base}", "library_name: peft", "tags:"]
    front += [f"- base_model:adapter:{base}", "- lora", "- selftune", "---", ""]
    body = [
        f"# {name}: a selftune twin ({run_id})",
        "",
        f"A LoRA adapter on [{base}](https://huggingface.co/{base}), trained by selftune on one "
        "person's own writing. Its chat template's default system prompt is the twin's, so a "
        "conversation without a system message is prompted as `selftune serve` prompts it.",
        "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        "from transformers import AutoTokenizer",
        "model = AutoPeftModelForCausalLM.from_pretrained('.')",
        "tokenizer = AutoTokenizer.from_pretrained('.')",
        "```",
        "",
        "vLLM: `vllm serve BASE --enable-lora --lora-modules twin=.` (docs/serving.md).",
        "",
        "It was trained on private messages: share it only as you would share them.",
        "",
    ]
    (folder / "README.md").write_text("\n".join(front + body))
