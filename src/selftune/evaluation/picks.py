"""The report's picks section: does the twin now prefer what its owner picks?

On held-out picks (the most recent `improve.held_out` share of reviewed samples, which distill
never trains on — for a distilled run, exactly the ones it recorded as held out): how often the
model gives the chosen candidate a higher log-likelihood than a rejected one, and the mean
margin, for the run's parent (before) and the run (after); the preference ranker's pairwise
accuracy on the same pairs. A run that was not distilled is compared with its base.
"""

from __future__ import annotations

from typing import Any

from selftune.training.encoding import IGNORE


def encode_pair_side(
    tokenizer: Any, prompt: Any, completion: str, max_len: int
) -> dict[str, list[int]]:
    """ids and labels for `completion` after `prompt` (labels only on the completion and its
    end token), rendered as distill trains them."""
    from selftune.improve.amplify import render_prompt

    prefix = tokenizer.encode(render_prompt(tokenizer, prompt), add_special_tokens=False)
    body = tokenizer.encode(completion, add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        body.append(tokenizer.eos_token_id)
    keep = max(1, max_len - len(body))
    prefix = prefix[-keep:]
    ids = (prefix + body)[-max_len:]
    labels = ([IGNORE] * len(prefix) + body)[-max_len:]
    return {"input_ids": ids, "labels": labels}


def pair_margins(model: Any, tokenizer: Any, pairs: list[Any], max_len: int = 512) -> list[float]:
    """log p(chosen) − log p(rejected), summed over each completion's tokens, per pair."""
    from selftune.evaluation.perplexity import token_nll

    if not pairs:
        return []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    items = []
    for p in pairs:
        items.append(encode_pair_side(tokenizer, p.prompt, p.chosen, max_len))
        items.append(encode_pair_side(tokenizer, p.prompt, p.rejected, max_len))
    nll: list[float] = []
    for start in range(0, len(items), 8):
        nll += [n for n, _ in token_nll(model, items[start : start + 8], pad)]
    return [nll[2 * i + 1] - nll[2 * i] for i in range(len(pairs))]


def margin_summary(margins: list[float]) -> dict[str, Any]:
    if not margins:
        return {"pairs": 0, "prefers_chosen": None, "mean_margin": None}
    return {
        "pairs": len(margins),
        "prefers_chosen": round(sum(m > 0 for m in margins) / len(margins), 4),
        "mean_margin": round(sum(margins) / len(margins), 4),
    }


def held_out_picks(ws: Any, run_info: dict[str, Any]) -> Any:
    """The held-out picks for a run: those its distill kept back, else the most recent share."""
    from selftune.improve.picks import build_picks, guard_of, split_held_out, tags_of
    from selftune.store.samples import SampleLog
    from selftune.twin import Twin

    reviewed = SampleLog(ws.store_path).reviewed()
    recorded = (run_info.get("distill") or {}).get("held_out_samples")
    if recorded is not None:
        held = [s for s in reviewed if s["id"] in set(recorded)]
    else:
        trained = set((run_info.get("distill") or {}).get("trained_samples") or [])
        _, held = split_held_out(
            [s for s in reviewed if s["id"] not in trained], ws.config.improve.held_out
        )
    guard = guard_of(ws)
    return build_picks(held, Twin.from_config(ws.config), tags_of(ws.config), guard)


def picks_section(ws: Any, run_dir: Any, max_len: int = 512) -> dict[str, Any]:
    """Before (parent, or base) vs after (this run) on held-out pairs, and the ranker."""
    from selftune.artefacts import RunDir
    from selftune.improve.ranker import load_ranker, pairwise_accuracy
    from selftune.models import load_tuned

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
    after_model, tokenizer = load_tuned(run.path)
    after = pair_margins(after_model, tokenizer, held.pairs, max_len)
    parent_id = info.get("parent")
    if parent_id:
        before_model, _ = load_tuned(ws.artefacts.run(parent_id).path)
        out["before"] = {"model": parent_id}
        before = pair_margins(before_model, tokenizer, held.pairs, max_len)
    elif hasattr(after_model, "disable_adapter"):
        out["before"] = {"model": "base"}
        with after_model.disable_adapter():
            before = pair_margins(after_model, tokenizer, held.pairs, max_len)
    else:  # a full fine-tune that was not distilled: nothing to compare with here
        out["before"] = {"model": None}
        before = []
    out["before"] |= margin_summary(before)
    out["after"] = {"model": run.id} | margin_summary(after)
    if before:
        b, a = out["before"], out["after"]
        out["beats_before"] = (a["prefers_chosen"], a["mean_margin"]) > (
            b["prefers_chosen"],
            b["mean_margin"],
        )
    if parent_id:
        out["authorship"] = fresh_authorship(ws, run, before_model, after_model, tokenizer)
    ranker = load_ranker(ws.root)
    if ranker is not None:
        out["ranker"] = {
            "held_out_accuracy": pairwise_accuracy(ranker.scores, held.pairs),
            "trained": ranker.info.get("trained"),
        }
    return out


def fresh_authorship(ws: Any, run: Any, before: Any, after: Any, tokenizer: Any) -> dict[str, Any]:
    """Share of fresh replies to held-out contexts the authorship classifier takes for the
    owner's: the parent's (before) vs the distilled run's (after)."""
    from selftune.engines.base import render_chat
    from selftune.engines.generate import sample
    from selftune.evaluation import authorship
    from selftune.evaluation.report import held_out_contexts

    dataset = ws.artefacts.dataset_of(run)
    train, valid = dataset.read_split("train"), dataset.read_split("valid")
    settings = ws.config.eval
    contexts = held_out_contexts(valid or train, max(2, settings.contexts // 3), settings.seed)
    try:
        classifier = authorship.fit(*authorship.chat_messages(train), seed=settings.seed)
    except Exception as exc:  # too few chats: say so instead of failing the report
        return {"note": str(exc)}
    out: dict[str, Any] = {"contexts": len(contexts)}
    for name, model in (("before", before), ("after", after)):
        replies = [
            r
            for i, c in enumerate(contexts)
            for r in sample(
                model,
                tokenizer,
                render_chat(tokenizer, c["context"]),
                n=1,
                temperature=settings.temperature,
                max_tokens=settings.max_new_tokens,
                seed=settings.seed + i,
            )
        ]
        out[name] = authorship.taken_for_owner(classifier, replies)
    return out


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
