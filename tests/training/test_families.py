"""Every open base family the installed transformers and llama.cpp support, as a tiny random
model built from its config: its GGUF gives transformers' logits in llama.cpp, and its LoRA
adapter as GGUF, applied by llama.cpp on that GGUF, gives PEFT's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.training.families import FAMILIES, make_family_model

TEXT = "Tobias: how are the bees? Mags: grand, 2 new queens!! see you sunday x"


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_dir(request, tokenizer_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    return make_family_model(request.param, tokenizer_dir, folder)


def _ids(folder: Path) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder).encode(TEXT, add_special_tokens=False)


def _llama(path: Path, **kwargs):  # type: ignore[no-untyped-def]
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(
        model_path=str(path), n_ctx=128, logits_all=True, verbose=False, **kwargs
    )


def test_gguf_logits_match_transformers(family_dir, tmp_path):
    pytest.importorskip("llama_cpp")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from selftune.training.export import write_gguf

    # named like an export ("twin <run>"): llama.cpp reads some vocabularies by general.name
    # (a Phi-3 GGUF named "Phi3..." fails to load with this tokenizer)
    path = write_gguf(family_dir, tmp_path / "model.gguf", "f32", name="twin")
    model = AutoModelForCausalLM.from_pretrained(family_dir)
    ids = _ids(family_dir)
    llm = _llama(path)
    assert llm.tokenize(TEXT.encode(), add_bos=False, special=True) == ids
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(theirs - ours).max() < 1e-3 * max(1.0, np.abs(ours).max())


def test_lora_gguf_applied_by_llama_cpp_matches_peft(family_dir, tmp_path):
    pytest.importorskip("llama_cpp")
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selftune.training.export import export_run, write_gguf

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(family_dir), lora)
    run_dir = tmp_path / "runs" / "r1"
    peft_model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": str(family_dir)}))
    written = export_run(run_dir, run_dir / "export", ("lora-gguf",))
    base = write_gguf(family_dir, tmp_path / "base.gguf", "f32", name="base")
    ids = _ids(family_dir)
    with torch.no_grad():
        ours = peft_model(torch.tensor([ids])).logits[0].numpy()
        with peft_model.disable_adapter():
            without = peft_model(torch.tensor([ids])).logits[0].numpy()
    effect = np.abs(ours - without).max()
    assert effect > 1e-2, "the adapter must change something to test"
    llm = _llama(base, lora_path=written["lora-gguf"])
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    assert np.abs(theirs - ours).max() < 0.05 * effect
