"""A twin workspace: a folder with twin.yaml, store.sqlite, datasets/, runs/ and reports/.

Like a git repository, commands find it from the current directory (or its parents) unless
`--workspace DIR` says where it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from selftune.config import TwinConfig, load_config, render_yaml
from selftune.errors import SelftuneError
from selftune.store import Store

CONFIG_NAME = "twin.yaml"
STORE_NAME = "store.sqlite"
ARTEFACT_DIRS = ("datasets", "runs", "reports")


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

    def latest(self, kind: str) -> Path:
        """The newest datasets/, runs/ or reports/ entry (ids sort by creation time)."""
        folder = self.root / kind
        entries = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
        if not entries:
            hint = {
                "datasets": "selftune build",
                "runs": "selftune train",
                "reports": "selftune eval",
            }
            raise SelftuneError(f"no {kind} in {self.root} yet; run `{hint.get(kind, kind)}` first")
        return entries[-1]

    def resolve(self, kind: str, ref: str | None) -> Path:
        """An artefact folder by id (or path), or the latest one when `ref` is None."""
        if ref is None:
            return self.latest(kind)
        for candidate in (Path(ref), self.root / kind / ref):
            if candidate.is_dir():
                return candidate
        raise SelftuneError(f"no {kind[:-1]} {ref!r} in {self.root / kind}")

    def new_artefact_dir(self, kind: str) -> Path:
        """A fresh, time-ordered folder under datasets/, runs/ or reports/."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        path, n = folder / stamp, 1
        while path.exists():
            n += 1
            path = folder / f"{stamp}-{n}"
        path.mkdir()
        return path


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
