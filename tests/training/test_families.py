"""Every open base family the installed transformers and llama.cpp support, as a tiny random
model built from its config: its GGUF gives transformers' logits in llama.cpp, and its LoRA
adapter as GGUF, applied by llama.cpp on that GGUF, gives PEFT's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.training.families import (
    FAMILIES,
    GEMMA,
    make_family_model,
    make_family_tokenizer,
    make_sentencepiece_tokenizer,
)

from selftune.templates import chat_shape, chat_wrappers, template_messages

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

    from selftune.export import write_gguf

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

    from selftune.export import export_run, write_gguf

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


CHAT = [
    {"role": "user", "content": "Tobias: how are the bees?"},
    {"role": "assistant", "content": "grand, 2 new queens!!"},
    {"role": "user", "content": "Tobias: coming sunday?"},
    {"role": "assistant", "content": "yes x"},
]


def _dataset(folder: Path, system: str) -> Path:
    folder.mkdir(parents=True)
    record = {"messages": [{"role": "system", "content": system}, *CHAT]}
    for name in ("train", "valid"):
        (folder / f"{name}.jsonl").write_text((json.dumps(record) + "\n") * 4)
    return folder


def modelfile_render(tokenizer, messages: list[dict], system: str) -> str:  # type: ignore[no-untyped-def]
    """What the Modelfile's TEMPLATE gives (test_export_consumers renders it with Go itself):
    each message between its role's wrappers, or for a template that writes the system text
    into the first or last user turn, that turn's content after the wrapped system text."""
    shape = chat_shape(tokenizer)
    w = shape.wrappers
    if not messages or messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}, *messages]
    if not shape.fold:
        text = "".join(w[m["role"]][0] + m["content"] + w[m["role"]][1] for m in messages)
        return text + w["generation"][0]
    rest = messages[1:]
    users = [i for i, m in enumerate(rest) if m["role"] == "user"]
    at = users[0] if shape.fold == "first" else users[-1]
    text = shape.head
    for i, m in enumerate(rest):
        folded = w["system"][0] + messages[0]["content"] + w["system"][1] if i == at else ""
        text += w[m["role"]][0] + folded + m["content"] + w[m["role"]][1]
    return text + w["generation"][0]


def test_build_train_export_and_serve_prompt_like_training(family_dir, tmp_path):
    """The family's template through the whole path: the training copy with `{% generation %}`
    renders like it, 2 training steps, the adapter exported (PEFT, LoRA GGUF, f16 GGUF and a
    Modelfile), and the prompt `serve` and the Modelfile give equals the training rendering.
    Mistral's and Gemma's templates write the system message into a user turn, and so do their
    training copy and Modelfile."""
    pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    from selftune.config import TrainConfig
    from selftune.engines.base import render_chat
    from selftune.export import export_run
    from selftune.templates import generation_template
    from selftune.training.trainer import train
    from selftune.twin import Twin

    twin = Twin(("Mags",), "You are {owner}. You are chatting on {platform} in '{conversation}'.")
    tokenizer = AutoTokenizer.from_pretrained(family_dir)
    conversation = twin.chat_messages(CHAT)
    # as the template renders it (Mistral's: the system message in the last user turn, where the
    # prompt for that reply has it, not dropped as its template does once a reply follows)
    training = tokenizer.apply_chat_template(
        template_messages(tokenizer, conversation), tokenize=False
    )
    marked = generation_template(tokenizer)
    assert (
        tokenizer.apply_chat_template(conversation, chat_template=marked, tokenize=False)
        == training
    )

    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    config = TrainConfig(
        base=str(family_dir), max_seq_len=128, batch_size=2, max_steps=2, lora_r=4,
        eval_every=100, early_stopping_patience=None, precision="fp32",
    )  # fmt: skip
    summary = train(_dataset(tmp_path / "d", conversation[0]["content"]), run_dir, config)
    assert summary["steps"] == 2 and summary["trained_tokens"] > 0
    # f32 weights: greedy tokens of a random model sit on near-ties that f16 may flip
    formats = ("adapter", "lora-gguf", "f32")
    written = export_run(run_dir, run_dir / "export", formats, system=twin.system())
    assert {"adapter", "lora-gguf", "f32", "modelfile"} <= set(written)

    asked = CHAT[:3]  # the owner's reply to Tobias' second message is what the model writes
    served = render_chat(tokenizer, twin.chat_messages(asked))
    assert training.startswith(served)
    assert modelfile_render(tokenizer, asked, twin.system()) == served
    text = Path(written["modelfile"]).read_text()
    w = chat_wrappers(tokenizer)
    if chat_shape(tokenizer).fold:  # the user's content after the system text, when folded
        pieces = [w["system"][0] + "{{ $system }}" + w["system"][1], w["user"][0],
                  "{{ $m.Content }}" + w["user"][1], w["assistant"][0] + "{{ $m.Content }}"
                  + w["assistant"][1]]  # fmt: skip
    else:
        pieces = [w[r][0] + "{{ .Content }}" + w[r][1] for r in ("system", "user", "assistant")]
    assert all(piece in text for piece in pieces)
    if shutil.which("go"):  # Ollama's renderer: Go's text/template, with SYSTEM put first
        from tests.training.test_export_consumers import go_render, template_of

        system = twin.system()
        case = {
            "System": system,
            "Messages": [{"Role": m["role"], "Content": m["content"]}
                         for m in [{"role": "system", "content": system}, *asked]],
        }  # fmt: skip
        assert go_render(template_of(text), [case], tmp_path) == [served]

    # `serve --engine auto` picks llama.cpp on the export and writes what transformers writes
    from selftune.engines import ModelSpec, open_engine
    from selftune.engines.base import GenRequest
    from selftune.engines.transformers_engine import TransformersEngine

    engine = open_engine(ModelSpec("twin", str(family_dir), run_dir), "auto")
    try:
        assert engine.choice.kind == "llamacpp", engine.choice
        fast = engine.generate([GenRequest(served, 1, 0, 1, 6)])[0]
    finally:
        engine.close()
    slow = TransformersEngine.from_run(run_dir, "twin").generate([GenRequest(served, 1, 0, 1, 6)])
    assert fast.texts == slow[0].texts and fast.prompt_tokens == slow[0].prompt_tokens
    assert slow[0].completion_tokens[0] > 0


