"""A merged Hugging Face checkpoint as a GGUF file, written with the `gguf` package (llama.cpp's
own writer) for Llama- and Qwen2-family models.

Weights are renamed with gguf's tensor name map, q/k rows permuted into llama.cpp's rotary layout
(Llama only), the tokenizer and its chat template embedded, and the keys llama.cpp's own
converter writes (no BOS added, quantization version, key/value lengths, the twin's name).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError

GGUF_TYPES = ("f16", "q8_0", "f32")
ARCHS = {"LlamaForCausalLM": "LLAMA", "Qwen2ForCausalLM": "QWEN2"}


def permute_rotary(weights: Any, n_head: int) -> Any:
    """HF's rotary layout (halves) to llama.cpp's (interleaved pairs), per head (as convert_hf_to_gguf)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


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

    config = AutoConfig.from_pretrained(model_dir)
    arch_name = ARCHS.get((config.architectures or [""])[0])
    if arch_name is None:
        raise SelftuneError(
            f"GGUF export supports {', '.join(ARCHS)}; {config.architectures} is not one of them. "
            "Export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py"
        )
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    n_head, n_kv = (
        config.num_attention_heads,
        config.num_key_value_heads or config.num_attention_heads,
    )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
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
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    _add_tokenizer(writer, tokenizer, model_dir, config.vocab_size)

    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as fh:
            for hf_name in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if tied and hf_name == "lm_head.weight":
                    continue
                data = fh.get_tensor(hf_name).float().numpy()
                if arch_name == "LLAMA" and hf_name.endswith("q_proj.weight"):
                    data = permute_rotary(data, n_head)
                elif arch_name == "LLAMA" and hf_name.endswith("k_proj.weight"):
                    data = permute_rotary(data, n_kv)
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise SelftuneError(f"GGUF export: no GGUF name for tensor {hf_name}")
                _add_tensor(writer, name, data, kind, gguf, np)
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
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
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
