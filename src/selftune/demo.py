"""The bundled example person (Mags, fictional) and the end-to-end demo that runs every stage on her.

The example lives in the repository's `examples/marguerite/`; an installed wheel carries a copy
inside the package.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError

EXAMPLE_OWNER = "Mags"
DEMO_MARKER = ".selftune-demo"
DEMO_PROMPTS = (
    ("chat", "are you coming to the hive club meeting on thursday?"),
    ("chat", "How are the bees doing this week?"),
    ("complete", "# Tattoo ideas\n\n1."),
)


def example_dir() -> Path:
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[2] / "examples" / "marguerite",
        here.parent / "_examples" / "marguerite",
    ):
        if (candidate / "whatsapp").is_dir():
            return candidate
    raise SelftuneError("the bundled example person is missing from this installation")


def prepare_demo_dir(root: Path) -> None:
    """Start from an empty folder; only a folder an earlier demo made is ever cleared."""
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).exists():
            raise SelftuneError(
                f"{root} exists and was not made by `selftune demo`; pass another --workspace"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("made by selftune demo; safe to delete\n")


class Timer:
    def __init__(self, echo: Callable[[str], Any]):
        self.echo = echo
        self.stages: dict[str, float] = {}

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)


class _Stage:
    def __init__(self, timer: Timer, name: str):
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.started = time.monotonic()
        self.timer.echo(f"\n== {self.name} ==")

    def __exit__(self, *exc: object) -> None:
        self.timer.stages[self.name] = time.monotonic() - self.started


def timings_table(stages: dict[str, float]) -> str:
    rows = [f"  {name:10} {seconds:7.1f}s" for name, seconds in stages.items()]
    rows.append(f"  {'total':10} {sum(stages.values()):7.1f}s")
    return "\n".join(rows)


def write_summary(root: Path, summary: dict[str, Any]) -> None:
    (root / "demo.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
