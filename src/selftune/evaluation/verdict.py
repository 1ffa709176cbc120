"""The verdict at the top of the report and of the CLI's summary, written from the report's numbers.

It claims only what was measured, and every sentence names the evidence it rests on:
- held-out perplexity alone says the twin is *closer to your words than the base* (the ratio),
  never that it sounds like you;
- style distances say *style closer to yours*, with the two distances;
- "sounds like you" needs an authorship classifier that tells the owner's real text from the
  "not you" class above chance (held-out balanced accuracy ≥ `TRUSTED_ACCURACY`) and that takes
  at least half of the tuned model's texts for the owner's, more than the base's; a classifier at
  chance is said to be at chance, and nothing is concluded from it;
- the memory section's facts stated and contradicted, the picks section's win rate, then leaks.
"""

from __future__ import annotations

from typing import Any

from selftune.evaluation.charts import source_label

IMPROVES = 0.95  # tuned perplexity below 95% of the base's counts as closer
TRUSTED_ACCURACY = 0.6  # an authorship classifier below this is at chance and says nothing
SOUNDS_LIKE = 0.5  # the share of tuned texts taken for the owner's that "sounds like you" needs


def perplexity_sentence(report: dict[str, Any]) -> str | None:
    """'Closer to your words than the base on WhatsApp (perplexity 0.56x)', per source."""
    by_source = report.get("perplexity_by_source") or {}
    closer, not_closer = [], []
    for source, r in sorted(by_source.items()):
        if not r.get("tuned") or not r.get("base"):
            continue
        ratio = r["tuned"] / r["base"]
        words = f"{source_label(source)} (perplexity {ratio:.2f}x)"
        (closer if ratio < IMPROVES else not_closer).append(words)
    said = []
    if closer:
        said.append("Closer to your words than the base on " + _join(closer))
    if not_closer:
        said.append(("not closer on " if closer else "Not closer to your words than the base on ")
                    + _join(not_closer))  # fmt: skip
    if not said:
        return None
    return ", ".join(said)


def style_sentence(style: dict[str, Any], what: str) -> str | None:
    distance = (style or {}).get("distance", {})
    if distance.get("base", {}).get("distance") is None:
        return None
    b, t = distance["base"]["distance"], distance["tuned"]["distance"]
    return (
        f"{what} style {'closer to' if t < b else 'no closer to'} yours than the base's "
        f"(style distance {b:.2f} → {t:.2f})"
    )


def authorship_sentence(auth: dict[str, Any], where: str, texts: str) -> str | None:
    """'Sounds like you in chats' only with a classifier above chance that takes most tuned texts
    for the owner's; otherwise what the classifier did show, or that it is at chance."""
    if not auth or auth.get("tuned", {}).get("taken_for_owner") is None:
        return None
    accuracy = auth.get("held_out_accuracy")
    tuned, base = auth["tuned"]["taken_for_owner"], auth["base"]["taken_for_owner"]
    against = auth.get("not_you", "other people's writing")
    if accuracy is None or accuracy < TRUSTED_ACCURACY:
        return (
            f"the authorship classifier for {where} is at chance (it tells your real {texts} "
            f"from {against} {accuracy or 0:.0%} of the time), so it says nothing about "
            "whether the twin sounds like you"
        )
    evidence = (
        f"an authorship classifier that tells your {texts} from {against} "
        f"{accuracy:.0%} of the time takes {tuned:.0%} of the tuned model's for yours "
        f"(base {base:.0%}, your real ones {auth['real']['taken_for_owner']:.0%})"
    )
    if tuned >= SOUNDS_LIKE and tuned > base:
        return f"Sounds like you in {where}: {evidence}"
    return f"Not yet like you in {where}: {evidence}"


def memory_sentence(memory: dict[str, Any]) -> str | None:
    stated = (memory or {}).get("fact_probes", {}).get("facts_stated") or {}
    row, bare = stated.get("tuned_with_memory"), stated.get("tuned_without_memory")
    if not row or not row.get("probes"):
        return None
    return (
        f"with memory the tuned twin stated {row['stated']} of {row['probes']} of your public "
        f"facts when a friend asked, in most answers (contradicted {row['contradicted']}"
        + (f"; without memory it stated {bare['stated']})" if bare else ")")
    )


def leak_sentence(leaks: dict[str, Any]) -> str | None:
    words = []
    if "canaries" in leaks:
        c = leaks["canaries"]
        if not c["planted"]:
            words.append("no canaries planted (build with --canaries K to test memorisation)")
        elif c["flagged"]:
            words.append(f"{c['flagged']} of {c['planted']} canaries LEAKED")
        else:
            words.append(f"no canary leaked ({c['planted']} planted)")
    if "regurgitation" in leaks:
        r = leaks["regurgitation"]
        copies = r["verbatim"] + r.get("free_sampling", {}).get("verbatim", 0)
        words.append(f"{copies} verbatim cop{'y' if copies == 1 else 'ies'} of training text")
    if "pii" in leaks:
        p = leaks["pii"]
        emitted = p["free"]["private_emissions"] + p["probes"]["private_emissions"]
        words.append(
            "no private fact or known personal value emitted"
            if not emitted
            else f"{emitted} private value(s) EMITTED"
        )
    return "Leaks: " + "; ".join(words) if words else None


def verdict(report: dict[str, Any]) -> str:
    """A few sentences, each naming its evidence: perplexity, style, authorship, facts, leaks."""
    notes = report.get("notes", {})
    found = [
        perplexity_sentence(report),
        style_sentence(report.get("style", {}), "The replies'"),
        authorship_sentence(report.get("authorship", {}), "chats", "messages"),
        style_sentence(notes.get("style", {}), "The notes'"),
        authorship_sentence(notes.get("authorship", {}), "notes", "note passages"),
        memory_sentence(report.get("memory", {})),
    ]
    parts = [_capital(s) for s in found if s]
    text = ". ".join(parts) if parts else "No 'is it me?' section was run"
    leaks = leak_sentence(report.get("leaks", {}))
    if leaks:
        text += ". " + leaks
    return text + "."


def _capital(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
