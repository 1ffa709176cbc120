"""Export a training run for other engines: PEFT adapter, merged safetensors, GGUF, LoRA GGUF
(`lora_gguf.py`), Ollama Modelfile.

The GGUF is written with the `gguf` package (llama.cpp's own writer) for Llama- and Qwen2-family
models: weights renamed with gguf's tensor name map, q/k rows permuted into llama.cpp's rotary
layout (Llama only), the tokenizer and its chat template embedded, and the keys llama.cpp's own
converter writes (no BOS added, quantization version, key/value lengths, the twin's name). The
Modelfile's TEMPLATE and stop tokens are derived from that same chat template and its SYSTEM is
the twin's prompt, so Ollama prompts the model exactly as it was trained, with or without a
system message. Nothing exported is a pickle: the adapter's training_args.bin stays behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.templates import chat_wrappers, default_system

GGUF_TYPES = ("f16", "q8_0", "f32")
LORA_GGUF = "lora-f16.gguf"  # the adapter alone, applied by llama.cpp on the base's GGUF
# the Modelfile's FROM: f16 gives the trained model's own greedy text; q8_0 is half the size but
# drifts (measured on the embedded model: docs/serving.md)
MODELFILE_PREFERENCE = ("f16", "f32", "q8_0")
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def export_run(
    run_dir: Path,
    out_dir: Path,
    formats: tuple[str, ...] = ("adapter", "merged", "f16", "q8_0"),
    name: str = "twin",
    system: str | None = None,
) -> dict[str, str]:
    """Write the requested formats under `out_dir`; returns {format: path}. `name` becomes the
    GGUF's general.name, `system` (the twin's prompt) the Modelfile's SYSTEM."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    base = _run_base(run_dir)
    if "adapter" in formats:
        written["adapter"] = str(export_adapter(run_dir, out_dir / "adapter", base, system, name))
    if "lora-gguf" in formats:
        from selftune.training.lora_gguf import write_lora_gguf

        written["lora-gguf"] = str(write_lora_gguf(run_dir, out_dir / LORA_GGUF))
    gguf_types = [f for f in formats if f in GGUF_TYPES]
    if "merged" in formats or gguf_types:
        merged = merge_run(run_dir, out_dir / "merged", system)
        written["merged"] = str(merged)
        title = f"{name} {run_dir.name}".strip()
        for kind in gguf_types:
            path = out_dir / f"model-{kind}.gguf"
            write_gguf(merged, path, kind, name=title, base=public_base(base))
            written[kind] = str(path)
        if gguf_types:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(merged)
            kind = next(k for k in MODELFILE_PREFERENCE if k in gguf_types)
            others = [k for k in gguf_types if k != kind]
            (out_dir / "Modelfile").write_text(
                modelfile(tokenizer, f"model-{kind}.gguf", system, others)
            )
            written["modelfile"] = str(out_dir / "Modelfile")
    return written


def _run_base(run_dir: Path) -> str:
    info = run_dir / "run.json"
    return json.loads(info.read_text()).get("base", "") if info.exists() else ""


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
    from selftune.training.portable import adapter_card, portable_tokenizer, set_twin_template

    source = run_dir / "adapter"
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

    from selftune.models import load_tuned
    from selftune.training.portable import portable_config, portable_tokenizer, set_twin_template

    if (run_dir / "model" / "config.json").exists():  # method: full
        shutil.copytree(run_dir / "model", target, dirs_exist_ok=True)
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


def _keys(writer: Any) -> set[str]:
    return {key for kv in writer.kv_data for key in kv}


def guess_pre_tokenizer(tokenizer: Any) -> str:
    """llama.cpp's name for the pre-tokenizer regex of known BPE vocabularies."""
    vocab = tokenizer.get_vocab()
    if "<|begin_of_text|>" in vocab:
        return "llama-bpe"
    if "<|im_start|>" in vocab and len(vocab) > 150_000:
        return "qwen2"
    if "<|im_start|>" in vocab and len(vocab) == 49152:
        return "smollm"
    return "default"


def write_gguf(
    model_dir: Path, path: Path, kind: str = "f16", name: str | None = None, base: str = ""
) -> Path:
    """Write a merged Hugging Face checkpoint as GGUF (f32, f16 or q8_0 weights)."""
    import gguf
    import numpy as np
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    from selftune.families import family_of, gguf_arch, head_dim, hf_to_gguf_tensor, rope_theta

    config = AutoConfig.from_pretrained(model_dir)
    family = family_of(config)
    arch = gguf_arch(family)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    n_head, n_kv = (
        config.num_attention_heads,
        config.num_key_value_heads or config.num_attention_heads,
    )
    head = head_dim(config)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]  # fmt: skip

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or model_dir.name)
    if base:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_key_length(head)
    writer.add_value_length(head)
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    if family.keys is not None:
        family.keys(writer, config)  # may set its own rope dimension count (Phi-3)
    if gguf.Keys.Rope.DIMENSION_COUNT.format(arch=writer.arch) not in _keys(writer):
        writer.add_rope_dimension_count(head)
    _add_tokenizer(writer, tokenizer, model_dir, config.vocab_size)

    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as fh:
            for hf_name in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if tied and hf_name == "lm_head.weight":
                    continue
                data = fh.get_tensor(hf_name).float().numpy()
                data = hf_to_gguf_tensor(family, config, hf_name, data)
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise SelftuneError(f"GGUF export: no GGUF name for tensor {hf_name}")
                _add_tensor(writer, name, data, kind, gguf, np)
    for name, data in (family.tensors(config) if family.tensors else {}).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_tensor(writer: Any, name: str, data: Any, kind: str, gguf: Any, np: Any) -> None:
    if data.ndim == 1 or kind == "f32":
        writer.add_tensor(name, data.astype(np.float32))
    elif kind == "q8_0" and data.shape[-1] % 32 == 0:
        quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        writer.add_tensor(name, data.astype(np.float16))