@pytest.mark.parametrize(
    ("arch", "prepend_space"), [("MistralForCausalLM", True), ("Gemma3ForCausalLM", False)]
)
def test_a_sentencepiece_vocabulary_tokenises_in_llama_cpp_as_in_transformers(
    arch, prepend_space, tmp_path
):
    """Mistral, Phi-3-mini and Gemma ship byte-fallback (SentencePiece-style) vocabularies: the
    GGUF carries them as llama.cpp's "llama" tokenizer, scored by merge rank."""
    pytest.importorskip("llama_cpp")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from selftune.export import write_gguf

    vocab = make_sentencepiece_tokenizer(tmp_path / "spm", prepend_space)
    folder = make_family_model(arch, vocab, tmp_path / "model")
    path = write_gguf(folder, tmp_path / "model.gguf", "f32", name="twin")
    llm = _llama(path)
    assert llm.metadata["tokenizer.ggml.model"] == "llama"
    for text in (TEXT, "Mags: honey wax ö 2!!", " two  spaces\nand a line"):
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == _ids_of(folder, text)
    ids = _ids(folder)
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        ours = AutoModelForCausalLM.from_pretrained(folder)(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(theirs - ours).max() < 1e-3 * max(1.0, np.abs(ours).max())


def _ids_of(folder: Path, text: str) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder).encode(text, add_special_tokens=False)


def test_a_template_whose_turns_change_later_trains_every_reply_and_nothing_else(
    tokenizer_dir, tmp_path
):
    """Qwen3 renders the reply that ends a conversation with an empty think block, so prefixes
    do not render as prefixes: the whole conversation is rendered once and each reply found in
    it."""
    from transformers import AutoTokenizer

    from selftune.templates import template_options
    from selftune.training.encoding import IGNORE, encode_chat

    folder = make_family_model("Qwen3ForCausalLM", tokenizer_dir, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    conversation = [{"role": "system", "content": "You are Mags."}, *CHAT]
    ids, labels = encode_chat(tokenizer, conversation)
    full = tokenizer.apply_chat_template(
        conversation, tokenize=False, **template_options(tokenizer)
    )
    assert tokenizer.decode(ids) == full
    trained = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE]
    ends = "<|im_end|>\n"
    assert tokenizer.decode(trained) == f"grand, 2 new queens!!{ends}yes x{ends}"


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_the_last_reply_is_trained_right_after_the_prompt_serve_gives(
    arch, tokenizer_dir, tmp_path
):
    """For every family, what comes before the reply that ends an example is the prompt
    `render_chat` gives for it, with the same control tokens (the pieces are tokenised one by
    one, so whitespace before a piece may split otherwise), and the reply after it is trained
    from the end of the generation prompt to its end of turn. Gemma writes the system message
    into the first user turn; Mistral v0.3 into the last one only while it ends the
    conversation, so training writes it there (it would vanish once the reply follows) and
    trains the reply from the end of `[/INST]`, its leading space included."""
    from transformers import AutoTokenizer

    from selftune.engines.base import render_chat
    from selftune.training.encoding import IGNORE, encode_chat

    tokenizer = AutoTokenizer.from_pretrained(make_family_model(arch, tokenizer_dir, tmp_path))
    conversation = [{"role": "system", "content": "You are Mags."}, *CHAT]
    ids, labels = encode_chat(tokenizer, conversation)
    served = render_chat(tokenizer, conversation[:-1])
    assert "You are Mags." in served
    start = len(ids)
    while start and labels[start - 1] != IGNORE:
        start -= 1
    assert tokenizer.decode(ids[:start]) == served
    specials = set(tokenizer.get_added_vocab().values()) | set(tokenizer.all_special_ids)
    prompt = tokenizer(served, add_special_tokens=False)["input_ids"]
    assert [t for t in ids[:start] if t in specials] == [t for t in prompt if t in specials]
    w = chat_wrappers(tokenizer)
    head, end = w["last_assistant"]
    assert tokenizer.decode(ids[start:]) == head.removeprefix(w["generation"][0]) + "yes x" + end
    trained = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE])
    assert "grand, 2 new queens!!" in trained and "Tobias" not in trained


