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


def run_demo(
    root: Path,
    minutes: float,
    max_steps: int | None,
    n: int,
    echo: Callable[[str], Any],
) -> dict[str, Any]:
    """init → ingest → build → train → eval → sample on the bundled example person, through the
    same entry points the commands use (so the demo's run resumes and its report opens like any
    other); returns the summary written to demo.json."""
    from selftune.dataset import run_build
    from selftune.evaluation import QUICK, run_eval
    from selftune.ingest.importer import ingest_paths
    from selftune.models import ensure_embedded_checkpoint
    from selftune.training import run_train
    from selftune.twin import Twin
    from selftune.use import TwinSession
    from selftune.workspace import init_workspace

    timer = Timer(echo)
    example = example_dir()
    prepare_demo_dir(root)
    ws = init_workspace(root, [EXAMPLE_OWNER], name="mags")
    twin = Twin.from_config(ws.config)
    with timer.stage("setup"):
        echo(f"Base model: SmolLM2-135M-Instruct (embedded) → {ensure_embedded_checkpoint()}")
    with timer.stage("ingest"), ws.open_store() as store:
        for summary in ingest_paths(store, [example / "whatsapp", example / "notes"], twin.names):
            echo(summary.line())
    with timer.stage("build"):
        info, dataset_id = run_build(ws)
        echo(
            f"Dataset {dataset_id}: {info['train']['examples']} training examples "
            f"({info['train']['tokens']} tokens), {info['valid']['examples']} held out"
        )
    with timer.stage("train"):
        run, run_dir = run_train(
            ws, dataset_id, overrides={"minutes": minutes, "max_steps": max_steps}, echo=echo
        )
        echo(
            f"{run['steps']} steps in {run['seconds']:.0f}s, "
            f"{run['tokens_per_second']:.0f} tokens/s ({run['precision']})"
        )
    with timer.stage("eval"):
        for key, value in QUICK.items():
            setattr(ws.config.eval, key, value)
        report, report_dir = run_eval(ws, run_dir.name, sections=["perplexity"], progress=echo)
        echo(f"Report: {report_dir / 'report.html'}")
    samples = []
    with timer.stage("sample"):
        session = TwinSession.open(ws, run_dir.name, "transformers", memory=False, log=False)
        for mode, prompt in DEMO_PROMPTS:
            out = session.sample(
                prompt, mode == "chat", n, temperature=0.8, top_p=0.95, max_tokens=48, seed=0
            )
            outs = out.texts
            samples.append({"mode": mode, "prompt": prompt, "samples": outs})
            echo(f"\n{'They say' if mode == 'chat' else 'Continue'}: {prompt!r}")
            for i, out in enumerate(outs, 1):
                echo(f"  [{i}] {out!r}")
    summary = {
        "perplexity": report["perplexity"],
        "timings_s": timer.stages,
        "train": run,
        "report": report_dir.name,
        "samples": samples,
    }
    write_summary(root, summary)
    echo("\n== result ==")
    ppl = report["perplexity"]
    echo(
        f"Held-out perplexity on Mags's own words: base {ppl['base']:.2f} → tuned {ppl['tuned']:.2f}"
    )
    echo(timings_table(timer.stages))
    return summary
