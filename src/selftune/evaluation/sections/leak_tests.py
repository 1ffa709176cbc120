""" "Does it leak?": what the tuned model gives away — planted canaries, verbatim copies of training
text (prompted with a training prefix, and in free samples), and private facts or personal values
in free samples and after probe prompts. The detectors are in `evaluation.leaks`."""

from __future__ import annotations

from typing import Any

from selftune.config import EvalConfig
from selftune.evaluation.budget import EvalBudget
from selftune.evaluation.charts import table
from selftune.evaluation.section import EvalContext, Section

LEAK_SECTIONS = ("canaries", "regurgitation", "pii")


def leak_sections(
    tuned: Any,
    sections: list[str],
    dataset_dir: Any,
    train: list[dict[str, Any]],
    config: EvalConfig,
    private_facts: list[str],
    system: str,
    budget: EvalBudget,
) -> dict[str, Any]:
    from selftune.dataset.canaries import read_canaries
    from selftune.evaluation.leaks import (
        canary_checks,
        free_copying,
        free_samples,
        known_private_values,
        pii_emissions,
        probe_samples,
        regurgitation,
    )

    out: dict[str, Any] = {}
    if "canaries" in sections:
        planted = read_canaries(dataset_dir)
        rows = canary_checks(
            tuned,
            planted,
            config.canary_candidates,
            config.seed,
            budget.chunks("canaries", planted),
        )
        out["canaries"] = {
            "planted": len(planted),
            "flagged": sum(r["flagged"] for r in rows),
            "rows": rows,
        }
    if "regurgitation" in sections:
        out["regurgitation"] = regurgitation(
            tuned, train, config.regurgitation_prompts, config.prefix_tokens, config.seed, budget
        )
    free: list[str] = []
    if "regurgitation" in sections or "pii" in sections:
        free = free_samples(
            tuned, config.free_samples, 2 * config.max_new_tokens, system, config.seed, budget
        )
    if "regurgitation" in sections:
        out["regurgitation"]["free_sampling"] = free_copying(tuned, free, train)
    if "pii" in sections:
        known = known_private_values(train, private_facts)
        per_probe = max(1, config.free_samples // 4)
        probes = probe_samples(tuned, per_probe, config.max_new_tokens, system, config.seed, budget)
        out["pii"] = {
            "private_facts_listed": len(private_facts),
            "free": pii_emissions(free, known, private_facts),
            "probes": pii_emissions(probes, known, private_facts),
        }
    return out


def plan(ctx: EvalContext) -> list[str]:
    wanted = [s for s in LEAK_SECTIONS if s in ctx.wanted]
    return wanted + (["free"] if {"regurgitation", "pii"} & ctx.wanted else [])


def run(ctx: EvalContext) -> dict[str, Any]:
    wanted = [s for s in LEAK_SECTIONS if s in ctx.wanted]
    system = a_system_prompt(ctx.train)
    leaks = ctx.timed(
        "leaks",
        lambda: leak_sections(
            ctx.tuned, wanted, ctx.dataset_dir, ctx.train, ctx.config, ctx.private_facts,
            system, ctx.budget,
        ),
    )  # fmt: skip
    return {"leaks": leaks}


def a_system_prompt(records: list[dict[str, Any]]) -> str:
    """The system prompt of the first training chat (leak probes ask as training did)."""
    for r in records:
        if "messages" in r and r["messages"][0]["role"] == "system":
            return r["messages"][0]["content"]
    return "Reply as the owner would."


def html(report: dict[str, Any]) -> str:
    h: list[str] = []
    leaks = report.get("leaks")
    if not leaks:
        return ""
    h.append("<h2>Does it leak?</h2>")
    if "canaries" in leaks:
        c = leaks["canaries"]
        h.append(f"<h3>Canaries ({c['planted']} planted)</h3>")
        if c["rows"]:
            h.append(
                table(
                    [
                        "canary",
                        "repeats",
                        "rank",
                        "exposure (bits)",
                        "max",
                        "writes it",
                        "flagged",
                    ],
                    [
                        [
                            f"#{r['id']} {r['prefix']} …",
                            r["repeats"],
                            f"{r['rank']} / {r['candidates']}",
                            r["exposure"],
                            r["max_exposure"],
                            r["reproduced"],
                            "LEAK" if r["flagged"] else "ok",
                        ]
                        for r in c["rows"]
                    ],
                )
            )
        else:
            h.append(
                "<p>None planted: build with <code>selftune build --canaries 5</code> and train again to measure memorisation.</p>"
            )
    if "regurgitation" in leaks:
        r = leaks["regurgitation"]
        f = r.get("free_sampling", {})
        h.append("<h3>Verbatim regurgitation</h3>")
        h.append(
            table(
                ["test", "prompts / samples", "verbatim", "detail"],
                [
                    [
                        "prefix of a training text",
                        r["prompts"],
                        r["verbatim"],
                        f"mean share of the rest reproduced {r['mean_match_share']}",
                    ],
                    [
                        "free sampling",
                        f.get("samples"),
                        f.get("verbatim"),
                        f"longest run copied {f.get('longest_run_tokens')} tokens",
                    ],
                ],
            )
        )
    if "pii" in leaks:
        p = leaks["pii"]
        h.append(
            f"<h3>Personal information ({p['private_facts_listed']} private facts listed)</h3>"
        )
        h.append(
            table(
                [
                    "samples",
                    "count",
                    "private facts / known values emitted",
                    "other PII-shaped strings (may be invented)",
                ],
                [
                    [k, p[k]["samples"], p[k]["private_emissions"], p[k]["pii_shaped_other"]]
                    for k in ("free", "probes")
                ],
            )
        )
    return "\n".join(h)


SECTION = Section("leaks", frozenset(LEAK_SECTIONS), plan, run, html)
