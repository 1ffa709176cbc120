"""A merged Hugging Face checkpoint as a GGUF file, written with the `gguf` package (llama.cpp's
own writer) for every family in `selftune.families` (Llama 3.x, Mistral, Qwen2.5, Qwen3, Phi-3/4,
Gemma 2/3).

Weights are renamed with gguf's tensor name map and changed as the family needs (q/k rows
permuted into llama.cpp's rotary layout, Gemma's norm offset, Llama 3.1's rope factors), the
tokenizer (byte-level BPE as `gpt2`, byte-fallback BPE as SentencePiece `llama`) and its chat
template embedded, and the keys llama.cpp's own converter writes (no BOS added, quantization
version, key/value lengths, soft-capping and sliding windows, the twin's name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError

GGUF_TYPES = ("f16", "q8_0", "f32")


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


def _keys(writer: Any) -> set[str]:
    return {key for kv in writer.kv_data for key in kv}


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
