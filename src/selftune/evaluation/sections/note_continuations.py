"""The note continuations section ("is it me?" for notes): the base and the tuned model continue
the beginnings of held-out notes, and their continuations (`candidates` of each) are compared
with what the owner really wrote next.

A held-out note piece is cut after its first lines (the title and the first blocks, about
`PROMPT_SHARE` of its tokens); the real continuation is the next `max_new_tokens` tokens of it,
ended at a line break, so real and generated texts have the same length. Style: the same
statistics and distance as for chat replies, scaled by the spread among passages of the owner's
training notes. Authorship: the same character n-gram classifier, trained on passages of the
owner's training notes against a "not you" class of the base model's continuations of
training-note beginnings (what a model that has not learnt the owner writes in the same place)
and other people's messages in the training split (someone else's hand); its accuracy is checked
on held-out text of both kinds (and against the base alone), then it says how many of the tuned
model's continuations it takes for the owner's. Below 60% it is at chance and the verdict says so.
"""

from __future__ import annotations

import random
from html import escape
from typing import Any

from selftune.config import EvalConfig
from selftune.evaluation.budget import EvalBudget
from selftune.evaluation.charts import pct, table
from selftune.evaluation.section import EvalContext, Section
from selftune.scoring import authorship

PROMPT_SHARE = 0.35
MIN_PROMPT_LINES = 2  # the title and at least one block
CHUNK = 4  # note beginnings generated together in one batch


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def cut_note(tokenizer: Any, text: str, max_tokens: int) -> tuple[str, str] | None:
    """(beginning, real continuation of at most `max_tokens` tokens ending at a line break), or
    None when the note is too short to have both."""
    lines = text.split("\n")
    if sum(1 for line in lines if line.strip()) < MIN_PROMPT_LINES + 1:
        return None
    counts = [_token_count(tokenizer, line) + 1 for line in lines]
    total = sum(counts)
    k, size = 0, 0
    while k < len(lines) - 1 and (k < MIN_PROMPT_LINES or size < PROMPT_SHARE * total):
        size += counts[k]
        k += 1
    rest = [line for line in lines[k:]]
    if not any(line.strip() for line in rest):
        return None
    kept, used = [], 0
    for line, n in zip(rest, counts[k:], strict=True):
        if kept and used + n > max_tokens:
            break
        kept.append(line)
        used += n
    real = "\n".join(kept).strip("\n")
    if used > max_tokens:  # one long line: cut it by tokens
        ids = tokenizer.encode(real, add_special_tokens=False)[:max_tokens]
        real = tokenizer.decode(ids)
    return "\n".join(lines[:k]) + "\n", real


def note_prompts(
    tokenizer: Any, records: list[dict[str, Any]], limit: int, max_tokens: int, seed: int
) -> list[dict[str, Any]]:
    """Up to `limit` {prompt, real, source} from note records, chosen at random (seeded)."""
    out = []
    for r in records:
        if "text" not in r:
            continue
        cut = cut_note(tokenizer, r["text"], max_tokens)
        if cut:
            source = r.get("_meta", {}).get("source", "notes")
            out.append({"prompt": cut[0], "real": cut[1], "source": source})
    if len(out) > limit:
        out = random.Random(f"notes-{seed}").sample(out, limit)
    return out


def passages(tokenizer: Any, records: list[dict[str, Any]], size: int) -> list[str]:
    """The owner's note text cut at line breaks into passages of about `size` tokens."""
    out = []
    for r in records:
        if "text" not in r:
            continue
        current: list[str] = []
        used = 0
        for line in r["text"].split("\n"):
            n = _token_count(tokenizer, line) + 1
            if current and used + n > size:
                out.append("\n".join(current).strip("\n"))
                current, used = [], 0
            current.append(line)
            used += n
        if any(line.strip() for line in current):
            out.append("\n".join(current).strip("\n"))
    return [p for p in out if p.strip()]


def continue_notes(
    sides: dict[str, Any],
    held_out: list[dict[str, Any]],
    training: list[dict[str, Any]],
    config: EvalConfig,
    budget: EvalBudget,
) -> None:
    """Adds each side's continuation to the held-out prompts (base and tuned) and the base's to
    the training prompts (authorship negatives), alternating so both grow within the budget."""
    from selftune.evaluation.leaks import text_start

    jobs = []
    for i in range(max(len(held_out), len(training))):
        jobs += [("held", p) for p in held_out[i : i + 1]]
        jobs += [("train", p) for p in training[i : i + 1]]
    start = text_start(sides["base"].tokenizer)
    # the first chunk has 3 of each: enough for the authorship classifier's negatives
    chunks = budget.chunks("notes", jobs, size=2 * CHUNK, minimum=6, unit="note beginnings")
    for chunk in chunks:
        for name, side in sides.items():
            wanted = [p for kind, p in chunk if kind == "held" or name == "base"]
            if not wanted:
                continue
            texts = side.complete_many(
                [start + p["prompt"] for p in wanted],
                config.candidates,
                config.temperature,
                config.max_new_tokens,
                config.seed,
            )
            for p, out in zip(wanted, texts, strict=True):
                p[name] = out


