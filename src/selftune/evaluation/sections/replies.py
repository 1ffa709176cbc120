"""The replies section ("is it me?" in chat): the base and the tuned model reply to held-out chat
contexts (`eval.contexts` of them, `eval.candidates` replies each, batched) and their replies
are compared with the owner's real ones: style (`evaluation.style`), authorship
(`scoring.authorship`) and context fit (`evaluation.judge`). The replies also become the blind
pairs of the "which one is real?" game.
"""

from __future__ import annotations

import random
from html import escape
from typing import Any

from selftune.config import EvalConfig
from selftune.evaluation.budget import EvalBudget
from selftune.evaluation.charts import bar_chart, pct, table
from selftune.evaluation.perplexity import conversation_kind
from selftune.evaluation.section import EvalContext, Section
from selftune.scoring import authorship

REPLY_CHUNK = 4  # held-out contexts replied to in one batched generate


def held_out_contexts(records: list[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    """Up to `limit` (context, real reply) pairs: each owner turn of the held-out chats with the
    turns before it; chosen at random (seeded) across sources."""
    pairs = []
    for r in records:
        if "messages" not in r:
            continue
        kind = conversation_kind(r)
        for i, m in enumerate(r["messages"]):
            if m["role"] == "assistant" and i > 0 and m["content"].strip():
                pairs.append(
                    {
                        "context": r["messages"][:i],
                        "real": m["content"],
                        "source": r.get("_meta", {}).get("source", "unknown"),
                        "kind": kind,
                    }
                )
    if len(pairs) > limit:
        pairs = random.Random(f"contexts-{seed}").sample(pairs, limit)
    return pairs


def generate_replies(
    sides: dict[str, Any], contexts: list[dict[str, Any]], config: EvalConfig, budget: EvalBudget
) -> None:
    """Adds each side's replies (`config.candidates` each) to the contexts the budget allows."""
    for chunk in budget.chunks("replies", contexts, REPLY_CHUNK, unit="held-out messages"):
        for name, side in sides.items():
            replies = side.chat_many(
                [c["context"] for c in chunk],
                config.candidates,
                config.temperature,
                config.max_new_tokens,
                config.seed,
            )
            for c, out in zip(chunk, replies, strict=True):
                c[name] = out


def style_section(contexts: list[dict[str, Any]], reference: list[str]) -> dict[str, Any]:
    from selftune.evaluation.style import distance, profile

    def flat(key: str, rows: list[dict[str, Any]]) -> list[str]:
        return [x for c in rows for x in c[key]] if key != "real" else [c["real"] for c in rows]

    out: dict[str, Any] = {
        "profile": {k: profile(flat(k, contexts)) for k in ("real", "base", "tuned")},
        "distance": {
            k: distance(flat(k, contexts), flat("real", contexts), reference)
            for k in ("base", "tuned")
        },
        "by_source": {},
    }
    for source in sorted({c["source"] for c in contexts}):
        rows = [c for c in contexts if c["source"] == source]
        out["by_source"][source] = {
            k: distance(flat(k, rows), flat("real", rows), reference)["distance"]
            for k in ("base", "tuned")
        } | {"contexts": len(rows)}
    return out


def authorship_section(
    train: list[dict[str, Any]],
    valid: list[dict[str, Any]],
    contexts: list[dict[str, Any]],
    seed: int,
) -> dict[str, Any]:
    mine, others = authorship.chat_messages(train)
    classifier = authorship.fit(mine, others, seed)
    held_mine, held_others = authorship.chat_messages(valid)
    acc = classifier.accuracy(held_mine, held_others)
    return {
        "classifier": "character 1-4-grams, TF-IDF, logistic regression",
        "trained_on": {"yours": len(mine), "others": len(others)},
        "held_out_accuracy": round(acc, 4) if acc is not None else None,
        "held_out": {"yours": len(held_mine), "others": len(held_others)},
        "real": authorship.taken_for_owner(classifier, [c["real"] for c in contexts]),
        "base": authorship.taken_for_owner(classifier, [x for c in contexts for x in c["base"]]),
        "tuned": authorship.taken_for_owner(classifier, [x for c in contexts for x in c["tuned"]]),
    }


def judge_section(
    judge: Any, judge_name: str, contexts: list[dict[str, Any]], budget: EvalBudget
) -> dict[str, Any]:
    from selftune.evaluation.judge import last_message, score_replies

    sums = {k: [0.0, 0] for k in ("real", "base", "tuned")}
    for chunk in budget.chunks("judge", contexts, REPLY_CHUNK, unit="replied messages"):
        for key in sums:
            pairs = [
                (last_message(c["context"]), reply)
                for c in chunk
                for reply in ([c["real"]] if key == "real" else c[key][:1])
            ]
            scored = score_replies(judge, pairs, key)
            if scored["scored"]:
                sums[key][0] += scored["mean"] * scored["scored"]
                sums[key][1] += scored["scored"]
    out: dict[str, Any] = {"judge": judge_name}
    for key, (total, n) in sums.items():
        out[key] = {"scored": int(n), "mean": round(total / n, 4) if n else None}
    return out


def plan(ctx: EvalContext) -> list[str] | None:
    contexts = held_out_contexts(ctx.scored, ctx.config.contexts, ctx.config.seed)
    if not contexts:
        return None
    ctx.prepared["replies"] = contexts
    judged = "judge" in ctx.wanted and ctx.config.judge != "none"
    return ["replies"] + (["judge"] if judged else [])


def run(ctx: EvalContext) -> dict[str, Any]:
    config, wanted = ctx.config, ctx.wanted
    contexts = ctx.prepared["replies"]
    ctx.timed(
        f"replies to {len(contexts)} held-out messages",
        lambda: generate_replies(ctx.sides, contexts, config, ctx.budget),
    )
    contexts = [c for c in contexts if "tuned" in c]
    out: dict[str, Any] = {
        "contexts": len(contexts),
        "_blind_pairs": [
            {
                "context": c["context"][1:],
                "real": c["real"],
                "generated": c["tuned"][0],
                "source": c["source"],
            }
            for c in contexts
        ],
    }
    reference, _ = authorship.chat_messages(ctx.train)
    if "style" in wanted and contexts:
        out["style"] = ctx.timed("style", lambda: style_section(contexts, reference))
    if "authorship" in wanted and contexts:
        out["authorship"] = ctx.timed(
            "authorship", lambda: authorship_section(ctx.train, ctx.valid, contexts, config.seed)
        )
    if "judge" in wanted and config.judge != "none":
        judge = ctx.judge_endpoint or ctx.sides.get(config.judge)
        if judge is not None:
            name = config.judge if config.judge != "endpoint" else f"endpoint {config.judge_model}"
            out["judge"] = ctx.timed(
                "judge", lambda: judge_section(judge, name, contexts, ctx.budget)
            )
    return out


def html(report: dict[str, Any]) -> str:
    from selftune.evaluation.style import STATS

    h: list[str] = []
    if "style" in report:
        s = report["style"]
        h.append(f"<h2>Style of replies to {report.get('contexts', 0)} held-out messages</h2>")
        h.append(
            "<p>Distance to your real replies in units of your own spread (0 = indistinguishable on these statistics).</p>"
        )
        d = s["distance"]
        h.append(
            table(
                [
                    "model",
                    "style distance",
                    "function words (Burrows' Delta)",
                    "language mismatch",
                    "words in your vocabulary",
                ],
                [
                    [
                        k,
                        d[k]["distance"],
                        d[k]["function_words"],
                        d[k].get("language_mismatch"),
                        d[k]["vocab_overlap"],
                    ]
                    for k in ("base", "tuned")
                ],
            )
        )
        prof = s["profile"]
        groups = {
            STATS[name][0]: {k: prof[k]["stats"].get(name) for k in ("real", "base", "tuned")}
            for name in ("words", "ends_with_stop", "starts_upper", "emoji", "questions", "commas")
        }
        h.append(
            "".join(
                bar_chart({label: row}, "" if i else "Style profile: real vs base vs tuned", 560)
                for i, (label, row) in enumerate(groups.items())
            )
        )
        if s.get("by_source"):
            h.append(
                table(
                    ["source", "base distance", "tuned distance", "contexts"],
                    [[k, v["base"], v["tuned"], v["contexts"]] for k, v in s["by_source"].items()],
                )
            )
    if "authorship" in report:
        a = report["authorship"]
        h.append("<h2>Authorship: taken for you?</h2>")
        h.append(
            f"<p>A {escape(a['classifier'])} classifier trained on {a['trained_on']['yours']} of your messages and {a['trained_on']['others']} of other people's; balanced accuracy on held-out real messages: <b>{pct(a['held_out_accuracy'])}</b>.</p>"
        )
        h.append(
            table(
                ["replies by", "taken for you", "mean P(you)", "replies"],
                [
                    [k, pct(a[k]["taken_for_owner"]), a[k]["mean_probability"], a[k]["replies"]]
                    for k in ("real", "base", "tuned")
                ],
            )
        )
    if not report.get("contexts") and {"style", "authorship"} & set(report.get("sections", [])):
        h.append(
            "<h2>Style and authorship of replies</h2><p>No held-out chat messages to reply to: "
            "this twin's held-out writing is notes (below).</p>"
        )
    if "judge" in report:
        j = report["judge"]
        h.append(
            f"<h2>Context fit (judge: {escape(j['judge'])})</h2><p>Does the reply answer the message it follows? Mean score 0–1; your real replies are the reference.</p>"
        )
        h.append(
            table(
                ["replies by", "mean score", "scored"],
                [[k, j[k]["mean"], j[k]["scored"]] for k in ("real", "base", "tuned")],
            )
        )
    if report.get("blind_test"):
        b = report["blind_test"]
        h.append(
            f"<h2>Blind test</h2><p>In {b['guesses']} guesses the real reply was spotted {pct(b['real_spotted'])} of the time (50% = indistinguishable).</p>"
        )
    return "\n".join(h)


def summary(report: dict[str, Any]) -> list[str]:
    lines = []
    if "style" in report:
        d = report["style"]["distance"]
        lines.append(
            f"Style distance to your replies: base {d['base']['distance']} → tuned {d['tuned']['distance']}"
        )
    if "authorship" in report:
        a = report["authorship"]
        lines.append(
            f"Authorship (classifier accuracy {a['held_out_accuracy']}): taken for you "
            f"real {a['real']['taken_for_owner']}, base {a['base']['taken_for_owner']}, tuned {a['tuned']['taken_for_owner']}"
        )
    if "judge" in report:
        j = report["judge"]
        lines.append(
            f"Context fit ({j['judge']}): real {j['real']['mean']}, base {j['base']['mean']}, tuned {j['tuned']['mean']}"
        )
    return lines


SECTION = Section("replies", frozenset({"style", "authorship", "judge"}), plan, run, html, summary)
