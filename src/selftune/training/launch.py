"""`run_train`: the training stage's one entry point (the CLI, the demo, benchmarks and tests call
it). It picks the run folder (shared by every rank under `accelerate launch`), applies the preset
and overrides, records settings.json for `--resume`, and trains."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.artefacts import RUN_SETTINGS
from selftune.config import TrainConfig, apply_overrides
from selftune.errors import SelftuneError
from selftune.workspace import Workspace

SETTINGS_FILE = RUN_SETTINGS


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def shared_run_dir(ws: Workspace, resume_id: str | None, resume: bool) -> Path:
    """The run folder; under `accelerate launch` rank 0 makes it and tells the other ranks."""
    if resume:
        return ws.resolve("runs", resume_id, usable_only=False)
    if not _distributed():
        return ws.new_artefact_dir("runs")
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not torch.cuda.is_available())  # joins the process group
    names = [ws.new_artefact_dir("runs").name if state.is_main_process else None]
    broadcast_object_list(names)
    return ws.runs_dir / str(names[0])


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run_train(
    ws: Workspace,
    dataset: str | None = None,
    preset: str | None = None,
    resume_id: str | None = None,
    overrides: dict[str, Any] | None = None,
    echo: Callable[[str], Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Train on a dataset (the latest by default) into a new run folder, or continue the run
    `resume_id` ("latest" for the newest) from its newest checkpoint; returns (summary, run dir).

    Settings: `train:` of twin.yaml, then the preset for what it leaves unset, then `overrides`
    (None values are ignored). A resumed run keeps the settings it was started with.
    """
    from selftune.training.presets import apply_preset
    from selftune.training.trainer import train

    config = ws.config.train
    resume = resume_id is not None
    run_dir = shared_run_dir(ws, None if resume_id == "latest" else resume_id, resume)
    if resume:
        saved = run_dir / SETTINGS_FILE
        if not saved.exists():
            raise SelftuneError(f"{run_dir} was not started by `selftune train`; nothing to resume")
        info = json.loads(saved.read_text())
        config = TrainConfig.model_validate(info["settings"])
        dataset = info["dataset"]
        apply_overrides(config, overrides or {})
    else:
        filled = apply_preset(config, preset or config.preset)
        overrides = overrides or {}
        apply_overrides(config, overrides)
        if "minutes" in filled and (overrides.get("epochs") or overrides.get("max_steps")):
            config.minutes = None  # --epochs / --max-steps win over the preset's time plan
    dataset_dir = ws.resolve("datasets", dataset)
    if is_main_process():
        (run_dir / SETTINGS_FILE).write_text(
            json.dumps({"dataset": dataset_dir.name, "settings": config.model_dump()}, indent=2)
        )
        if echo is not None:
            verb = "Resuming" if resume else "Training"
            echo(f"{verb} {config.method} on {dataset_dir.name} → {run_dir}")
    return train(dataset_dir, run_dir, config, resume=resume), run_dir
