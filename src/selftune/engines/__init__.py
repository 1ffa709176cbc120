"""Engines that run the twin: transformers (any device, adapter applied or merged) and llama.cpp
(an exported GGUF, fast on a CPU), behind one interface (`selftune.engines.base.Engine`).

Models are named the way the API and the CLI name them: `twin` (the latest trained run, or the
base when nothing is trained yet), `base`, and each run by its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from selftune.engines.base import Engine, GenRequest, GenResult, StopScanner, render_chat
from selftune.errors import SelftuneError

EngineKind = Literal["auto", "transformers", "llamacpp"]
GGUF_PREFERENCE = ("q8_0", "f16", "bf16", "f32")

__all__ = [
    "Engine",
    "GenRequest",
    "GenResult",
    "ModelSpec",
    "StopScanner",
    "find_gguf",
    "model_catalog",
    "open_engine",
    "render_chat",
]


@dataclass(frozen=True)
class ModelSpec:
    """A model the twin can serve: the base, or a trained run (adapter on the base)."""

    name: str
    base: str
    run_dir: Path | None = None

    @property
    def created(self) -> int:
        return int(self.run_dir.stat().st_mtime) if self.run_dir else 0


def model_catalog(runs_dir: Path | None, base: str) -> dict[str, ModelSpec]:
    """`twin` (the latest finished run, adapter or full fine-tune, else the base), `base`, and
    every finished run (each on the base it was trained from)."""
    from selftune.artefacts import Artefacts

    runs = Artefacts(runs_dir.parent).runs() if runs_dir is not None else []
    specs = [ModelSpec(run.id, run.base, run.path) for run in runs]
    twin = (
        ModelSpec("twin", specs[-1].base, specs[-1].run_dir) if specs else ModelSpec("twin", base)
    )
    catalog = {"twin": twin, "base": ModelSpec("base", base)}
    for spec in specs:
        catalog[spec.name] = spec
    return catalog


def find_gguf(spec: ModelSpec) -> Path | None:
    """The GGUF for a model: a run's `export/*.gguf`, or the embedded base's own file."""
    if spec.run_dir is not None:
        files = sorted((spec.run_dir / "export").glob("*.gguf"))
        for kind in GGUF_PREFERENCE:
            for f in files:
                if kind in f.name.lower():
                    return f
        return files[0] if files else None
    from selftune.models import EMBEDDED_NAMES, embedded_gguf_path

    if spec.base in EMBEDDED_NAMES:
        try:
            return embedded_gguf_path()
        except SelftuneError:
            return None
    path = Path(spec.base)
    if path.suffix == ".gguf" and path.exists():
        return path
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    return found[0] if found else None


def choose_engine(spec: ModelSpec, kind: EngineKind) -> str:
    """`auto`: llama.cpp when a GGUF for the model exists and llama-cpp-python imports."""
    from selftune.engines import llamacpp_engine

    if kind != "auto":
        return kind
    return "llamacpp" if find_gguf(spec) and llamacpp_engine.available() else "transformers"


def open_engine(spec: ModelSpec, kind: EngineKind = "auto", merge: bool = True) -> Any:
    """Load `spec` on the chosen engine."""
    from selftune.models import load_tokenizer

    chosen = choose_engine(spec, kind)
    if chosen == "llamacpp":
        from selftune.engines.llamacpp_engine import LlamaCppEngine

        gguf = find_gguf(spec)
        if gguf is None:
            where = spec.run_dir / "export" if spec.run_dir else spec.base
            raise SelftuneError(
                f"no GGUF for model {spec.name!r} in {where}; run `selftune export` or use "
                "--engine transformers"
            )
        return LlamaCppEngine(gguf, load_tokenizer(spec.base), spec.name)
    from selftune.engines.transformers_engine import TransformersEngine

    if spec.run_dir is not None:
        return TransformersEngine.from_run(spec.run_dir, spec.name, merge=merge)
    return TransformersEngine.from_base(spec.base, spec.name)
