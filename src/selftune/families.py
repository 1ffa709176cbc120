"""What each open base family needs to leave transformers for llama.cpp: its GGUF architecture,
how its weights differ from llama.cpp's layout, and the keys and tensors llama.cpp reads.

One entry per Hugging Face architecture, following llama.cpp's own `convert_hf_to_gguf.py`
(tensor names come from the `gguf` package's map, so only the differences live here): Llama's
q/k rows are permuted into llama.cpp's interleaved rotary layout (Llama 3.x and Mistral; the
others use NeoX rotary and keep HF's), Llama 3.1's `llama3` rope scaling becomes a
`rope_freqs` tensor, Gemma stores RMSNorm weights as `w - 1` (llama.cpp wants `w`), and Gemma
and Phi-3 carry soft-capping and sliding-window keys. The GGUF writer and the LoRA GGUF writer
both look a base up here, so a family is added in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selftune.errors import SelftuneError


@dataclass(frozen=True)
class Family:
    name: str  # as people call it
    gguf_arch: str  # a gguf.MODEL_ARCH member
    permute_qk: bool = False  # HF rotary halves -> llama.cpp interleaved pairs (LLAMA arch)
    norm_plus_one: bool = False  # Gemma: HF keeps RMSNorm weights as w - 1
    keys: Callable[[Any, Any], None] | None = None  # extra GGUF keys: keys(writer, config)
    tensors: Callable[[Any], dict[str, Any]] | None = None  # extra tensors {gguf name: array}


def rope_theta(config: Any) -> float:
    """The rotary base of the global-attention layers (transformers 5 and 4 configs alike)."""
    rope = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in rope:  # per layer type (Gemma 3)
        rope = rope["full_attention"]
    return float(rope.get("rope_theta", getattr(config, "rope_theta", None) or 10000.0))


def head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _llama3_rope_freqs(config: Any) -> dict[str, Any]:
    """Llama 3.1's `llama3` rope scaling as llama.cpp's per-frequency factors (its converter's
    arithmetic), or nothing for plain rope."""
    import numpy as np

    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type")) != "llama3":
        return {}
    dim = head_dim(config)
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * rope_theta(config) ** (i / dim)
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return {"rope_freqs.weight": np.array(factors, dtype=np.float32)}


def _sliding_window(writer: Any, config: Any) -> None:
    writer.add_sliding_window(int(getattr(config, "sliding_window", None) or 0))


def _gemma2_keys(writer: Any, config: Any) -> None:
    writer.add_attn_logit_softcapping(float(config.attn_logit_softcapping or 0.0))
    writer.add_final_logit_softcapping(float(config.final_logit_softcapping or 0.0))
    _sliding_window(writer, config)


def _gemma3_keys(writer: Any, config: Any) -> None:
    if getattr(config, "final_logit_softcapping", None):
        writer.add_final_logit_softcapping(float(config.final_logit_softcapping))
    _sliding_window(writer, config)


def _phi3_keys(writer: Any, config: Any) -> None:
    rotary = float(getattr(config, "partial_rotary_factor", None) or 1.0)
    rope = getattr(config, "rope_parameters", None) or {}
    rotary = float(rope.get("partial_rotary_factor", rotary))
    writer.add_rope_dimension_count(int(head_dim(config) * rotary))
    _sliding_window(writer, config)


FAMILIES: dict[str, Family] = {
    "LlamaForCausalLM": Family("Llama 3.x", "LLAMA", permute_qk=True, tensors=_llama3_rope_freqs),
    "MistralForCausalLM": Family("Mistral", "LLAMA", permute_qk=True),
    "Qwen2ForCausalLM": Family("Qwen2.5", "QWEN2"),
    "Qwen3ForCausalLM": Family("Qwen3", "QWEN3"),
    "Phi3ForCausalLM": Family("Phi-3 / Phi-4", "PHI3", keys=_phi3_keys),
    "Gemma2ForCausalLM": Family("Gemma 2", "GEMMA2", norm_plus_one=True, keys=_gemma2_keys),
    "Gemma3ForCausalLM": Family("Gemma 3", "GEMMA3", norm_plus_one=True, keys=_gemma3_keys),
}


def family_of(config: Any, what: str = "GGUF export") -> Family:
    """The family of a transformers config; a clear error when llama.cpp export lacks it."""
    arch = (getattr(config, "architectures", None) or [""])[0]
    found = FAMILIES.get(arch)
    if found is None:
        known = ", ".join(f"{f.name} ({a})" for a, f in FAMILIES.items())
        raise SelftuneError(
            f"{what} supports {known}; this base is {arch or 'of no named architecture'}. "
            "Export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py"
        )
    return found


def gguf_arch(family: Family) -> Any:
    import gguf

    return getattr(gguf.MODEL_ARCH, family.gguf_arch)


def hf_to_gguf_tensor(family: Family, config: Any, hf_name: str, data: Any) -> Any:
    """A base weight as llama.cpp wants it (permuted, norm offset) — `data` a numpy array."""
    if family.permute_qk and hf_name.endswith("q_proj.weight"):
        return permute(data, config.num_attention_heads)
    if family.permute_qk and hf_name.endswith("k_proj.weight"):
        return permute(data, config.num_key_value_heads or config.num_attention_heads)
    if family.norm_plus_one and hf_name.endswith("norm.weight"):
        return data + 1
    return data


def lora_b_to_gguf(family: Family, config: Any, hf_name: str, data: Any) -> Any:
    """A LoRA B matrix as llama.cpp adds it to the converted weight (rows permuted like it)."""
    if family.permute_qk and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
        return hf_to_gguf_tensor(family, config, hf_name, data)
    return data


def permute(weights: Any, n_head: int) -> Any:
    """HF's rotary layout (halves) to llama.cpp's (interleaved pairs), per head (as convert_hf_to_gguf)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )
