"""What a user gets per minute of CPU: held-out perplexity, style and authorship after
`selftune train --minutes M`, on the bundled example person and on a notes-only subset of her.

Run: PYTHONPATH=src python benchmarks/quality.py [--minutes 2 4 8] [--eval-minutes 3]
         [--twins notes example] [--sections perplexity,style,authorship] [--out FILE]

Each twin is ingested and built once in a temporary workspace; then for each M, `selftune train
--minutes M` and `selftune eval --minutes E` run as their own processes under /usr/bin/time -v
(peak RSS is theirs), exactly as a user would call them. The load average is recorded before
and after each command (the numbers depend on it on a shared machine). The notes-only twin is
six of her eight notes (~2.9k tokens), what someone who mostly keeps notes has at first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTES_SUBSET = (
    "Hive inspection log.md",
    "Ideas for the honey stall.md",
    "Sourdough.md",
    "Tattoo ideas.md",
    "Things Biscuit has eaten.md",
    "Tide notes.md",
)


def make_twin(root: Path, kind: str) -> tuple[Path, dict]:
    from selftune.dataset import run_build
    from selftune.demo import example_dir
    from selftune.ingest.importer import ingest_paths
    from selftune.workspace import init_workspace

    ws = init_workspace(root / kind, ["Mags"])
    example = example_dir()
    if kind == "notes":
        folder = root / "notes-subset"
        folder.mkdir()
        for name in NOTES_SUBSET:
            shutil.copy2(example / "notes" / name, folder / name)
        paths = [folder]
    else:
        paths = [example / "whatsapp", example / "notes"]
    with ws.open_store() as store:
        ingest_paths(store, paths, ("Mags",))
    info, _ = run_build(ws)
    return ws.root, info


def timed_run(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, output) of `python -m selftune ARGS` under /usr/bin/time."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    started = time.monotonic()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "selftune", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(f"selftune {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return seconds, int(peak.group(1)) / 1024 if peak else float("nan"), proc.stdout


def latest(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_dir())[-1]


def measure(ws: Path, minutes: float, eval_minutes: float, sections: str | None = None) -> dict:
    load_before = os.getloadavg()
    train_s, train_rss, _ = timed_run(["train", "-w", str(ws), "--minutes", str(minutes)])
    run = json.loads((latest(ws / "runs") / "run.json").read_text())
    chosen = ["--sections", sections] if sections else []
    eval_s, eval_rss, _ = timed_run(
        ["eval", "-w", str(ws), "--minutes", str(eval_minutes), *chosen]
    )
    report = json.loads((latest(ws / "reports") / "report.json").read_text())
    load_after = os.getloadavg()
    ppl = report.get("perplexity", {})
    notes = report.get("notes", {})
    return {
        "minutes": minutes,
        "train": {
            k: run[k]
            for k in (
                "steps",
                "epochs",
                "stopped_by",
                "seconds",
                "tokens_per_second",
                "valid_loss",
                "best_step",
                "evaluations",
            )
        }  # fmt: skip
        | {"plan": run["plan"], "wall_s": round(train_s, 1), "peak_rss_mb": round(train_rss)},
        "eval": {
            "wall_s": round(eval_s, 1),
            "peak_rss_mb": round(eval_rss),
            "budget": report.get("budget"),
        },
        "perplexity": ppl,
        "perplexity_by_source": report.get("perplexity_by_source"),
        "ratio": round(ppl["tuned"] / ppl["base"], 3) if ppl else None,
        "style": (report.get("style") or {}).get("distance"),
        "authorship": {
            k: (report.get("authorship") or {}).get(k, {}).get("taken_for_owner")
            for k in ("real", "base", "tuned")
        },
        "notes_style": (notes.get("style") or {}).get("distance"),
        "notes_authorship": {
            k: (notes.get("authorship") or {}).get(k, {}).get("taken_for_owner")
            for k in ("real", "base", "tuned")
        }
        | {"accuracy": (notes.get("authorship") or {}).get("held_out_accuracy")},
        "sections_present": sorted(
            k
            for k in ("perplexity", "style", "authorship", "notes", "judge", "leaks")
            if k in report
        ),
        "verdict": report.get("verdict"),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }


def _d(dist: dict | None) -> str:
    if not dist:
        return "-"
    return f"{dist['base']['distance']:.2f} → {dist['tuned']['distance']:.2f}"


def _a(auth: dict) -> str:
    if auth.get("tuned") is None:
        return "-"
    return f"{auth['tuned']:.0%} (base {auth['base']:.0%}, real {auth['real']:.0%})"


def table(results: list[dict]) -> str:
    lines = [
        "| twin | --minutes | steps (epochs) | ended by | train s | train RSS | held-out ppl base → tuned (ratio) | style, replies | style, notes | taken for hers, replies | taken for hers, notes | eval s | eval RSS | load before/after |",
        "|---|---:|---|---|---:|---:|---|---|---|---|---|---:|---:|---|",
    ]
    for r in results:
        t, p = r["train"], r["perplexity"]
        lines.append(
            f"| {r['twin']} | {r['minutes']:g} | {t['steps']} ({t['epochs']:.1f}) | {t['stopped_by']} "
            f"| {t['wall_s']:.0f} | {t['peak_rss_mb'] / 1024:.2f} GB "
            f"| {p['base']:.1f} → {p['tuned']:.1f} ({r['ratio']:.2f}x) | {_d(r['style'])} "
            f"| {_d(r['notes_style'])} | {_a(r['authorship'])} | {_a(r['notes_authorship'])} "
            f"| {r['eval']['wall_s']:.0f} | {r['eval']['peak_rss_mb'] / 1024:.2f} GB "
            f"| {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 4, 8])
    parser.add_argument("--eval-minutes", type=float, default=3)
    parser.add_argument("--twins", nargs="+", default=["notes", "example"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "quality.json")
    parser.add_argument(
        "--sections", help="eval sections (default: all), e.g. perplexity,style,authorship"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.twins:
            ws, info = make_twin(Path(tmp), kind)
            print(
                f"{kind}: {info['train']['tokens']} training tokens, {info['valid']['tokens']} "
                f"held out in {info['valid']['examples']} examples",
                flush=True,
            )
            for minutes in args.minutes:
                row = measure(ws, minutes, args.eval_minutes, args.sections) | {
                    "twin": kind,
                    "dataset": {"train": info["train"], "valid": info["valid"]},
                }
                results.append(row)
                print(json.dumps(row), flush=True)
                args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
