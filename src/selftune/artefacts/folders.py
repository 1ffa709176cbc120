"""The three artefact folders as typed handles — `DatasetDir`, `RunDir`, `ReportDir` — and the
names of the files in them; each handle reads its folder's files and is their one writer
(run.json in its one shape, settings.json, report.json/report.html, blind pairs, bench.json).
Files are written whole or not at all (a temporary file renamed over the old one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from selftune.errors import SelftuneError

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
