"""A twin workspace: a folder with twin.yaml, store.sqlite, datasets/, runs/ and reports/.

Like a git repository, commands find it from the current directory (or its parents) unless
`--workspace DIR` says where it is. A workspace holds someone's messages, so it is private: the
folders are created 0700 and the files 0600, and a twin.yaml that anyone else could have put or
changed (a folder or file writable by every user, or owned by another user) is refused when found
by searching, since it would receive the owner's imports and choose where their data goes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from selftune.artefacts import KINDS, Artefacts
from selftune.config import TwinConfig, load_config, render_yaml
from selftune.errors import SelftuneError
from selftune.store import Store

CONFIG_NAME = "twin.yaml"
STORE_NAME = "store.sqlite"
ARTEFACT_DIRS = KINDS


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@dataclass
class Workspace:
    root: Path
    config: TwinConfig
    found: Literal["explicit", "here", "parent"] = "explicit"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def store_path(self) -> Path:
        return self.root / STORE_NAME

    def open_store(self) -> Store:
        return Store(self.store_path)

    @property
    def artefacts(self) -> Artefacts:
        """The datasets/, runs/ and reports/ folders: finding, reading and writing them."""
        return Artefacts(self.root)

    @property
    def datasets_dir(self) -> Path:
        return self.artefacts.datasets_dir

    @property
    def runs_dir(self) -> Path:
        return self.artefacts.runs_dir

    @property
    def reports_dir(self) -> Path:
        return self.artefacts.reports_dir


def init_workspace(root: Path, me: list[str], name: str | None = None) -> Workspace:
    """Create a workspace (or refresh a missing part of one); never overwrites an existing
    twin.yaml. What it creates is readable by the owner only."""
    if not root.exists():
        root.mkdir(parents=True, mode=PRIVATE_DIR)
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
        write_private(config_path, render_yaml(config))
    artefacts = Artefacts(root)
    for kind in ARTEFACT_DIRS:
        artefacts.folder(kind).mkdir(exist_ok=True, mode=PRIVATE_DIR)
    Store(root / STORE_NAME).close()
    for path in (config_path, root / STORE_NAME):
        path.chmod(PRIVATE_FILE)
    for kind in ARTEFACT_DIRS:
        artefacts.folder(kind).chmod(PRIVATE_DIR)
    return Workspace(root, config)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (created 0600, never briefly wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    path.chmod(PRIVATE_FILE)


def untrusted_reason(root: Path) -> str | None:
    """Why a found twin.yaml might have been planted by someone else, or None if it is safe:
    its folder or the file is writable by everyone (like /tmp), or another user owns it. (A
    group-writable folder is common under a umask of 002, with a group of one.)"""
    uid = os.getuid() if hasattr(os, "getuid") else None
    for path, what in ((root, "folder"), (root / CONFIG_NAME, "file")):
        info = path.stat()
        if info.st_mode & stat.S_IWOTH:
            return f"the {what} {path} is writable by every user"
        if uid is not None and info.st_uid != uid:
            return f"the {what} {path} belongs to another user"
    return None


def find_workspace(explicit: str | Path | None = None) -> Workspace:
    """The workspace named by `explicit`, $SELFTUNE_WORKSPACE, or the cwd and its parents.
    A workspace found by searching must be the owner's own (see `untrusted_reason`)."""
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
            reason = untrusted_reason(candidate)
            if reason is not None:
                raise SelftuneError(
                    f"refusing the workspace found at {candidate}: {reason}, so its "
                    f"{CONFIG_NAME} may not be yours. Run `selftune init DIR` in a folder of "
                    "your own, or name a workspace you trust with --workspace DIR"
                )
            found = "here" if candidate == here else "parent"
            return Workspace(candidate, load_config(candidate / CONFIG_NAME), found)
    raise SelftuneError(
        "not inside a selftune workspace; run `selftune init DIR` and cd there, or pass --workspace DIR"
    )
