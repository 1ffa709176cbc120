"""Held-out perplexity of two tuned runs on the same held-out examples, each scored in both
datasets' formats (apples to apples when two dataset builders are compared on one store).

    PYTHONPATH=src python benchmarks/compare_heldout.py RUN_A RUN_B DATASET_A DATASET_B

RUN_A was trained on DATASET_A and RUN_B on DATASET_B (for instance the skeleton builder and the
current one on the bundled example). Prints the base model's and both tuned models' perplexity on
each dataset's `valid.jsonl`, split into chat and notes, and writes the numbers as JSON to stdout's
last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from selftune.artefacts import read_split
from selftune.evaluation.perplexity import perplexities
from selftune.models import load_tuned


def main() -> None:
    run_a, run_b, set_a, set_b = (Path(p) for p in sys.argv[1:5])
    runs = {"A": run_a, "B": run_b}
    out: dict[str, dict] = {}
    for set_name, folder in (("A", set_a), ("B", set_b)):
        records = read_split(folder, "valid")
        parts = {
            "chat": [r for r in records if "messages" in r],
            "notes": [r for r in records if "text" in r],
            "all": records,
        }
        for run_name, run in runs.items():
            model, tokenizer = load_tuned(run)
            for part, recs in parts.items():
                key = f"run {run_name} on dataset {set_name} held-out {part}"
                out[key] = perplexities(model, tokenizer, recs, 768)["all"]
                if run_name == "A":
                    with model.disable_adapter():
                        base = perplexities(model, tokenizer, recs, 768)["all"]
                    out[f"base on dataset {set_name} held-out {part}"] = base
    for key, value in out.items():
        print(f"{key:42} perplexity {value['perplexity']:.3f} ({value['tokens']} tokens)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