def notes_section(
    tokenizer: Any,
    held_out: list[dict[str, Any]],
    training: list[dict[str, Any]],
    train_records: list[dict[str, Any]],
    config: EvalConfig,
    wanted: list[str],
    valid_records: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Style and authorship of the continuations (only prompts that were continued)."""
    from selftune.evaluation.style import distance, profile

    done = [p for p in held_out if "tuned" in p]
    reference = passages(tokenizer, train_records, config.max_new_tokens)
    out: dict[str, Any] = {
        "prompts": len(done),
        "examples": [
            {"source": p["source"], "prompt": p["prompt"], "real": p["real"]}
            | {k: (p[k] or [""])[0] for k in ("base", "tuned")}
            for p in done[:3]
        ],
    }
    if not done:
        return out

    def flat(key: str, rows: list[dict[str, Any]]) -> list[str]:
        return [p["real"] for p in rows] if key == "real" else [x for p in rows for x in p[key]]

    texts = {k: flat(k, done) for k in ("real", "base", "tuned")}
    if "style" in wanted:
        out["style"] = {
            "profile": {k: profile(v) for k, v in texts.items()},
            "distance": {
                k: distance(texts[k], texts["real"], reference) for k in ("base", "tuned")
            },
            "by_source": {
                source: {
                    k: distance(
                        flat(k, [p for p in done if p["source"] == source]),
                        flat("real", [p for p in done if p["source"] == source]),
                        reference,
                    )["distance"]
                    for k in ("base", "tuned")
                }
                | {"prompts": sum(p["source"] == source for p in done)}
                for source in sorted({p["source"] for p in done})
            },
        }
    base_negatives = [x for p in training for x in p.get("base", []) if x.strip()]
    if "authorship" in wanted:
        out["authorship"] = notes_authorship(
            reference, base_negatives, texts, done, train_records, valid_records or [], config.seed
        )
    return out


def notes_authorship(
    reference: list[str],
    base_negatives: list[str],
    texts: dict[str, list[str]],
    done: list[dict[str, Any]],
    train_records: list[dict[str, Any]],
    valid_records: list[dict[str, Any]],
    seed: int,
) -> dict[str, Any]:
    """The notes' authorship classifier. "Not you" is the base model's continuations of
    training-note beginnings *and* other people's writing in the store (contacts' messages in
    the training split), so it learns the owner's hand rather than "not the base model"; its
    accuracy is measured on held-out text of both kinds, and against the base alone."""
    _, others = authorship.chat_messages(train_records)
    _, held_others = authorship.chat_messages(valid_records)
    negatives = base_negatives + others
    if len(base_negatives) < 3 or len(reference) < 3:
        return {
            "skipped": f"needs 3 or more training-note passages and base continuations "
            f"(had {len(reference)} and {len(base_negatives)})"
        }
    model = authorship.fit(reference, negatives, seed)
    against_base = model.accuracy(texts["real"], texts["base"])
    against_others = model.accuracy(texts["real"], held_others) if held_others else None
    acc = model.accuracy(texts["real"], texts["base"] + held_others)
    return {
        "classifier": "character 1-4-grams, TF-IDF, logistic regression",
        "trained_on": {
            "yours": len(reference),
            "base_continuations": len(base_negatives),
            "other_people": len(others),
        },
        "not_you": "the base model's continuations"
        + (" and other people's messages" if others else ""),
        "held_out_accuracy": round(acc, 4) if acc is not None else None,
        "accuracy_against": {
            "base_continuations": round(against_base, 4) if against_base is not None else None,
            "other_people": round(against_others, 4) if against_others is not None else None,
        },
        **{k: authorship.taken_for_owner(model, v) for k, v in texts.items()},
        "by_source": {
            source: {
                k: authorship.taken_for_owner(
                    model,
                    [p["real"] for p in done if p["source"] == source]
                    if k == "real"
                    else [x for p in done if p["source"] == source for x in p[k]],
                )["taken_for_owner"]
                for k in ("real", "base", "tuned")
            }
            for source in sorted({p["source"] for p in done})
        },
    }


def plan(ctx: EvalContext) -> list[str] | None:
    config, tokenizer = ctx.config, ctx.base.tokenizer
    n_new = config.max_new_tokens
    held = note_prompts(tokenizer, ctx.scored, config.note_prompts, n_new, config.seed)
    if not held:
        return None
    training = []
    if "authorship" in ctx.wanted:
        training = note_prompts(tokenizer, ctx.train, config.note_prompts, n_new, config.seed + 1)
    ctx.prepared["notes"] = (held, training)
    return ["notes"]


def run(ctx: EvalContext) -> dict[str, Any]:
    held, training = ctx.prepared["notes"]
    ctx.timed(
        f"continuations of {len(held)} held-out note beginnings",
        lambda: continue_notes(ctx.sides, held, training, ctx.config, ctx.budget),
    )
    section = notes_section(
        ctx.base.tokenizer, held, training, ctx.train, ctx.config, sorted(ctx.wanted), ctx.valid
    )
    return {"notes": section}


def html(report: dict[str, Any]) -> str:
    """ "Is it me?" for notes: style and authorship of continuations of held-out note beginnings."""
    wanted = set(report.get("sections", [])) & {"style", "authorship"}
    if not wanted:
        return ""
    notes = report.get("notes")
    h = ["<h2>Is it me? Continuing your held-out notes</h2>"]
    if not notes or not notes.get("prompts"):
        h.append("<p>No held-out note long enough to cut into a beginning and a continuation.</p>")
        return "".join(h)
    h.append(
        f"<p>The base and the tuned model continued the beginnings of {notes['prompts']} "
        "held-out notes; their continuations are compared with what you really wrote next.</p>"
    )
    st = notes.get("style")
    if st:
        d = st["distance"]
        h.append("<h3>Style of the continuations</h3>")
        h.append(
            table(
                ["model", "style distance", "function words (Burrows' Delta)",
                 "words in your vocabulary"],
                [[k, d[k]["distance"], d[k]["function_words"], d[k]["vocab_overlap"]]
                 for k in ("base", "tuned")],
            )
        )  # fmt: skip
        h.append(
            table(
                ["source", "base distance", "tuned distance", "notes"],
                [[k, v["base"], v["tuned"], v["prompts"]] for k, v in st["by_source"].items()],
            )
        )
    a = notes.get("authorship")
    if a and "skipped" in a:
        h.append(f"<h3>Authorship of the continuations</h3><p>Skipped: {escape(a['skipped'])}.</p>")
    elif a:
        h.append("<h3>Authorship of the continuations: taken for yours?</h3>")
        h.append(
            f"<p>A {escape(a['classifier'])} classifier trained on "
            f"{a['trained_on']['yours']} passages of your training notes against "
            f"{a['trained_on']['base_continuations']} continuations the base model wrote for "
            f"training-note beginnings and {a['trained_on'].get('other_people', 0)} messages "
            f"other people wrote; balanced accuracy on held-out text (your real continuations "
            f"against {escape(a.get('not_you', 'the base'))}): "
            f"<b>{pct(a['held_out_accuracy'])}</b>"
            + ("" if (a["held_out_accuracy"] or 0) >= 0.6 else " — at chance, so it says nothing")
            + ".</p>"
        )
        h.append(
            table(
                ["written by", "taken for you", "mean P(you)", "continuations"],
                [[k, pct(a[k]["taken_for_owner"]), a[k]["mean_probability"], a[k]["replies"]]
                 for k in ("real", "base", "tuned")],
            )
        )  # fmt: skip
        rows = [
            [src, pct(v["real"]), pct(v["base"]), pct(v["tuned"])]
            for src, v in a["by_source"].items()
        ]
        h.append(table(["source", "real", "base", "tuned"], rows))
    for ex in notes.get("examples", [])[:2]:
        h.append(
            "<details><summary>An example</summary>"
            + table(
                ["", "text"],
                [[k, ex.get(k)] for k in ("prompt", "real", "base", "tuned")],
            )
            + "</details>"
        )
    return "".join(h)


def summary(report: dict[str, Any]) -> list[str]:
    notes, lines = report.get("notes", {}), []
    if notes.get("style"):
        d = notes["style"]["distance"]
        lines.append(
            f"Notes ({notes['prompts']} held-out beginnings continued): style distance base "
            f"{d['base']['distance']} → tuned {d['tuned']['distance']}"
        )
    if notes.get("authorship", {}).get("tuned"):
        a = notes["authorship"]
        lines.append(
            f"Notes authorship (classifier accuracy {a['held_out_accuracy']}): taken for you "
            f"real {a['real']['taken_for_owner']}, base {a['base']['taken_for_owner']}, tuned {a['tuned']['taken_for_owner']}"
        )
    return lines


SECTION = Section("notes", frozenset({"style", "authorship"}), plan, run, html, summary)
