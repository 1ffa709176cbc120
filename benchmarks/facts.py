"""Facts the twin uses: does a twin trained with fact-bearing memory blocks state its owner's
public facts when a friend asks, and never a private one?

    PYTHONPATH=src python benchmarks/facts.py                              # Mags, facts last
    PYTHONPATH=src python benchmarks/facts.py --place first
    PYTHONPATH=src python benchmarks/facts.py --example examples/dara --owner Dara
    PYTHONPATH=src python benchmarks/facts.py --base-only                  # no training

The example folder (its exports and facts.yaml) is ingested into a fresh workspace, built with
memory on (`memory.facts_place` as --place), trained with the default CPU budget (`--minutes`,
4 by default), and the eval's memory section's probes ask every public fact as a friend would, of the base
and the tuned model, with and without memory, 3 answers each: a fact is *stated* when 2 of the 3
answers hold it; the tuned model is asked again with the facts placed the other way at use.
Private facts are asked for directly; no raw answer may hold one. One JSON line
per run on stdout, with the load average.
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


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--example", type=Path, default=REPO / "examples" / "marguerite")
    parser.add_argument("--owner", default="Mags")
    parser.add_argument("--place", choices=["first", "last"], default="last")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--base-only", action="store_true", help="skip training (max_steps 1)")
    parser.add_argument("--keep", type=Path, help="keep the workspace here")
    args = parser.parse_args()

    from selftune.dataset import run_build
    from selftune.ingest.importer import ingest_paths
    from selftune.training import run_train
    from selftune.workspace import init_workspace

    root = args.keep or Path(tempfile.mkdtemp(prefix="facts-bench-"))
    if root.exists():
        shutil.rmtree(root)
    ws = init_workspace(root, [args.owner], name="facts-bench")
    shutil.copy(args.example / "facts.yaml", ws.root / "facts.yaml")
    ws.config.memory.facts_place = args.place
    started = time.monotonic()
    exports = [p for p in sorted(args.example.iterdir()) if p.is_dir()]
    with ws.open_store() as store:
        for summary in ingest_paths(store, exports, [args.owner]):
            print(summary.line(), file=sys.stderr)
    info, dataset_id = run_build(ws)
    train_overrides = {"max_steps": 1} if args.base_only else {"minutes": args.minutes}
    run, run_dir = run_train(ws, dataset_id, overrides=train_overrides, echo=lambda _: None)
    trained = time.monotonic()
    from selftune.config import EvalConfig
    from selftune.evaluation.compared_models import load_sides
    from selftune.evaluation.sections.facts_recall import facts_probes, private_probes
    from selftune.guards import OutputGuard
    from selftune.memory import Memory
    from selftune.memory.facts import private_facts

    base, tuned = load_sides(run_dir)
    memory = Memory.from_workspace(ws)
    memory.settings = memory.settings.model_copy(update={"enabled": True})
    config = EvalConfig(candidates=3, max_new_tokens=32, temperature=0.7)
    probes = facts_probes(tuned, memory, config, None, base)
    other = "first" if args.place == "last" else "last"
    memory.settings = memory.settings.model_copy(update={"facts_place": other})
    tuned_other = facts_probes(tuned, memory, config)["facts_stated"]
    secrets = private_facts(ws)
    asked = private_probes(tuned, memory, secrets, config)["answers"]
    raw = asked + [a for r in probes["rows"] for k in ("with", "without") for a in r[k]["answers"]]
    out = {
        "example": args.example.name,
        "place": args.place,
        "train": {
            "steps": run["steps"],
            "examples": info["train"]["examples"],
            "minutes": round((trained - started) / 60, 1),
        },
        "facts_stated": probes["facts_stated"],
        f"tuned_with_facts_{other}_at_use": tuned_other.get("tuned_with_memory"),
        "answers_stating": probes["states"],
        "private": {
            "answers": len(raw),
            "with_a_private_fact": sum(OutputGuard(secrets, pii=False).found(a) for a in raw),
        },
        "per_fact": [
            {
                "question": r["question"],
                "in_memory": r["in_memory"],
                "tuned_with": r["with"]["states"],
                "tuned_without": r["without"]["states"],
                "base_with": r["base"]["with"]["states"],
                "an_answer": (r["with"]["answers"] or [""])[0][:80],
            }
            for r in probes["rows"]
        ],
        "minutes": round((time.monotonic() - started) / 60, 1),
        "load": load(),
    }
    print(json.dumps(out, ensure_ascii=False))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
