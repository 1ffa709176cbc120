"""A twin workspace: a folder with twin.yaml, store.sqlite, datasets/, runs/ and reports/.

Like a git repository, commands find it from the current directory (or its parents) unless
`--workspace DIR` says where it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from selftune.artefacts import KINDS, Artefacts, Kind
from selftune.config import TwinConfig, load_config, render_yaml
from selftune.errors import SelftuneError
from selftune.store import Store

CONFIG_NAME = "twin.yaml"
STORE_NAME = "store.sqlite"
ARTEFACT_DIRS = KINDS


@dataclass
class Workspace:
    root: Path
    config: TwinConfig

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def store_path(self) -> Path:
        return self.root / STORE_NAME

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def open_store(self) -> Store:
        return Store(self.store_path)

    @property
    def artefacts(self) -> Artefacts:
        return Artefacts(self.root)

    def latest(self, kind: Kind, usable_only: bool = True) -> Path:
        """The newest dataset, finished run or report (see `selftune.artefacts`)."""
        return self.artefacts.latest(kind, usable_only)

    def resolve(self, kind: Kind, ref: str | None, usable_only: bool = True) -> Path:
        """An artefact folder by id (or path), or the latest usable one when `ref` is None."""
        return self.artefacts.resolve(kind, ref, usable_only)

    def new_artefact_dir(self, kind: Kind) -> Path:
        """A fresh, time-ordered folder under datasets/, runs/ or reports/."""
        return self.artefacts.new(kind)


def init_workspace(root: Path, me: list[str], name: str | None = None) -> Workspace:
    """Create a workspace (or refresh a missing part of one); never overwrites an existing twin.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / CONFIG_NAME
    if config_path.exists():
        config = load_config(config_path)
        new_names = [m for m in me if m not in config.me]
        if new_names:
            raise SelftuneError(
                f"{config_path} already exists; add {', '.join(new_names)} under `me:` there"
            )
    else:
        config = TwinConfig(me=me, name=name or root.resolve().name or "twin")
        config_path.write_text(render_yaml(config), encoding="utf-8")
    for d in ARTEFACT_DIRS:
        (root / d).mkdir(exist_ok=True)
    Store(root / STORE_NAME).close()
    return Workspace(root, config)


def find_workspace(explicit: str | Path | None = None) -> Workspace:
    """The workspace named by `explicit`, $SELFTUNE_WORKSPACE, or the cwd and its parents."""
    explicit = explicit or os.environ.get("SELFTUNE_WORKSPACE")
    if explicit:
        root = Path(explicit)
        if not (root / CONFIG_NAME).exists():
            raise SelftuneError(
                f"{root} is not a selftune workspace (no {CONFIG_NAME}); create it with `selftune init {root}`"
            )
        return Workspace(root, load_config(root / CONFIG_NAME))
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).exists():
            return Workspace(candidate, load_config(candidate / CONFIG_NAME))
    raise SelftuneError(
        "not inside a selftune workspace; run `selftune init DIR` and cd there, or pass --workspace DIR"
    )
