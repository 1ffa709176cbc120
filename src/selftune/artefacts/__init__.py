"""The workspace's artefact folders — `datasets/<id>/`, `runs/<id>/`, `reports/<id>/` — as typed
handles that know what is inside them.

This package is the one owner of those layouts and the one writer of their record files (the
handles and file names are in `folders.py`; finding, naming and staging folders here): which file
makes a run finished (an adapter or a full model), run.json's one shape for `train` and `distill`,
where its GGUFs are, which report folder holds a report and which only bench results. "The latest"
always means the latest folder that holds the thing asked for, so a half-written or interrupted
folder never hides a finished one. Datasets and reports are written under `<kind>/.staging/<id>/`
and renamed into place when complete (`Artefacts.new_dataset`, `new_report`), so a build or an
eval killed half-way leaves nothing that reads as finished. Ids are UTC timestamps and sort by
creation time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from selftune.artefacts.folders import (
    BENCH_JSON,
    BLIND_PAIRS,
    BLIND_RESULTS,
    REPORT_HTML,
    REPORT_JSON,
    RUN_CHECKPOINTS,
    RUN_INFO,
    RUN_KEYS,
    RUN_METRICS,
    RUN_PHASES,
    RUN_SETTINGS,
    STAGING,
    TRAINED_KEYS,
    DatasetDir,
    ReportDir,
    RunDir,
    RunKind,
    read_split,
)
from selftune.errors import SelftuneError

__all__ = [
    "BENCH_JSON", "BLIND_PAIRS", "BLIND_RESULTS", "KINDS", "REPORT_HTML", "REPORT_JSON",
    "RUN_CHECKPOINTS", "RUN_INFO", "RUN_KEYS", "RUN_METRICS", "RUN_PHASES", "RUN_SETTINGS",
    "STAGING", "TRAINED_KEYS", "Artefacts", "DatasetDir", "Kind", "ReportDir", "RunDir",
    "RunKind", "Staged", "read_split",
]  # fmt: skip

Kind = Literal["datasets", "runs", "reports"]
KINDS: tuple[Kind, ...] = ("datasets", "runs", "reports")
NEXT_STEP = {"datasets": "selftune build", "runs": "selftune train", "reports": "selftune eval"}


class Staged:
    """A new artefact folder written under `<kind>/.staging/<id>/` and renamed to `<kind>/<id>/`
    by `commit()`; as a context manager it yields the staging path, commits on success and
    removes the folder when the block raises. Its id is the final one from the start."""

    def __init__(self, final: Path):
        self.final = final
        self.path = final.parent / STAGING / final.name
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.mkdir(mode=0o700)  # it will hold the owner's messages or what was made of them

    @property
    def id(self) -> str:
        return self.final.name

    def commit(self) -> Path:
        os.replace(self.path, self.final)
        self._tidy()
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._tidy()

    def _tidy(self) -> None:
        """Remove .staging/ when nothing else is being written there."""
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()

    def __enter__(self) -> Path:
        return self.path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


HANDLES = {"datasets": DatasetDir, "runs": RunDir, "reports": ReportDir}


def _usable(kind: Kind, path: Path) -> bool:
    if kind == "datasets":
        return DatasetDir(path).complete
    if kind == "runs":
        return RunDir(path).finished
    return ReportDir(path).has_report


@dataclass(frozen=True)
class Artefacts:
    """The artefact folders under a workspace root."""

    root: Path

    def folder(self, kind: Kind) -> Path:
        return self.root / kind

    @property
    def datasets_dir(self) -> Path:
        return self.folder("datasets")

    @property
    def runs_dir(self) -> Path:
        return self.folder("runs")

    @property
    def reports_dir(self) -> Path:
        return self.folder("reports")

    def entries(self, kind: Kind, usable_only: bool = True) -> list[Path]:
        """Folders of `kind`, oldest first; by default only those holding what they should.
        Folders still being written (`.staging/`) are never among them."""
        folder = self.folder(kind)
        found = (
            sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            if folder.exists()
            else []
        )
        return [p for p in found if _usable(kind, p)] if usable_only else found

    def latest(self, kind: Kind, usable_only: bool = True) -> Path:
        """The newest folder of `kind` that holds a dataset, a finished run or a report."""
        entries = self.entries(kind, usable_only)
        if not entries:
            what = {"datasets": "dataset", "runs": "finished run", "reports": "report"}[kind]
            raise SelftuneError(
                f"no {what} in {self.folder(kind)} yet; run `{NEXT_STEP[kind]}` first"
            )
        return entries[-1]

    def resolve(self, kind: Kind, ref: str | None, usable_only: bool = True) -> Path:
        """An artefact folder by id (or path), or the latest usable one when `ref` is None."""
        if ref is None:
            return self.latest(kind, usable_only)
        for candidate in (self.folder(kind) / ref, Path(ref)):
            if candidate.is_dir():
                return candidate
        raise SelftuneError(f"no {kind[:-1]} {ref!r} in {self.folder(kind)}")

    def dataset(self, ref: str | None = None) -> DatasetDir:
        return DatasetDir(self.resolve("datasets", ref))

    def run(self, ref: str | None = None) -> RunDir:
        """A finished run by id, or the newest finished one (never one still training)."""
        return RunDir(self.resolve("runs", ref)).require_finished()

    def run_folder(self, ref: str | None = None) -> RunDir:
        """A run by id, finished or not (to resume it), or the newest folder when `ref` is None."""
        return RunDir(self.resolve("runs", ref, usable_only=False))

    def report(self, ref: str | None = None) -> ReportDir:
        return ReportDir(self.resolve("reports", ref))

    def runs(self) -> list[RunDir]:
        """Every finished run, oldest first."""
        return [RunDir(p) for p in self.entries("runs")]

    def run_folders(self) -> list[RunDir]:
        """Every run folder, finished or not, oldest first."""
        return [RunDir(p) for p in self.entries("runs", usable_only=False)]

    def dataset_folders(self, staging: bool = False) -> list[DatasetDir]:
        """Every dataset folder, oldest first; with `staging`, also those still being written
        or left by a build killed half-way (`.staging/<id>`)."""
        found = [DatasetDir(p) for p in self.entries("datasets", usable_only=False)]
        held = self.datasets_dir / STAGING
        if staging and held.is_dir():
            found += [DatasetDir(p) for p in sorted(held.iterdir()) if p.is_dir()]
        return found

    def blind_pairs(
        self, report: str | None = None
    ) -> tuple[ReportDir, list[dict[str, Any]]] | None:
        """The newest report's blind pairs (or report `report`'s), or None when there are none."""
        folders = [ReportDir(p) for p in self.entries("reports", usable_only=False)]
        folders = [r for r in folders if r.blind_pairs_path.exists()]
        if report is not None:
            folders = [r for r in folders if r.id == report]
        if not folders:
            return None
        pairs = folders[-1].blind_pairs()
        return (folders[-1], pairs) if pairs else None

    def dataset_of(self, run: RunDir) -> DatasetDir:
        """The dataset a run was trained on (by path when it still exists, else by id)."""
        info = run.info()
        path = Path(info["dataset_path"]) if info.get("dataset_path") else None
        if path is not None and path.is_dir():
            return DatasetDir(path)
        return self.dataset(info.get("dataset"))

    def _fresh(self, kind: Kind) -> Path:
        """A time-ordered name under datasets/, runs/ or reports/ that nothing uses yet."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = self.folder(kind)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path, n = folder / stamp, 1
        while path.exists() or (folder / STAGING / path.name).exists():
            n += 1
            path = folder / f"{stamp}-{n}"
        return path

    def new_run(self) -> RunDir:
        """A fresh run folder, written in place: a run is finished once run.json and its weights
        are there (see `RunDir.finished`), and an interrupted one is resumed where it is."""
        path = self._fresh("runs")
        path.mkdir(mode=0o700)  # it will hold a model of the owner's messages
        return RunDir(path)

    def new_dataset(self) -> Staged:
        """A dataset folder to write (`with ... as folder:`), renamed into datasets/ when done."""
        return Staged(self._fresh("datasets"))

    def new_report(self) -> Staged:
        """A report folder to write (`with ... as folder:`), renamed into reports/ when done."""
        return Staged(self._fresh("reports"))