# Gemma 3's template with the system text after the user's content, or dropped: no shape
# selftune knows
AFTER_CONTENT = GEMMA.replace(
    " + (first_user_prefix if loop.first else '') }}{{ message['content'] | trim }}",
    "}}{{ message['content'] | trim }}{{ ('\\n\\n' + first_user_prefix if loop.first else '') }}",
)
DROPPED = GEMMA.replace("(first_user_prefix if loop.first else '')", "''")


@pytest.mark.parametrize(
    "template", [AFTER_CONTENT, DROPPED], ids=["system-after-the-content", "system-dropped"]
)
def test_a_template_that_cannot_be_taken_apart_still_exports(template, tokenizer_dir, tmp_path):
    """A template whose system message selftune cannot place: the GGUFs are written, the
    Modelfile has no TEMPLATE (Ollama renders the GGUF's own) and the exported templates keep
    the base's."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.errors import SelftuneError
    from selftune.export import export_run

    arch = "Gemma3ForCausalLM"
    assert template != GEMMA
    base = make_family_model(arch, tokenizer_dir, tmp_path / "base", template=template)
    with pytest.raises(SelftuneError):
        chat_shape(AutoTokenizer.from_pretrained(base))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2))
    run = tmp_path / "runs" / "r1"
    model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(base).save_pretrained(run / "adapter")
    (run / "run.json").write_text(json.dumps({"base": str(base)}))
    written = export_run(run, run / "export", ("adapter", "f16"), system="You are Mags.")
    assert Path(written["f16"]).stat().st_size > 0
    text = Path(written["modelfile"]).read_text()
    assert not any(line.startswith("TEMPLATE") for line in text.splitlines())
    assert 'SYSTEM """You are Mags."""' in text
    assert "could not be taken apart" in text
    for folder in ("adapter", "merged"):
        exported = AutoTokenizer.from_pretrained(run / "export" / folder)
        assert exported.chat_template == AutoTokenizer.from_pretrained(base).chat_template


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go (Debian: golang-go)")
@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_ollama_renders_each_familys_modelfile_as_serve_prompts(arch, tokenizer_dir, tmp_path):
    """The Modelfile's TEMPLATE, rendered by Go's text/template as Ollama does, gives the prompt
    `render_chat` gives, for a client's own system message, Ollama's SYSTEM put first, SYSTEM
    cleared (the twin's prompt from the template's own branch) and a Modelfile without SYSTEM
    (the template's own default) — Gemma's and Mistral's with the system text in a user turn."""
    from tests.training.test_export_consumers import (
        TWIN,
        WITH_SYSTEM,
        WITHOUT_SYSTEM,
        go_render,
        template_of,
    )

    from selftune.engines.base import render_chat
    from selftune.export import modelfile

    tokenizer = make_family_tokenizer(arch, tokenizer_dir)
    system = TWIN.system()

    def as_go(messages: list[dict], system: str = "") -> dict:
        return {"System": system, "Messages": [{"Role": m["role"], "Content": m["content"]}
                                                for m in messages]}  # fmt: skip

    twin = template_of(modelfile(tokenizer, "model-f16.gguf", system))
    cases = [
        as_go(WITH_SYSTEM, WITH_SYSTEM[0]["content"]),
        as_go([{"role": "system", "content": system}, *WITHOUT_SYSTEM], system),
        as_go(WITHOUT_SYSTEM),
        as_go(WITHOUT_SYSTEM[:1]),
    ]
    expected = [render_chat(tokenizer, WITH_SYSTEM)] + [
        render_chat(tokenizer, TWIN.chat_messages(m))
        for m in (WITHOUT_SYSTEM, WITHOUT_SYSTEM, WITHOUT_SYSTEM[:1])
    ]
    assert go_render(twin, cases, tmp_path) == expected
    own = template_of(modelfile(tokenizer, "model-f16.gguf"))
    plain = [render_chat(tokenizer, m) for m in (WITHOUT_SYSTEM, WITHOUT_SYSTEM[:1])]
    assert go_render(own, [as_go(WITHOUT_SYSTEM), as_go(WITHOUT_SYSTEM[:1])], tmp_path) == plain
