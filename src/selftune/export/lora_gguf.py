"""A run's LoRA adapter as a GGUF adapter file (`selftune export --format lora-gguf`).

The format is llama.cpp's own (what its convert_lora_to_gguf.py writes): `general.type =
adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and for each adapted weight a pair
`<gguf name>.lora_a` / `.lora_b`. The base keeps its GGUF; llama.cpp applies the adapter at load
time (`llama-server --lora`, `llama_adapter_lora_init`) and Ollama with `ADAPTER`. Rows of the
q/k adapters' B matrices are permuted like the base weights they add to (Llama's rotary layout).
"""

from __future__ import annotations

import json
from pathlib import Path

from selftune.artefacts import RunDir
from selftune.errors import SelftuneError


def write_lora_gguf(run_dir: Path, path: Path) -> Path:
    """Write `run_dir`'s adapter as a float16 GGUF LoRA adapter at `path`."""
    import gguf
    import numpy as np
    from safetensors import safe_open
    from transformers import AutoConfig

    from selftune.models import resolve_base

    run = RunDir(run_dir).require_finished()
    if run.weights == "full":
        raise SelftuneError(f"{run_dir} is a full fine-tune, not an adapter; export f16 or q8_0")
    adapter_dir = Path(run.adapter_dir)
    settings = json.loads((adapter_dir / "adapter_config.json").read_text())
    if settings.get("use_dora"):
        raise SelftuneError("llama.cpp has no DoRA adapters; export merged GGUF (q8_0) instead")
    if settings.get("modules_to_save"):
        raise SelftuneError(
            f"the adapter also trains whole modules ({settings['modules_to_save']}), which a "
            "LoRA GGUF cannot hold; export merged GGUF (q8_0) instead"
        )
    from selftune.families import family_of, gguf_arch, lora_b_to_gguf

    config = AutoConfig.from_pretrained(resolve_base(run.base))
    family = family_of(config, "LoRA GGUF export")
    arch = gguf_arch(family)
    rank = int(settings["r"])
    alpha = float(settings["lora_alpha"])
    if settings.get("use_rslora"):
        alpha *= rank**0.5  # llama.cpp scales by alpha / rank; rsLoRA by alpha / sqrt(rank)

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(f"{run_dir.name} (selftune LoRA)")
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    count = 0
    with safe_open(adapter_dir / "adapter_model.safetensors", framework="pt") as fh:
        for key in sorted(fh.keys()):  # noqa: SIM118 (safe_open has no __iter__)
            if ".lora_A." not in key and ".lora_B." not in key:
                raise SelftuneError(f"LoRA GGUF export: unexpected tensor {key} in the adapter")
            part = "lora_a" if ".lora_A." in key else "lora_b"
            hf_name = key.replace("base_model.model.", "", 1)
            hf_name = hf_name.replace(".lora_A.weight", ".weight").replace(
                ".lora_B.weight", ".weight"
            )
            data = fh.get_tensor(key).float().numpy()
            if part == "lora_b":
                data = lora_b_to_gguf(family, config, hf_name, data)
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise SelftuneError(f"LoRA GGUF export: no GGUF name for {hf_name}")
            writer.add_tensor(f"{name}.{part}", data.astype(np.float16))
            count += 1
    if count == 0:
        raise SelftuneError(f"{adapter_dir} holds no LoRA tensors")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
