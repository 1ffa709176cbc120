"""`run_train`: the training stage's one entry point (the CLI, the demo, benchmarks and tests call
it). It picks the run folder (shared by every rank under `accelerate launch`), applies the preset
and overrides, records settings.json for `--resume`, and trains."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.artefacts import RunDir
from selftune.config import TrainConfig, apply_overrides
from selftune.errors import SelftuneError
from selftune.workspace import Workspace


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def shared_run_dir(ws: Workspace, resume_id: str | None, resume: bool) -> RunDir:
    """The run folder; under `accelerate launch` rank 0 makes it and tells the other ranks."""
    if resume:
        return ws.artefacts.run_folder(resume_id)
    if not _distributed():
        return ws.artefacts.new_run()
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not torch.cuda.is_available())  # joins the process group
    names = [ws.artefacts.new_run().id if state.is_main_process else None]
    broadcast_object_list(names)
    return ws.artefacts.run_folder(str(names[0]))


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
    run = shared_run_dir(ws, None if resume_id == "latest" else resume_id, resume)
    if resume:
        if not run.has_settings:
            raise SelftuneError(
                f"{run.path} was not started by `selftune train`; nothing to resume"
            )
        info = run.settings()
        config = TrainConfig.model_validate(info["settings"])
        dataset = info["dataset"]
        apply_overrides(config, overrides or {})
    else:
        filled = apply_preset(config, preset or config.preset)
        overrides = overrides or {}
        apply_overrides(config, overrides)
        if "minutes" in filled and (overrides.get("epochs") or overrides.get("max_steps")):
            config.minutes = None  # --epochs / --max-steps win over the preset's time plan
    data = ws.artefacts.dataset(dataset)
    if is_main_process():
        run.write_settings({"dataset": data.id, "settings": config.model_dump()})
        if echo is not None:
            verb = "Resuming" if resume else "Training"
            echo(f"{verb} {config.method} on {data.id} → {run.path}")
    return train(data.path, run.path, config, resume=resume, echo=echo), run.path
