"""The perplexity section: base (adapter off) and tuned on the same held-out batches, scored only
on the tokens the model is trained to write (the owner's turns and note text), never on context;
overall, per source and per conversation kind. Batches run in a seeded random order, so a
budget that stops early scores a random part of the held-out set."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from selftune.evaluation.budget import EvalBudget
from selftune.evaluation.charts import bar_chart, source_label, table
from selftune.evaluation.perplexity import add_scores, as_perplexities, scored_batches
from selftune.evaluation.section import EvalContext, Section


def perplexity_section(
    base: Any,
    tuned: Any,
    records: list[dict[str, Any]],
    max_len: int,
    budget: EvalBudget,
    seed: int = 0,
) -> dict[str, Any]:
    """Base and tuned perplexity on the same batches, as report.json's perplexity entries."""
    batches = scored_batches(base.tokenizer, records, max_len)
    random.Random(f"perplexity-{seed}").shuffle(batches)
    totals: dict[str, dict[str, list[float]]] = {
        "base": defaultdict(lambda: [0.0, 0]),
        "tuned": defaultdict(lambda: [0.0, 0]),
    }
    for chunk in budget.chunks("perplexity", batches, unit="batches of held-out examples"):
        for batch in chunk:
            encoded = [item for _, _, item in batch]
            add_scores(totals["base"], batch, base.nll(encoded))
            add_scores(totals["tuned"], batch, tuned.nll(encoded))
    b, t = as_perplexities(totals["base"]), as_perplexities(totals["tuned"])
    if "all" not in b:
        return {}

    def rows(prefix: bool) -> dict[str, Any]:
        return {
            key.removeprefix("kind:"): {
                "base": b[key]["perplexity"],
                "tuned": t[key]["perplexity"],
                "tokens": b[key]["tokens"],
            }
            for key in b
            if key != "all" and key.startswith("kind:") == prefix
        }

    return {
        "perplexity": {"base": b["all"]["perplexity"], "tuned": t["all"]["perplexity"]},
        "perplexity_by_source": rows(False),
        "perplexity_by_kind": rows(True),
        "scored_tokens": b["all"]["tokens"],
    }


def plan(ctx: EvalContext) -> list[str]:
    return ["perplexity"]


def run(ctx: EvalContext) -> dict[str, Any]:
    return ctx.timed(
        "perplexity",
        lambda: perplexity_section(
            ctx.base, ctx.tuned, ctx.scored, ctx.max_len, ctx.budget, ctx.config.seed
        ),
    )


def html(report: dict[str, Any]) -> str:
    if "perplexity" not in report:
        return ""
    p = report["perplexity"]
    h = ["<h2>Is it me? Perplexity on your held-out words</h2>"]
    h.append(
        f"<p>Lower is better: how surprised each model is by what you actually wrote ({report['scored_tokens']} of your tokens; context not scored).</p>"
    )
    groups = {"all": p} | {
        source_label(s) + f" ({s})": r for s, r in report["perplexity_by_source"].items()
    }
    h.append(
        bar_chart(
            {k: {"base": v["base"], "tuned": v["tuned"]} for k, v in groups.items()},
            "Perplexity, base vs tuned",
        )
    )
    rows = [
        [s, r["base"], r["tuned"], r["tokens"]] for s, r in report["perplexity_by_source"].items()
    ]
    rows += [
        [f"kind: {k}", r["base"], r["tuned"], r["tokens"]]
        for k, r in report.get("perplexity_by_kind", {}).items()
    ]
    h.append(table(["source / kind", "base", "tuned", "tokens"], rows))
    return "".join(h)


def summary(report: dict[str, Any]) -> list[str]:
    if "perplexity" not in report:
        return []
    ppl = report["perplexity"]
    lines = [
        f"Held-out perplexity ({report['scored_tokens']} of your tokens): "
        f"base {ppl['base']:.2f} → tuned {ppl['tuned']:.2f}"
    ]
    for key in ("perplexity_by_source", "perplexity_by_kind"):
        for name, row in report[key].items():
            lines.append(
                f"  {name:18} base {row['base']:.2f} → tuned {row['tuned']:.2f}  ({row['tokens']} tokens)"
            )
    return lines


SECTION = Section("perplexity", frozenset({"perplexity"}), plan, run, html, summary)
