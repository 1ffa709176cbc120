"""Engines that run the twin: transformers (any device, adapter applied or merged), llama.cpp
(a GGUF, fast on a CPU, continuous batching) and an upstream OpenAI-compatible server (vLLM,
llama-server, Ollama), behind one interface (`selftune.engines.base.Engine`); `selection.py` says
which one serves a model and why.

Models are named the way the API and the CLI name them: `twin` (the latest trained run, or the
base when nothing is trained yet), `base`, and each run by its id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from selftune.engines.base import Engine, GenRequest, GenResult, StopScanner, render_chat
from selftune.engines.selection import EngineChoice, choose_engine, find_gguf, prepare

EngineKind = Literal["auto", "transformers", "llamacpp", "openai"]

__all__ = [
    "Engine",
    "EngineChoice",
    "GenRequest",
    "GenResult",
    "ModelSpec",
    "StopScanner",
    "choose_engine",
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


def open_engine(
    spec: ModelSpec,
    kind: str = "auto",
    merge: bool = True,
    serve: Any = None,
    echo: Callable[[str], Any] | None = None,
) -> Any:
    """Load `spec` on the engine `choose_engine` picks (writing its GGUF first if it needs
    one); the engine's `choice` says which and why. `serve` (a ServeConfig) sizes llama.cpp
    and names the upstream of the openai engine."""
    from selftune.models import load_tokenizer

    choice = prepare(spec, choose_engine(spec, kind), echo)
    if choice.kind == "openai":
        from selftune.engines.openai_engine import OpenAIEngine

        engine: Any = OpenAIEngine.from_settings(serve, load_tokenizer(spec.base), spec.name)
    elif choice.kind == "llamacpp":
        from selftune.engines.llamacpp_engine import LlamaCppEngine

        assert choice.gguf is not None
        engine = LlamaCppEngine(
            choice.gguf,
            load_tokenizer(spec.base),
            spec.name,
            slots=getattr(serve, "max_batch", 16),
            threads=getattr(serve, "threads", None),
            lora=choice.lora,
        )
    else:
        from selftune.engines.transformers_engine import TransformersEngine

        if spec.run_dir is not None:
            engine = TransformersEngine.from_run(spec.run_dir, spec.name, merge=merge)
        else:
            engine = TransformersEngine.from_base(spec.base, spec.name)
    engine.choice = choice
    return engine
