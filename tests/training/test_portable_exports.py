"""Exports behave like the twin in the tools that load them: with no system message, the
adapter's, the merged model's and the GGUF's templates give the twin's prompt; the merged
config and tokenizer read the same in transformers 4.x (set SELFTUNE_TRANSFORMERS4_PYTHON to a
python with transformers 4.x to check that for real); the adapter's card names its base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.training.families import make_family_model

SYSTEM = "You are Mags. You are chatting on WhatsApp in 'Bees'."
HELLO = [{"role": "user", "content": "hi"}]
READ = """
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
import transformers
d = sys.argv[1]
config, tok = AutoConfig.from_pretrained(d), AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d)
text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
ids = tok(text, add_special_tokens=False).input_ids
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0, -1]
print(json.dumps({"version": transformers.__version__, "text": text, "ids": ids,
                  "logits": logits[:50].tolist()}))
""".replace("MESSAGES", json.dumps(HELLO))


@pytest.fixture(scope="module")
def exported(tokenizer_dir, tmp_path_factory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.export import export_run

    root = tmp_path_factory.mktemp("portable")
    base = make_family_model("LlamaForCausalLM", tokenizer_dir, root / "base")
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora)
    run = root / "runs" / "r1"
    model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(base).save_pretrained(run / "adapter")  # as training saves it
    (run / "run.json").write_text(json.dumps({"base": str(base)}))
    export_run(run, run / "export", ("adapter", "merged", "f16"), "mags", SYSTEM)
    return run / "export"


def _render(folder: Path, messages: list[dict]) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_every_export_defaults_to_the_twins_prompt(exported):
    own = [{"role": "system", "content": "Be brief."}, *HELLO]
    for folder in (exported / "adapter", exported / "merged"):
        assert SYSTEM in _render(folder, HELLO)
        assert "Be brief." in _render(folder, own) and SYSTEM not in _render(folder, own)
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(exported / "model-f16.gguf"), n_ctx=64, verbose=False)
    from transformers import AutoTokenizer

    merged = AutoTokenizer.from_pretrained(exported / "merged")
    assert llm.metadata["tokenizer.chat_template"] == merged.chat_template
    assert f'SYSTEM """{SYSTEM}"""' in (exported / "Modelfile").read_text()


def test_the_merged_config_and_tokenizer_read_the_same_in_transformers_4(exported):
    config = json.loads((exported / "merged" / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 500000.0
    assert config["rope_scaling"]["rope_type"] == "llama3"
    settings = json.loads((exported / "merged" / "tokenizer_config.json").read_text())
    assert settings["tokenizer_class"] == "PreTrainedTokenizerFast"
    here = json.loads(_read(sys.executable, exported / "merged"))
    assert SYSTEM in here["text"]
    other = os.environ.get("SELFTUNE_TRANSFORMERS4_PYTHON")
    if not other:
        pytest.skip("set SELFTUNE_TRANSFORMERS4_PYTHON to a python with transformers 4.x")
    there = json.loads(_read(other, exported / "merged"))
    assert there["version"].startswith("4.")
    assert (there["text"], there["ids"]) == (here["text"], here["ids"])
    gap = max(abs(a - b) for a, b in zip(there["logits"], here["logits"], strict=True))
    assert gap < 1e-4, "4.x computes another model (rope_theta or scaling read differently)"


def _read(python: str, folder: Path) -> str:
    done = subprocess.run(
        [python, "-c", READ, str(folder)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_adapter_card_names_the_base(exported):
    card = (exported / "adapter" / "README.md").read_text()
    settings = json.loads((exported / "adapter" / "adapter_config.json").read_text())
    base = settings["base_model_name_or_path"]
    assert f"\nbase_model: {base}\n" in card and "selftune twin" in card
    assert "[More Information Needed]" not in card