def _add_tokenizer(writer: Any, tokenizer: Any, model_dir: Path, vocab_size: int) -> None:
    """A BPE (gpt2-style) vocabulary, merges, special ids and the chat template."""
    import gguf

    if not getattr(tokenizer, "is_fast", False):
        raise SelftuneError("GGUF export needs a fast (tokenizer.json) BPE tokenizer")
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise SelftuneError(f"GGUF export supports BPE tokenizers, not {model.get('type')}")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    sentencepiece = bool(model.get("byte_fallback"))  # Llama 2, Mistral, Phi-3-mini, Gemma
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(
                gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED
            )
        elif sentencepiece and re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", by_id[i]):
            tokens.append(by_id[i])
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    if sentencepiece:
        _add_sentencepiece(writer, tokenizer, model, tokens)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(guess_pre_tokenizer(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    # say whether the tokenizer adds BOS/EOS: Ollama and llama.cpp otherwise guess (Ollama: BOS
    # yes, which puts an extra token before every prompt the model never saw in training)
    sample = tokenizer("a")["input_ids"]
    special.add_special_token.setdefault(
        "bos", bool(sample) and sample[0] == tokenizer.bos_token_id
    )
    special.add_special_token.setdefault(
        "eos", bool(sample) and sample[-1] == tokenizer.eos_token_id
    )
    special.add_to_gguf(writer)
    if tokenizer.chat_template and not special.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _add_sentencepiece(writer: Any, tokenizer: Any, model: dict, tokens: list[str]) -> None:
    """A byte-fallback BPE vocabulary as llama.cpp's SentencePiece one ("llama"): each merged
    token scored by its merge's rank (llama.cpp merges the highest score first, as BPE applies
    the lowest rank first), and the leading space as the tokenizer's normalizer adds it."""
    rank: dict[str, int] = {}
    for i, merge in enumerate(model.get("merges", [])):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, i)
    writer.add_tokenizer_model("llama")
    writer.add_token_scores([-float(rank.get(t, 0)) for t in tokens])
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    shape = json.dumps([backend.get("normalizer"), backend.get("pre_tokenizer")])
    writer.add_add_space_prefix('"Prepend"' in shape or '"prepend_scheme": "always"' in shape)


def modelfile(
    tokenizer: Any, gguf_name: str, system: str | None = None, others: list[str] | None = None
) -> str:
    """An Ollama Modelfile whose TEMPLATE renders conversations as the training chat template.

    Ollama puts SYSTEM first when the request brings no system message; the template's own
    branch does the same when SYSTEM is empty too, so no path renders the base's stock prompt."""
    w = chat_wrappers(tokenizer)
    fallback = system if system is not None else default_system(tokenizer)

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')

    def go_literal(s: str) -> str:  # a Go template string constant (json.dumps is one)
        return json.dumps(s, ensure_ascii=False)

    no_system = '{{- if or (not .Messages) (ne (index .Messages 0).Role "system") }}'
    template = (
        no_system + w["system"][0]
        + "{{ if .System }}{{ .System }}{{ else }}{{ " + go_literal(fallback) + " }}{{ end }}"
        + w["system"][1] + "{{ end }}"
        + "{{- range .Messages }}"
        '{{ if eq .Role "system" }}' + w["system"][0] + "{{ .Content }}" + w["system"][1]
        + '{{ else if eq .Role "user" }}' + w["user"][0] + "{{ .Content }}" + w["user"][1]
        + '{{ else if eq .Role "assistant" }}' + w["assistant"][0] + "{{ .Content }}"
        + w["assistant"][1] + "{{ end }}{{ end }}" + w["generation"][0]
    )  # fmt: skip
    stops = stop_strings(tokenizer)
    lines = [
        "# The twin, prompted as in training: TEMPLATE is its chat template, SYSTEM its prompt.",
        f"# {gguf_name.removeprefix('model-').removesuffix('.gguf')} weights give the trained "
        "model's own text"
        + (f"; FROM ./model-{others[0]}.gguf is smaller and faster but drifts" if others else ""),
        f"FROM ./{gguf_name}",
    ]
    if system is not None:
        lines.append(f'SYSTEM """{system}"""')
    lines.append(f'TEMPLATE """{template}"""')
    lines += [f'PARAMETER stop "{esc(s)}"' for s in stops]
    lines += ["PARAMETER temperature 0.8", "PARAMETER top_p 0.95", ""]
    return "\n".join(lines)


def stop_strings(tokenizer: Any) -> list[str]:
    """The end-of-turn token the model was trained to emit, and the start of a new turn."""
    w = chat_wrappers(tokenizer)
    stops = []
    end = w["assistant"][1].strip()
    if end:
        stops.append(end)
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    start = w["user"][0].strip().split("\n")[0].split("user")[0]
    if start and start not in stops:
        stops.append(start)
    return stops


def render_like_modelfile(
    tokenizer: Any, messages: list[dict[str, str]], system: str | None = None
) -> str:
    """What the Modelfile's TEMPLATE produces for `messages` (used to check it against training)."""
    w = chat_wrappers(tokenizer)
    if not messages or messages[0]["role"] != "system":
        fallback = system if system is not None else default_system(tokenizer)
        messages = [{"role": "system", "content": fallback}, *messages]
    text = "".join(w[m["role"]][0] + m["content"] + w[m["role"]][1] for m in messages)
    return text + w["generation"][0]
