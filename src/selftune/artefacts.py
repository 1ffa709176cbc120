"""The workspace's artefact folders — `datasets/<id>/`, `runs/<id>/`, `reports/<id>/` — as typed
handles that know what is inside them.

This module is the one owner of those layouts: which file makes a run finished (an adapter or a
full model), where its GGUFs are, which report folder holds a report and which only bench results.
"The latest" always means the latest folder that holds the thing asked for, so a half-written or
interrupted folder never hides a finished one. Ids are UTC timestamps and sort by creation time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from selftune.errors import SelftuneError

Kind = Literal["datasets", "runs", "reports"]
KINDS: tuple[Kind, ...] = ("datasets", "runs", "reports")
NEXT_STEP = {"datasets": "selftune build", "runs": "selftune train", "reports": "selftune eval"}

RUN_INFO = "run.json"
RUN_SETTINGS = "settings.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
BLIND_PAIRS = "blind_pairs.jsonl"
BENCH_JSON = "bench.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SelftuneError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc


@dataclass(frozen=True)
class DatasetDir:
    """`datasets/<id>/`: train.jsonl, valid.jsonl (+ *.meta.jsonl), dataset.json, card.md."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        return (self.path / "train.jsonl").exists()

    def info(self) -> dict[str, Any]:
        path = self.path / "dataset.json"
        return _read_json(path) if path.exists() else {}

    def read_split(self, split: str) -> list[dict[str, Any]]:
        """Records of train.jsonl or valid.jsonl, each with its meta under '_meta'."""
        path = self.path / f"{split}.jsonl"
        if not path.exists():
            raise SelftuneError(f"{path} is missing; rebuild the dataset with `selftune build`")
        meta_path = self.path / f"{split}.meta.jsonl"
        metas = meta_path.read_text(encoding="utf-8").splitlines() if meta_path.exists() else []
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SelftuneError(f"{path}:{i + 1}: not valid JSON ({exc.msg})") from exc
            if "messages" not in record and "text" not in record:
                raise SelftuneError(f"{path}:{i + 1}: expected a 'messages' or a 'text' field")
            record["_meta"] = json.loads(metas[i]) if i < len(metas) else {}
            out.append(record)
        return out


def read_split(folder: Path, split: str) -> list[dict[str, Any]]:
    """Records of `folder`'s train.jsonl or valid.jsonl (see `DatasetDir.read_split`)."""
    return DatasetDir(folder).read_split(split)


@dataclass(frozen=True)
class RunDir:
    """`runs/<id>/`: run.json (what made it), adapter/ (LoRA) or model/ (full fine-tune),
    settings.json (for --resume), metrics.jsonl, checkpoints/, export/ (GGUF, Modelfile)."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    @property
    def weights(self) -> Literal["adapter", "full"] | None:
        """What the run trained: a LoRA adapter, a full model, or (unfinished) nothing yet."""
        if (self.adapter_dir / "adapter_config.json").exists():
            return "adapter"
        if (self.model_dir / "config.json").exists():
            return "full"
        return None

    @property
    def finished(self) -> bool:
        return self.weights is not None and (self.path / RUN_INFO).exists()

    def info(self) -> dict[str, Any]:
        path = self.path / RUN_INFO
        if not path.exists():
            raise SelftuneError(
                f"{self.path} holds no finished run ({RUN_INFO} is missing); it may still be "
                f"training or was interrupted: `selftune train --resume {self.id}`"
            )
        return _read_json(path)

    def require_finished(self) -> RunDir:
        if not self.finished:
            raise SelftuneError(
                f"{self.path} holds no finished adapter or model; it may still be training or was "
                f"interrupted: `selftune train --resume {self.id}`, or pick another with --run"
            )
        return self

    @property
    def base(self) -> str:
        return str(self.info()["base"])

    def ggufs(self) -> list[Path]:
        return sorted(self.export_dir.glob("*.gguf")) if self.export_dir.exists() else []


@dataclass(frozen=True)
class ReportDir:
    """`reports/<id>/`: report.json, report.html, blind_pairs.jsonl, and bench.json when
    `selftune bench` ran against it."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def has_report(self) -> bool:
        return (self.path / REPORT_JSON).exists()

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_JSON

    @property
    def html_path(self) -> Path:
        return self.path / REPORT_HTML

    @property
    def blind_pairs_path(self) -> Path:
        return self.path / BLIND_PAIRS

    @property
    def bench_path(self) -> Path:
        return self.path / BENCH_JSON

    def report(self) -> dict[str, Any]:
        if not self.has_report:
            raise SelftuneError(f"{self.path} holds no {REPORT_JSON}; run `selftune eval`")
        return _read_json(self.report_path)


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

    def entries(self, kind: Kind, usable_only: bool = True) -> list[Path]:
        """Folders of `kind`, oldest first; by default only those holding what they should."""
        folder = self.folder(kind)
        found = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
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

    def report(self, ref: str | None = None) -> ReportDir:
        return ReportDir(self.resolve("reports", ref))

    def runs(self) -> list[RunDir]:
        """Every finished run, oldest first."""
        return [RunDir(p) for p in self.entries("runs")]

    def dataset_of(self, run: RunDir) -> DatasetDir:
        """The dataset a run was trained on (by path when it still exists, else by id)."""
        info = run.info()
        path = Path(info["dataset_path"]) if info.get("dataset_path") else None
        if path is not None and path.is_dir():
            return DatasetDir(path)
        return self.dataset(info.get("dataset"))

    def new(self, kind: Kind) -> Path:
        """A fresh, time-ordered folder under datasets/, runs/ or reports/."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = self.folder(kind)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path, n = folder / stamp, 1
        while path.exists():
            n += 1
            path = folder / f"{stamp}-{n}"
        path.mkdir(mode=0o700)  # it will hold the owner's messages or a model of them
        return path
