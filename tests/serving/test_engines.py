"""Engines: stop handling, batching that changes nothing but speed, streaming that adds up to the
final text, and the llama.cpp engine on the embedded model's GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftune.engines.base import GenRequest, StopScanner, render_chat
from selftune.errors import SelftuneError


def test_stop_scanner_holds_back_a_possible_stop_and_cuts_at_it():
    s = StopScanner(["\nTobias:"])
    assert s.update("see you") == "see you"
    assert s.update("see you\nTob") == ""  # could be the start of the stop string
    assert s.update("see you\nTobias: hi") == ""
    assert s.stopped and s.text == "see you"
    other = StopScanner(["END"])
    other.update("a\nTob")
    assert other.flush() == "" and other.text == "a\nTob"


def test_stop_scanner_waits_for_a_whole_character():
    s = StopScanner([])
    assert s.update("caf\ufffd") == "caf"
    assert s.update("café") == "é"


def test_batched_requests_give_what_each_gives_alone(tiny_engine):
    prompts = ["Hello there, how", "a", "The list of tattoo ideas:\n1."]
    alone = [tiny_engine.generate([GenRequest(p, 1, 0, 1, 6)])[0].texts[0] for p in prompts]
    together = tiny_engine.generate([GenRequest(p, 2, 0, 1, 6) for p in prompts])
    assert [r.texts for r in together] == [[t, t] for t in alone]


def test_streamed_text_adds_up_to_the_result(tiny_engine):
    pieces: dict[int, str] = {0: "", 1: "", 2: ""}

    def on_text(i: int, text: str) -> None:
        pieces[i] += text

    request = GenRequest("Dear diary,", 3, 1.0, 0.95, 10, seed=3, on_text=on_text)
    result = tiny_engine.generate([request])[0]
    assert [pieces[i] for i in range(3)] == result.texts
    assert len(set(result.texts)) > 1, "sampled candidates should differ"


def test_per_request_max_tokens_in_one_batch(tiny_engine):
    short, long = GenRequest("hi", 1, 0, 1, 2), GenRequest("hi", 1, 0, 1, 9)
    a, b = tiny_engine.generate([short, long])
    assert a.completion_tokens == [2] and a.finish_reasons == ["length"]
    assert b.completion_tokens[0] > 2


def test_a_rendered_chat_samples_n_candidates_in_one_call(tiny_engine):
    asked = [{"role": "system", "content": "You are Mags."}, {"role": "user", "content": "hello"}]
    prompt = render_chat(tiny_engine.tokenizer, asked)
    assert prompt.rstrip().endswith("assistant")
    request = GenRequest(prompt, 2, 0.9, 0.95, 5, ["\n\n"], 1)
    outs = tiny_engine.generate([request])[0].texts
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)


def chat(tokenizer, text: str) -> str:  # type: ignore[no-untyped-def]
    return render_chat(tokenizer, [{"role": "user", "content": text}])


def test_llamacpp_candidates_stream_and_repeat_with_a_seed(llama_engine):
    pieces: dict[int, str] = {0: "", 1: "", 2: ""}

    def on_text(i: int, text: str) -> None:
        pieces[i] += text

    prompt = chat(llama_engine.tokenizer, "Give me a tattoo idea.")
    first = llama_engine.generate([GenRequest(prompt, 3, 1.0, 0.95, 12, seed=5, on_text=on_text)])[
        0
    ]
    again = llama_engine.generate([GenRequest(prompt, 3, 1.0, 0.95, 12, seed=5)])[0]
    assert first.texts == again.texts
    assert [pieces[i] for i in range(3)] == first.texts
    assert len(set(first.texts)) > 1
    assert first.prompt_tokens == len(llama_engine.tokenizer(prompt)["input_ids"])


def test_llamacpp_stops_at_end_of_turn_and_stop_strings(llama_engine):
    prompt = chat(llama_engine.tokenizer, "Say hello.")
    done = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 200)])[0]
    assert done.finish_reasons == ["stop"]  # ended its turn well before 200 tokens
    assert "<|im_end|>" not in done.texts[0]
    word = done.texts[0].split()[1]
    cut = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 200, stop=[word])])[0]
    assert cut.texts[0] == done.texts[0][: done.texts[0].find(word)]


@pytest.mark.slow
def test_same_greedy_tokens_on_both_engines(llama_engine):
    """The transformers engine runs the embedded model de-quantized to float from the same Q4_1
    GGUF llama.cpp runs quantized; with the same chat template and tokenizer, greedy decoding
    starts with the same tokens (it may drift later: llama.cpp also quantizes activations)."""
    from selftune.engines.transformers_engine import TransformersEngine
    from selftune.models import load_model

    tf = TransformersEngine(load_model("embedded"), llama_engine.tokenizer, "base")
    tok = llama_engine.tokenizer
    whole = 0
    prompts = ["How are the bees doing this week?", "are you coming sunday?", "Name a fruit."]
    for text in prompts:
        prompt = render_chat(tok, [{"role": "system", "content": "You are Mags."},
                                   {"role": "user", "content": text}])  # fmt: skip
        a = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 16)])[0].texts[0]
        b = tf.generate([GenRequest(prompt, 1, 0, 1, 16)])[0].texts[0]
        ids_a, ids_b = tok(a)["input_ids"], tok(b)["input_ids"]
        assert ids_a[:5] == ids_b[:5], (a, b)
        whole += a == b
    assert whole >= 2


def make_run(base: Path, run_dir: Path, seed: int) -> Path:
    """A finished run: a random, non-zero LoRA adapter on `base`."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      init_lora_weights=False)  # fmt: skip
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(
        run_dir / "adapter"
    )
    (run_dir / "run.json").write_text(json.dumps({"base": str(base)}))
    return run_dir


