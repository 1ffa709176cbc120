"""The improvement section (`picks` in eval.sections): does the twin now prefer what its owner
picks?

On held-out picks (the most recent `improve.held_out` share of reviewed samples, which distill
never trains on — for a distilled run, exactly the ones it recorded as held out): how often the
model gives the chosen candidate a higher log-likelihood than a rejected one, and the mean
margin, for the run's parent (before) and the run (after); the preference ranker's pairwise
accuracy on the same pairs. A run that was not distilled is compared with its base. Within the
time budget: the pairs ("picks") and the fresh replies of the authorship check
("picks_replies") are parts of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selftune.evaluation.budget import EvalBudget, unlimited
from selftune.evaluation.perplexity import token_nll
from selftune.evaluation.section import EvalContext, Section
from selftune.evaluation.sections.replies import held_out_contexts
from selftune.picks import Pair, Picks, Prompt, build_picks, split_held_out, tags_of
from selftune.scoring import authorship
from selftune.training.encoding import IGNORE
from selftune.workspace import Workspace

PAIR_CHUNK = 4  # held-out pairs scored together (before and after) within the budget


def prompt_text(tokenizer: Any, prompt: Prompt) -> str:
    """The text the model continues, as distill trains it: the chat rendered with the training
    template, or the text."""
    from selftune.engines.base import render_chat

    if prompt.kind == "chat":
        return render_chat(tokenizer, prompt.messages or [])
    return prompt.text or ""


def encode_pair_side(
    tokenizer: Any, prompt: Prompt, completion: str, max_len: int
) -> dict[str, list[int]]:
    """ids and labels for `completion` after `prompt` (labels only on the completion and its
    end token), rendered as distill trains them."""
    prefix = tokenizer.encode(prompt_text(tokenizer, prompt), add_special_tokens=False)
    body = tokenizer.encode(completion, add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        body.append(tokenizer.eos_token_id)
    keep = max(1, max_len - len(body))
    prefix = prefix[-keep:]
    ids = (prefix + body)[-max_len:]
    labels = ([IGNORE] * len(prefix) + body)[-max_len:]
    return {"input_ids": ids, "labels": labels}


def margins(
    nll: Callable[[list[dict[str, list[int]]]], list[tuple[float, int]]],
    tokenizer: Any,
    pairs: list[Pair],
    max_len: int = 512,
) -> list[float]:
    """log p(chosen) − log p(rejected), summed over each completion's tokens, per pair; `nll`
    scores encoded items (a side's `nll`)."""
    items = []
    for p in pairs:
        items.append(encode_pair_side(tokenizer, p.prompt, p.chosen, max_len))
        items.append(encode_pair_side(tokenizer, p.prompt, p.rejected, max_len))
    scores: list[float] = []
    for start in range(0, len(items), 8):
        scores += [n for n, _ in nll(items[start : start + 8])]
    return [scores[2 * i + 1] - scores[2 * i] for i in range(len(pairs))]


def pair_margins(model: Any, tokenizer: Any, pairs: list[Pair], max_len: int = 512) -> list[float]:
    """`margins` of a loaded model."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return margins(lambda batch: token_nll(model, batch, pad), tokenizer, pairs, max_len)


def margin_summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"pairs": 0, "prefers_chosen": None, "mean_margin": None}
    return {
        "pairs": len(values),
        "prefers_chosen": round(sum(m > 0 for m in values) / len(values), 4),
        "mean_margin": round(sum(values) / len(values), 4),
    }


def held_out_picks(ws: Workspace, run_info: dict[str, Any]) -> Picks:
    """The held-out picks for a run: those its distill kept back, else the most recent share."""
    from selftune.store.samples import SampleLog
    from selftune.twin import Twin
    from selftune.use import guard_for

    reviewed = SampleLog(ws.store_path).reviewed()
    recorded = (run_info.get("distill") or {}).get("held_out_samples")
    if recorded is not None:
        held = [s for s in reviewed if s["id"] in set(recorded)]
    else:
        trained = set((run_info.get("distill") or {}).get("trained_samples") or [])
        _, held = split_held_out(
            [s for s in reviewed if s["id"] not in trained], ws.config.improve.held_out
        )
    guard = guard_for(ws, training=True)
    return build_picks(held, Twin.from_config(ws.config), tags_of(ws.config), guard)


def picks_section(
    ws: Workspace,
    run_dir: Any,
    base: Any,
    tuned: Any,
    max_len: int = 512,
    budget: EvalBudget | None = None,
) -> dict[str, Any]:
    """Before (the parent's tuned side, or this run's base) vs after (this run's tuned side) on
    held-out pairs, and the ranker."""
    from selftune.artefacts import RunDir
    from selftune.evaluation.compared_models import load_sides
    from selftune.scoring.ranker import load_ranker, pairwise_accuracy

    budget = budget or unlimited()
    run = RunDir(run_dir)
    info = run.info()
    held = held_out_picks(ws, info)
    out: dict[str, Any] = {
        "held_out_samples": len(held.samples),
        "held_out_pairs": len(held.pairs),
        "distilled": bool(info.get("distill")),
        "method": (info.get("distill") or {}).get("method"),
    }
    if not held.pairs:
        out["note"] = (
            "no held-out chosen-vs-rejected pairs yet: `selftune amplify`, then review with "
            "`selftune review` (the most recent picks are held out)"
        )
        return out
    parent_id = info.get("parent")
    before_side = load_sides(ws.artefacts.run(parent_id).path)[1] if parent_id else base
    out["before"] = {"model": parent_id or "base"}
    before: list[float] = []
    after: list[float] = []
    scored: list[Pair] = []
    for chunk in budget.chunks("picks", held.pairs, PAIR_CHUNK, unit="held-out pairs"):
        scored += chunk
        before += margins(before_side.nll, tuned.tokenizer, chunk, max_len)
        after += margins(tuned.nll, tuned.tokenizer, chunk, max_len)
    out["before"] |= margin_summary(before)
    out["after"] = {"model": run.id} | margin_summary(after)
    b, a = out["before"], out["after"]
    out["beats_before"] = (a["prefers_chosen"], a["mean_margin"]) > (
        b["prefers_chosen"],
        b["mean_margin"],
    )
    if parent_id:
        out["authorship"] = fresh_authorship(ws, run, before_side, tuned, budget)
    ranker = load_ranker(ws.root)
    if ranker is not None:
        out["ranker"] = {
            "held_out_accuracy": pairwise_accuracy(ranker.scores, scored),
            "trained": ranker.info.get("trained"),
        }
    return out


def fresh_authorship(
    ws: Workspace, run: Any, before: Any, after: Any, budget: EvalBudget
) -> dict[str, Any]:
    """Share of fresh replies to held-out contexts the authorship classifier takes for the
    owner's: the parent's (before) vs the distilled run's (after), both through their sides."""
    dataset = ws.artefacts.dataset_of(run)
    train, valid = dataset.read_split("train"), dataset.read_split("valid")
    settings = ws.config.eval
    contexts = held_out_contexts(valid or train, max(2, settings.contexts // 3), settings.seed)
    try:
        classifier = authorship.fit(*authorship.chat_messages(train), seed=settings.seed)
    except Exception as exc:  # too few chats: say so instead of failing the report
        return {"note": str(exc)}
    replies: dict[str, list[str]] = {"before": [], "after": []}
    asked = list(enumerate(contexts))
    chunks = budget.chunks("picks_replies", asked, unit="held-out messages")
    done = 0
    for i, c in (x for chunk in chunks for x in chunk):
        done += 1
        for name, side in (("before", before), ("after", after)):
            replies[name] += side.chat(
                c["context"], 1, settings.temperature, settings.max_new_tokens, settings.seed + i
            )
    out: dict[str, Any] = {"contexts": done}
    for name, texts in replies.items():
        out[name] = authorship.taken_for_owner(classifier, texts)
    return out


def plan(ctx: EvalContext) -> list[str] | None:
    if ctx.ws is None:  # it reads the store's reviews: only `run_eval` has a workspace
        return None
    return ["picks", "picks_replies"]


def run(ctx: EvalContext) -> dict[str, Any]:
    assert ctx.ws is not None
    ws = ctx.ws
    section = ctx.timed(
        "picks",
        lambda: picks_section(ws, ctx.run_dir, ctx.base, ctx.tuned, ctx.max_len, ctx.budget),
    )
    return {"picks": section}


def html(report: dict[str, Any]) -> str:
    return picks_html(report["picks"]) if report.get("picks") else ""


def picks_html(section: dict[str, Any]) -> str:
    """The report page's picks section."""
    import html

    h = ["<h2>Picks: does the twin prefer what you pick?</h2>"]
    if not section.get("held_out_pairs"):
        h.append(f"<p>{html.escape(section.get('note', 'No held-out picks yet.'))}</p>")
        return "\n".join(h)
    h.append(
        f"<p>{section['held_out_pairs']} chosen-vs-rejected pairs from {section['held_out_samples']} "
        "held-out samples (your most recent picks, never trained on): how often the model gives "
        "your pick the higher likelihood, and the mean log-likelihood margin.</p>"
    )
    rows = []
    for key in ("before", "after"):
        side = section.get(key) or {}
        if side.get("pairs"):
            share = side["prefers_chosen"]
            rows.append(
                f"<tr><td>{key} ({html.escape(str(side.get('model')))})</td>"
                f"<td>{share:.0%}</td><td>{side['mean_margin']:.3f}</td></tr>"
            )
    h.append(
        "<table><tr><th>model</th><th>prefers your pick</th><th>mean margin</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    if "beats_before" in section:
        verdict = (
            "prefers your picks more"
            if section["beats_before"]
            else "does not prefer your picks more"
        )
        h.append(
            f"<p>On these held-out picks the run <b>{verdict}</b> than "
            f"{html.escape(str(section['before'].get('model')))} did.</p>"
        )
    if section.get("ranker"):
        acc = section["ranker"]["held_out_accuracy"]
        h.append(f"<p>Preference ranker, pairwise accuracy on these pairs: <b>{acc:.0%}</b>.</p>")
    a = section.get("authorship") or {}
    if a.get("before") and a.get("after"):
        h.append(
            f"<p>Fresh replies to {a['contexts']} held-out messages taken for yours: before "
            f"{a['before']['taken_for_owner']}, after {a['after']['taken_for_owner']}.</p>"
        )
    return "\n".join(h)


SECTION = Section("picks", frozenset({"picks"}), plan, run, html)
