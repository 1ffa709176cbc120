"""The verdict at the top of the report and of the CLI's summary: one or two sentences in words,
written from the report's numbers (where the twin sounds like its owner, and what leaked)."""

from __future__ import annotations

from typing import Any

from selftune.evaluation.charts import source_label

IMPROVES = 0.95  # tuned perplexity below 95% of the base's counts as closer
TRUSTED_ACCURACY = 0.6  # an authorship classifier at or below chance says nothing


def verdict(report: dict[str, Any]) -> str:
    """One or two sentences in words: where the twin sounds like its owner, and what leaked."""
    parts = []
    by_source = report.get("perplexity_by_source") or {}
    good = [
        s
        for s, r in by_source.items()
        if r["tuned"] and r["base"] and r["tuned"] < IMPROVES * r["base"]
    ]
    not_yet = [s for s in by_source if s not in good]
    if by_source:
        said = []
        if good:
            said.append("Sounds like you on " + _join(sorted({source_label(s) for s in good})))
        if not_yet:
            said.append(
                ("not yet on " if good else "Not yet like you on ")
                + _join(sorted({source_label(s) for s in not_yet}))
            )
        parts.append(", ".join(said))
    style = report.get("style", {}).get("distance", {})
    if style.get("base", {}).get("distance") is not None:
        b, t = style["base"]["distance"], style["tuned"]["distance"]
        parts.append(
            f"style {'closer to' if t < b else 'no closer to'} yours than the base ({b:.2f} → {t:.2f})"
        )
    auth = report.get("authorship")
    if auth and auth["tuned"]["taken_for_owner"] is not None:
        parts.append(
            f"taken for you in {auth['tuned']['taken_for_owner']:.0%} of replies "
            f"(base {auth['base']['taken_for_owner']:.0%}, your real ones {auth['real']['taken_for_owner']:.0%})"
        )
    notes = report.get("notes", {})
    note_style = notes.get("style", {}).get("distance", {})
    if note_style.get("base", {}).get("distance") is not None:
        b, t = note_style["base"]["distance"], note_style["tuned"]["distance"]
        parts.append(
            f"notes' style {'closer to' if t < b else 'no closer to'} yours than the base "
            f"({b:.2f} → {t:.2f})"
        )
    note_auth = notes.get("authorship", {})
    trusted = (note_auth.get("held_out_accuracy") or 0) >= TRUSTED_ACCURACY
    if note_auth.get("tuned", {}).get("taken_for_owner") is not None and not trusted:
        parts.append(
            "authorship cannot tell your notes from the base model's continuations "
            f"(classifier accuracy {note_auth['held_out_accuracy']:.0%}), so it says nothing here"
        )
    elif note_auth.get("tuned", {}).get("taken_for_owner") is not None:
        parts.append(
            f"note continuations taken for yours {note_auth['tuned']['taken_for_owner']:.0%} "
            f"(base {note_auth['base']['taken_for_owner']:.0%}, "
            f"your real ones {note_auth['real']['taken_for_owner']:.0%})"
        )
    leaks = report.get("leaks", {})
    leak_words = []
    if "canaries" in leaks:
        c = leaks["canaries"]
        if not c["planted"]:
            leak_words.append("no canaries planted (build with --canaries K to test memorisation)")
        elif c["flagged"]:
            leak_words.append(f"{c['flagged']} of {c['planted']} canaries LEAKED")
        else:
            leak_words.append(f"no canary leaked ({c['planted']} planted)")
    if "regurgitation" in leaks:
        r = leaks["regurgitation"]
        copies = r["verbatim"] + r.get("free_sampling", {}).get("verbatim", 0)
        leak_words.append(f"{copies} verbatim cop{'y' if copies == 1 else 'ies'} of training text")
    if "pii" in leaks:
        p = leaks["pii"]
        emitted = p["free"]["private_emissions"] + p["probes"]["private_emissions"]
        leak_words.append(
            "no private fact or known personal value emitted"
            if not emitted
            else f"{emitted} private value(s) EMITTED"
        )
    text = "; ".join(parts) if parts else "No 'is it me?' section was run"
    if leak_words:
        text += ". Leaks: " + "; ".join(leak_words)
    return text + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
