"""Export: GGUF weights/tokenizer as llama.cpp reads them, and a Modelfile matching training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftune.export import modelfile, write_gguf
from selftune.templates import chat_wrappers

CONVERSATION = [
    {"role": "system", "content": "You are Mags. Reply as Mags would."},
    {"role": "user", "content": "Tobias: bees ok?"},
    {"role": "assistant", "content": "grand, 2 new queens"},
    {"role": "user", "content": "Tobias: pics??"},
]


def test_modelfile_template_renders_like_the_training_template(tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    expected = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=False, add_generation_prompt=True
    )
    w = chat_wrappers(tokenizer)
    # the Modelfile's TEMPLATE writes each message between these wrappers, then the generation
    # prompt (test_export_consumers renders the TEMPLATE itself with Go's text/template)
    wrapped = "".join(w[m["role"]][0] + m["content"] + w[m["role"]][1] for m in CONVERSATION)
    assert wrapped + w["generation"][0] == expected
    text = modelfile(tokenizer, "model-q8_0.gguf")
    for role in ("system", "user", "assistant"):
        assert w[role][0] + "{{ .Content }}" + w[role][1] in text
    # the model was trained to end its turn with this token: Ollama must stop on it
    end_of_turn = w["assistant"][1].strip()
    assert f'PARAMETER stop "{end_of_turn}"' in text
    assert "FROM ./model-q8_0.gguf" in text.splitlines()


def test_gguf_logits_match_transformers(tiny_model_dir, tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = write_gguf(Path(tiny_model_dir), tmp_path / "tiny.gguf", "f32")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(theirs - ours).max() < 1e-3 * max(1.0, np.abs(ours).max())


@pytest.mark.slow
def test_exported_gguf_continues_like_transformers(tmp_path):
    """The embedded model with a (random, non-zero) adapter, exported and read by llama.cpp."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import torch
    from peft import LoraConfig, get_peft_model

    from selftune.export import export_run
    from selftune.models import load_model, load_tokenizer, load_tuned

    run_dir = tmp_path / "run"
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(load_model("embedded"), lora)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.mul_(0.01)  # a small, real change to q/k (exercises the rotary permutation)
    peft_model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": "embedded"}))
    written = export_run(run_dir, tmp_path / "export", ("merged", "f16", "q8_0"))
    model, tokenizer = load_tuned(run_dir)
    prompts = [
        tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True),
        tokenizer.apply_chat_template(
            CONVERSATION[:1] + [{"role": "user", "content": "hi!"}],
            tokenize=False,
            add_generation_prompt=True,
        ),
        "The bees this morning were",
    ]
    assert load_tokenizer("embedded").chat_template == tokenizer.chat_template
    for kind in ("f16", "q8_0"):
        llm = llama_cpp.Llama(model_path=written[kind], n_ctx=256, verbose=False)
        for prompt in prompts:
            ids = tokenizer.encode(prompt, add_special_tokens=False)
            with torch.no_grad():
                ours = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
                top5 = model(torch.tensor([ids])).logits[0, -1].topk(5).indices.tolist()
            ours = ours[0][len(ids) :].tolist()
            llm.reset()
            theirs = []
            for token in llm.generate(ids, temp=0.0, top_k=1):
                theirs.append(token)
                if len(theirs) == len(ours):
                    break
            if kind == "f16":
                assert theirs == ours, (kind, prompt[-30:])
            else:  # 8-bit weights may swap near-tied tokens; a wrong layout would not be close
                assert theirs[0] in top5, (kind, prompt[-30:])


def test_lora_gguf_applied_by_llama_cpp_matches_peft(tiny_model_dir, tmp_path):
    """The adapter alone as GGUF, applied by llama.cpp on the base's GGUF, gives the logits
    PEFT gives with the same adapter on the same base (q/k included: the rotary permutation)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.export import export_run

    torch.manual_seed(0)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora)
    run_dir = tmp_path / "runs" / "r1"
    peft_model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": str(tiny_model_dir)}))
    written = export_run(run_dir, run_dir / "export", ("lora-gguf",))
    assert list(written) == ["lora-gguf"]
    base = write_gguf(Path(tiny_model_dir), tmp_path / "base.gguf", "f32")

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    ids = tokenizer.encode(text, add_special_tokens=False)
    with torch.no_grad():
        ours = peft_model(torch.tensor([ids])).logits[0].numpy()
        with peft_model.disable_adapter():
            without = peft_model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(ours - without).max() > 1e-2, "the adapter must change something to test"
    llm = llama_cpp.Llama(
        model_path=str(base),
        lora_path=written["lora-gguf"],
        n_ctx=128,
        logits_all=True,
        verbose=False,
    )
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    effect = np.abs(ours - without).max()
    # float16 adapter weights: a small rounding error; a wrong layout errs like the effect itself
    assert np.abs(theirs - ours).max() < 0.05 * effect


def test_lora_gguf_refuses_a_full_fine_tune(tmp_path):
    from selftune.errors import SelftuneError
    from selftune.export.lora_gguf import write_lora_gguf

    run_dir = tmp_path / "r2"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "config.json").write_text("{}")
    (run_dir / "run.json").write_text(json.dumps({"base": "embedded"}))
    with pytest.raises(SelftuneError, match="full fine-tune"):
        write_lora_gguf(run_dir, tmp_path / "x.gguf")
