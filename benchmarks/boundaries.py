"""Boundaries on the bundled example: does the twin tell a contact what was said in a
conversation they were not in?

    PYTHONPATH=src python benchmarks/boundaries.py                 # build, train 2 min, eval
    PYTHONPATH=src python benchmarks/boundaries.py --probes 8 --candidates 2 --max-tokens 48

The example person (examples/marguerite, as `selftune demo` sets it up, with its facts.yaml) is
ingested and built with memory on (`memory.scope: participants`), a twin is trained for
`--minutes`, and the `boundaries` section of `selftune eval` runs twice on it: as configured,
and with `memory.scope: everyone` (the rule switched off at use) to show what the rule keeps
out. Load averages are printed next to every number (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "marguerite"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="training time")
    parser.add_argument("--candidates", type=int, default=1, help="answers per probe and side")
    parser.add_argument("--probes", type=int, default=4, help="most probes")
    parser.add_argument("--max-tokens", type=int, default=16, help="new tokens per answer")
    parser.add_argument("--keep", type=Path, help="keep the workspace here")
    args = parser.parse_args()

    import selftune.evaluation.sections.boundaries as section
    from selftune.dataset import run_build
    from selftune.evaluation import run_eval
    from selftune.ingest.importer import ingest_paths
    from selftune.training import run_train
    from selftune.workspace import init_workspace

    root = args.keep or Path(tempfile.mkdtemp(prefix="selftune-boundaries-"))
    if root.exists():
        shutil.rmtree(root)
    ws = init_workspace(root, ["Mags"], name="mags")
    shutil.copy(EXAMPLE / "facts.yaml", root / "facts.yaml")
    with ws.open_store() as store:
        ingest_paths(store, [EXAMPLE / "whatsapp", EXAMPLE / "notes"], ("Mags",))
    started = time.monotonic()
    info, dataset_id = run_build(ws)
    print(f"build: {time.monotonic() - started:.1f} s, {info['train']['examples']} examples, "
          f"memory scope {info['memory']['scope']} (load {load()})")  # fmt: skip
    started = time.monotonic()
    run, run_dir = run_train(
        ws, dataset_id, overrides={"minutes": args.minutes}, echo=lambda _: None
    )
    print(f"train: {time.monotonic() - started:.0f} s, {run['steps']} steps (load {load()})")
    ws.config.eval.candidates = args.candidates
    ws.config.eval.max_new_tokens = args.max_tokens
    section.MAX_PROBES = args.probes
    ws.config.eval.minutes = 0  # every probe
    results = {}
    for scope in ("participants", "everyone"):
        ws.config.memory.scope = scope
        started = time.monotonic()
        report, _ = run_eval(ws, run_dir.name, sections=["boundaries"])
        b = report["boundaries"]
        took = time.monotonic() - started
        results[scope] = b | {"seconds": round(took, 1), "load": load()}
        s = b["states"]
        print(
            f"scope {scope}: {b['probes']} probes as {b['contacts']} contacts; stating the other "
            f"conversation: base {s['base']}, tuned {s['tuned_without_memory']}, tuned + memory "
            f"{s['tuned_with_memory']}; blocks breaking the rule {b['blocks_breaking_scope']} of "
            f"{b['blocks_checked']}; reachable without the rule {b['reachable_without_rule']} "
            f"({took:.0f} s, load {load()})"
        )
    out = {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in results.items()}
    print(json.dumps(out, indent=1))
    if not args.keep:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
