"""Export a training run for other engines: PEFT adapter and merged safetensors (`merged.py`),
GGUF (`model_gguf.py`), the adapter alone as a llama.cpp LoRA GGUF (`lora_gguf.py`), Ollama
Modelfile (`modelfile.py`).

`selftune export` and the engine selection (which writes a run's GGUF the first time it is
served) both call `export_run`. Nothing exported is a pickle: the adapter's training_args.bin
stays behind.
"""

from __future__ import annotations

from pathlib import Path

from selftune.artefacts import RunDir
from selftune.export.merged import EMBEDDED_HUB_ID, export_adapter, merge_run, public_base
from selftune.export.model_gguf import GGUF_TYPES, write_gguf
from selftune.export.modelfile import MODELFILE_PREFERENCE, modelfile, stop_strings

LORA_GGUF = "lora-f16.gguf"  # the adapter alone, applied by llama.cpp on the base's GGUF

__all__ = [
    "EMBEDDED_HUB_ID",
    "GGUF_TYPES",
    "LORA_GGUF",
    "export_run",
    "modelfile",
    "stop_strings",
    "write_gguf",
]


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
        from selftune.export.lora_gguf import write_lora_gguf

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
    run = RunDir(run_dir)
    return str(run.info().get("base", "")) if run.info_path.exists() else ""