@pytest.fixture(scope="module")
def base_with_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model's folder, holding its own GGUF too (as a downloaded GGUF base would)."""
    import shutil

    from selftune.export import write_gguf

    folder = tmp_path_factory.mktemp("base") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    write_gguf(folder, folder / "tiny-f32.gguf", "f32")
    return folder


def test_auto_serves_a_run_on_llama_cpp_as_a_lora_on_the_shared_base(base_with_gguf, tmp_path):
    """No export needed: the first load writes the run's LoRA GGUF; two runs share one base;
    greedy tokens are the PEFT model's."""
    pytest.importorskip("llama_cpp")
    from selftune.engines import ModelSpec, choose_engine, open_engine
    from selftune.engines.llamacpp_engine import _SharedModel
    from selftune.engines.transformers_engine import TransformersEngine

    runs = [make_run(base_with_gguf, tmp_path / "runs" / f"r{i}", i) for i in (1, 2)]
    specs = [ModelSpec(r.name, str(base_with_gguf), r) for r in runs]
    first = choose_engine(specs[0], "auto")
    assert first.kind == "llamacpp" and first.write == "lora-gguf", first
    said: list[str] = []
    engines = [open_engine(s, "auto", echo=said.append) for s in specs]
    assert all((r / "export" / "lora-f16.gguf").exists() for r in runs)
    assert len(said) == 2 and "Wrote" in said[0]
    assert engines[0].choice.reason.endswith("lora-f16.gguf on tiny-f32.gguf")
    assert engines[0]._model is engines[1]._model and engines[0]._model.users == 2
    assert choose_engine(specs[0], "auto").write is None  # found next time, nothing to write
    prompt = "Hello there, how"
    texts = [e.generate([GenRequest(prompt, 1, 0, 1, 8)])[0].texts[0] for e in engines]
    for run, text in zip(runs, texts, strict=True):
        tf = TransformersEngine.from_run(run, run.name, merge=False)
        assert tf.generate([GenRequest(prompt, 1, 0, 1, 8)])[0].texts[0] == text
    assert texts[0] != texts[1], "each run's own adapter applies"
    for engine in engines:
        engine.close()
    assert str((base_with_gguf / "tiny-f32.gguf").resolve()) not in _SharedModel._open


def test_a_run_on_a_quantized_base_is_served_merged_at_f16(base_with_gguf, tmp_path):
    """The GGUF rule (docs/serving.md): a LoRA on a quantized base drifts from the trained
    model, so a run on one is merged to f16 instead; on a full-precision base it is the LoRA."""
    pytest.importorskip("llama_cpp")
    import shutil

    from selftune.engines import ModelSpec, choose_engine
    from selftune.engines.selection import quantized
    from selftune.export import write_gguf

    folder = tmp_path / "q8"
    shutil.copytree(base_with_gguf, folder)
    (folder / "tiny-f32.gguf").unlink()
    write_gguf(folder, folder / "tiny-q8_0.gguf", "q8_0")
    assert quantized(folder / "tiny-q8_0.gguf") and not quantized(base_with_gguf / "tiny-f32.gguf")
    run = make_run(folder, tmp_path / "runs" / "r1", 1)
    choice = choose_engine(ModelSpec(run.name, str(folder), run), "auto")
    assert choice.kind == "llamacpp" and choice.write == "f16", choice
    assert "tiny-q8_0.gguf drifts" in choice.reason
    run = make_run(base_with_gguf, tmp_path / "runs" / "r2", 2)
    assert choose_engine(ModelSpec(run.name, str(base_with_gguf), run), "auto").write == "lora-gguf"


def test_auto_says_why_it_falls_back(tiny_model_dir, monkeypatch):
    from selftune.engines import ModelSpec, choose_engine, llamacpp_engine

    spec = ModelSpec("base", str(tiny_model_dir))
    choice = choose_engine(spec, "auto")
    assert choice.kind == "transformers" and "no GGUF" in choice.reason
    monkeypatch.setattr(llamacpp_engine, "available", lambda: False)
    choice = choose_engine(ModelSpec("base", "embedded"), "auto")
    assert choice.kind == "transformers" and "llama-cpp-python is not installed" in choice.reason
    with pytest.raises(SelftuneError, match="needs llama-cpp-python"):
        choose_engine(spec, "llamacpp")
