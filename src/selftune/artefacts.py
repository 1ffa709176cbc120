"""The workspace's artefact folders — `datasets/<id>/`, `runs/<id>/`, `reports/<id>/` — as typed
handles that know what is inside them.

This module is the one owner of those layouts and the one writer of their record files: which file
makes a run finished (an adapter or a full model), run.json's one shape for `train` and `distill`,
where its GGUFs are, which report folder holds a report and which only bench results. "The latest"
always means the latest folder that holds the thing asked for, so a half-written or interrupted
folder never hides a finished one. Datasets and reports are written under `<kind>/.staging/<id>/`
and renamed into place when complete (`Artefacts.new_dataset`, `new_report`), so a build or an
eval killed half-way leaves nothing that reads as finished. Ids are UTC timestamps and sort by
creation time.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from selftune.errors import SelftuneError

Kind = Literal["datasets", "runs", "reports"]
KINDS: tuple[Kind, ...] = ("datasets", "runs", "reports")
NEXT_STEP = {"datasets": "selftune build", "runs": "selftune train", "reports": "selftune eval"}

RUN_INFO = "run.json"
RUN_SETTINGS = "settings.json"
RUN_METRICS = "metrics.jsonl"
RUN_CHECKPOINTS = "checkpoints"
RUN_PHASES = "phases"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
BLIND_PAIRS = "blind_pairs.jsonl"
BLIND_RESULTS = "blind_results.jsonl"  # one {"pair": i, "correct": bool} per guess
BENCH_JSON = "bench.json"
STAGING = ".staging"  # <kind>/.staging/<id>/: a folder still being written

RunKind = Literal["train", "distill"]
# run.json's one shape, for `train` and `distill` alike: what made the run, then what the
# trainer measured (`training.fit`'s summary; for a distill, of its SFT phase, with steps and
# loss over every phase), then `distill` (None for `train`; the picks, phases and method).
RUN_KEYS = (
    "id", "kind", "parent", "base", "dataset", "dataset_path", "settings", "method",
    "precision", "device", "processes", "steps", "epochs", "train_examples", "valid_examples",
    "train_rows", "packing_efficiency", "train_loss", "valid_loss", "last_valid_loss",
    "evaluations", "best_valid_loss", "best_checkpoint", "best_step", "interrupted", "stopped_by",
    "plan", "seconds", "train_seconds", "trained_tokens", "tokens_per_second", "distill",
    "selftune_version",
)  # fmt: skip
TRAINED_KEYS = tuple(
    k for k in RUN_KEYS
    if k not in ("id", "kind", "parent", "dataset", "dataset_path", "distill", "selftune_version")
)  # fmt: skip


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SelftuneError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc


def _write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON, whole or not at all (a temporary file renamed over `path`)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


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
    def info_path(self) -> Path:
        return self.path / RUN_INFO

    @property
    def settings_path(self) -> Path:
        return self.path / RUN_SETTINGS

    @property
    def metrics_path(self) -> Path:
        return self.path / RUN_METRICS

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / RUN_CHECKPOINTS

    def phase_dir(self, phase: str) -> Path:
        """`phases/<phase>/` of a distill run (its own checkpoints/, metrics.jsonl, adapter/)."""
        return self.path / RUN_PHASES / phase

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

    def record(
        self,
        kind: RunKind,
        dataset: DatasetDir,
        trained: dict[str, Any],
        parent: str | None = None,
        distill: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """run.json's content in its one shape: `trained` holds `TRAINED_KEYS` (what
        `training.fit` measured, with base, settings and method)."""
        from selftune import __version__

        missing = [k for k in TRAINED_KEYS if k not in trained]
        assert not missing, f"a run record without {missing}"
        made = {
            "id": self.id,
            "kind": kind,
            "parent": parent,
            "dataset": dataset.id,
            "dataset_path": str(dataset.path.resolve()),
            "distill": distill,
            "selftune_version": __version__,
        }
        return {k: made[k] if k in made else trained[k] for k in RUN_KEYS}

    def write_info(self, info: dict[str, Any]) -> None:
        """Write run.json (made by `record`); with the weights, it makes the run finished."""
        assert tuple(info) == RUN_KEYS, "run.json is written in its one shape (RunDir.record)"
        _write_json(self.info_path, info)

    @property
    def has_settings(self) -> bool:
        return self.settings_path.exists()

    def settings(self) -> dict[str, Any]:
        """settings.json: what `--resume` needs to continue the run as it was started."""
        if not self.has_settings:
            raise SelftuneError(f"{self.path} has no {RUN_SETTINGS}; nothing to resume")
        return _read_json(self.settings_path)

    def write_settings(self, settings: dict[str, Any]) -> None:
        _write_json(self.settings_path, settings)


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

    def write_report(self, report: dict[str, Any], html: str) -> None:
        """report.html, then report.json (which makes the folder a report)."""
        tmp = self.html_path.with_name(f".{REPORT_HTML}.tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, self.html_path)
        _write_json(self.report_path, report)

    def write_blind_pairs(self, pairs: list[dict[str, Any]]) -> int:
        """The "which one is real?" pairs, numbered; returns how many."""
        _write_jsonl(self.blind_pairs_path, [{"pair": i, **p} for i, p in enumerate(pairs)])
        return len(pairs)

    def blind_pairs(self) -> list[dict[str, Any]]:
        """The pairs that have both a real and a generated reply."""
        if not self.blind_pairs_path.exists():
            return []
        rows = [
            _json_line(self.blind_pairs_path, i, line) for i, line in _lines(self.blind_pairs_path)
        ]
        return [r for r in rows if r.get("real") and r.get("generated")]

    def blind_guesses(self) -> list[dict[str, Any]]:
        """The guesses stored beside the pairs (blind_results.jsonl), oldest first."""
        path = self.path / BLIND_RESULTS
        return [_json_line(path, i, line) for i, line in _lines(path)] if path.exists() else []

    def write_bench(self, results: dict[str, Any]) -> None:
        _write_json(self.bench_path, results)


def _lines(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(i, line) for i, line in enumerate(lines) if line.strip()]


def _json_line(path: Path, i: int, line: str) -> dict[str, Any]:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise SelftuneError(f"{path}:{i + 1}: not valid JSON ({exc.msg})") from exc


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
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

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
