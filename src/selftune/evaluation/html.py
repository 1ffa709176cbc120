"""The evaluation report as files: reports/<id>/report.json (the numbers), report.html (the same
numbers with plots as inline SVG: no script, no fonts, nothing fetched) and blind_pairs.jsonl
(real vs generated reply for the same context, for the "which one is real?" game).

The verdict sentence at the top is written from the numbers by `verdict`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from selftune.artefacts import ReportDir

IMPROVES = 0.95  # tuned perplexity below 95% of the base's counts as closer
TRUSTED_ACCURACY = 0.6  # an authorship classifier at or below chance says nothing


def _label(source: str) -> str:
    names = {"whatsapp": "WhatsApp", "mail": "email", "email": "email", "imessage": "iMessage"}
    if source.startswith("notes:"):
        return "notes"
    return names.get(source, source.capitalize())


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
            said.append("Sounds like you on " + _join(sorted({_label(s) for s in good})))
        if not_yet:
            said.append(
                ("not yet on " if good else "Not yet like you on ")
                + _join(sorted({_label(s) for s in not_yet}))
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


def blind_results(folder: Path) -> dict[str, Any] | None:
    """Summary of "which one is real?" guesses stored beside the pairs, if any."""
    guesses = ReportDir(folder).blind_guesses()
    if not guesses:
        return None
    correct = sum(bool(g.get("correct")) for g in guesses)
    return {"guesses": len(guesses), "real_spotted": round(correct / len(guesses), 4)}


def write_report(folder: Path, report: dict[str, Any]) -> None:
    """Write report.json, report.html and blind_pairs.jsonl into `folder`."""
    pairs = report.pop("_blind_pairs", None)
    if pairs:
        report["blind_pairs"] = ReportDir(folder).write_blind_pairs(pairs)
    blind = blind_results(folder)
    if blind:
        report["blind_test"] = blind
    ReportDir(folder).write_report(report, render_html(report))


def refresh_report(folder: Path) -> dict[str, Any]:
    """Re-read report.json (with any new blind-test results) and rewrite report.html."""
    report = ReportDir(folder).report()
    blind = blind_results(folder)
    if blind:
        report["blind_test"] = blind
    write_report(folder, report)
    return report


# --- plots -------------------------------------------------------------------------------

COLOURS = {
    "base": "#9aa5b1",
    "tuned": "#2b7a78",
    "real": "#d17b0f",
    "train": "#2b7a78",
    "valid": "#d17b0f",
}


def bar_chart(groups: dict[str, dict[str, float]], title: str, width: int = 560) -> str:
    """Grouped horizontal bars: group label -> series -> value."""
    series = sorted({s for g in groups.values() for s in g}, key=list(COLOURS).index)
    values = [v for g in groups.values() for v in g.values() if v is not None]
    if not values:
        return ""
    top = max(values) or 1.0
    row_h, bar_h, left = 14 * len(series) + 10, 12, 150
    height = 30 + row_h * len(groups) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="0" y="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for gi, (label, row) in enumerate(groups.items()):
        y0 = 28 + gi * row_h
        out.append(f'<text x="0" y="{y0 + 12}">{html.escape(label)}</text>')
        for si, name in enumerate(series):
            v = row.get(name)
            if v is None:
                continue
            w = max(1, (width - left - 60) * v / top)
            y = y0 + si * 14
            out.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLOURS.get(name, "#555")}"/>'
            )
            out.append(
                f'<text x="{left + w + 4:.1f}" y="{y + 10}" font-size="11">{name} {v:.3g}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def line_chart(
    lines: dict[str, list[list[float]]], title: str, width: int = 560, height: int = 220
) -> str:
    points = [p for pts in lines.values() for p in pts]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs) or 1, min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 40

    def sx(x: float) -> float:
        return pad + (width - 2 * pad) * (x - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return height - pad + (2 * pad - height) * (y - y0) / (y1 - y0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="0" y="14" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="0" y="{sy(y1) + 4:.0f}" font-size="11">{y1:.2f}</text>',
        f'<text x="0" y="{sy(y0) + 4:.0f}" font-size="11">{y0:.2f}</text>',
        f'<text x="{width - pad}" y="{height - 8}" font-size="11">step {x1:.0f}</text>',
    ]
    for li, (name, pts) in enumerate(lines.items()):
        if not pts:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        colour = COLOURS.get(name, "#555")
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(
            f'<text x="{width - 120}" y="{30 + 14 * li}" fill="{colour}" font-size="12">{name} loss</text>'
        )
    out.append("</svg>")
    return "".join(out)


# --- page --------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape("-" if v is None else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any]) -> str:
    from selftune.evaluation.style import STATS

    h: list[str] = []
    h.append(f'<p class="verdict">{html.escape(report.get("verdict", ""))}</p>')
    h.append(
        f"<p>Run <code>{html.escape(report['run'])}</code> on dataset <code>{html.escape(report['dataset'])}</code>, base {html.escape(str(report['base_model']))}; scored on the {html.escape(report['split'])} split.</p>"
    )
    curve = report.get("train", {}).get("curve", {})
    h.append("<h2>Training</h2>" + line_chart(curve, "Loss by step"))
    if "perplexity" in report:
        p = report["perplexity"]
        h.append("<h2>Is it me? Perplexity on your held-out words</h2>")
        h.append(
            f"<p>Lower is better: how surprised each model is by what you actually wrote ({report['scored_tokens']} of your tokens; context not scored).</p>"
        )
        groups = {"all": p} | {
            _label(s) + f" ({s})": r for s, r in report["perplexity_by_source"].items()
        }
        h.append(
            bar_chart(
                {k: {"base": v["base"], "tuned": v["tuned"]} for k, v in groups.items()},
                "Perplexity, base vs tuned",
            )
        )
        rows = [
            [s, r["base"], r["tuned"], r["tokens"]]
            for s, r in report["perplexity_by_source"].items()
        ]
        rows += [
            [f"kind: {k}", r["base"], r["tuned"], r["tokens"]]
            for k, r in report.get("perplexity_by_kind", {}).items()
        ]
        h.append(_table(["source / kind", "base", "tuned", "tokens"], rows))
    if "style" in report:
        s = report["style"]
        h.append(f"<h2>Style of replies to {report.get('contexts', 0)} held-out messages</h2>")
        h.append(
            "<p>Distance to your real replies in units of your own spread (0 = indistinguishable on these statistics).</p>"
        )
        d = s["distance"]
        h.append(
            _table(
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
                _table(
                    ["source", "base distance", "tuned distance", "contexts"],
                    [[k, v["base"], v["tuned"], v["contexts"]] for k, v in s["by_source"].items()],
                )
            )
    if "authorship" in report:
        a = report["authorship"]
        h.append("<h2>Authorship: taken for you?</h2>")
        h.append(
            f"<p>A {html.escape(a['classifier'])} classifier trained on {a['trained_on']['yours']} of your messages and {a['trained_on']['others']} of other people's; balanced accuracy on held-out real messages: <b>{_pct(a['held_out_accuracy'])}</b>.</p>"
        )
        h.append(
            _table(
                ["replies by", "taken for you", "mean P(you)", "replies"],
                [
                    [k, _pct(a[k]["taken_for_owner"]), a[k]["mean_probability"], a[k]["replies"]]
                    for k in ("real", "base", "tuned")
                ],
            )
        )
    if not report.get("contexts") and {"style", "authorship"} & set(report.get("sections", [])):
        h.append(
            "<h2>Style and authorship of replies</h2><p>No held-out chat messages to reply to: "
            "this twin's held-out writing is notes (below).</p>"
        )
    h.append(_notes_html(report))
    if "judge" in report:
        j = report["judge"]
        h.append(
            f"<h2>Context fit (judge: {html.escape(j['judge'])})</h2><p>Does the reply answer the message it follows? Mean score 0–1; your real replies are the reference.</p>"
        )
        h.append(
            _table(
                ["replies by", "mean score", "scored"],
                [[k, j[k]["mean"], j[k]["scored"]] for k in ("real", "base", "tuned")],
            )
        )
    if report.get("blind_test"):
        b = report["blind_test"]
        h.append(
            f"<h2>Blind test</h2><p>In {b['guesses']} guesses the real reply was spotted {_pct(b['real_spotted'])} of the time (50% = indistinguishable).</p>"
        )
    leaks = report.get("leaks")
    if leaks:
        h.append("<h2>Does it leak?</h2>")
        if "canaries" in leaks:
            c = leaks["canaries"]
            h.append(f"<h3>Canaries ({c['planted']} planted)</h3>")
            if c["rows"]:
                h.append(
                    _table(
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
                _table(
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
                _table(
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
    if report.get("picks"):
        from selftune.evaluation.picks import picks_html

        h.append(picks_html(report["picks"]))
    if report.get("memory"):
        from selftune.evaluation.memory import render_memory

        h.append(render_memory(report["memory"]))
    h.append(_budget_html(report))
    if report.get("timings_s"):
        h.append(
            "<h2>Timings</h2>"
            + _table(["section", "seconds"], [[k, v] for k, v in report["timings_s"].items()])
        )
    body = "\n".join(h)
    title = f"selftune report {html.escape(str(report.get('id', report['run'])))}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;max-width:880px;margin:2em auto;padding:0 1em;color:#1f2933}}
.verdict{{font-size:1.3em;background:#f0f4f8;padding:.8em;border-left:5px solid #2b7a78}}
table{{border-collapse:collapse;margin:.6em 0}}td,th{{border:1px solid #cbd2d9;padding:.25em .6em;text-align:left}}
svg{{display:block;margin:.5em 0;font-family:system-ui,sans-serif;font-size:12px}}</style></head>
<body><h1>{title}</h1>
{body}
<p><small>selftune {html.escape(str(report.get("selftune_version", "")))}. Everything in this page was computed on this machine.</small></p>
</body></html>
"""


def _notes_html(report: dict[str, Any]) -> str:
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
            _table(
                ["model", "style distance", "function words (Burrows' Delta)",
                 "words in your vocabulary"],
                [[k, d[k]["distance"], d[k]["function_words"], d[k]["vocab_overlap"]]
                 for k in ("base", "tuned")],
            )
        )  # fmt: skip
        h.append(
            _table(
                ["source", "base distance", "tuned distance", "notes"],
                [[k, v["base"], v["tuned"], v["prompts"]] for k, v in st["by_source"].items()],
            )
        )
    a = notes.get("authorship")
    if a and "skipped" in a:
        h.append(
            f"<h3>Authorship of the continuations</h3><p>Skipped: {html.escape(a['skipped'])}.</p>"
        )
    elif a:
        h.append("<h3>Authorship of the continuations: taken for yours?</h3>")
        h.append(
            f"<p>A {html.escape(a['classifier'])} classifier trained on "
            f"{a['trained_on']['yours']} passages of your training notes against "
            f"{a['trained_on']['base_continuations']} continuations the base model wrote for "
            f"training-note beginnings; balanced accuracy on the held-out notes (your real "
            f"continuations against the base's): <b>{_pct(a['held_out_accuracy'])}</b>.</p>"
        )
        h.append(
            _table(
                ["written by", "taken for you", "mean P(you)", "continuations"],
                [[k, _pct(a[k]["taken_for_owner"]), a[k]["mean_probability"], a[k]["replies"]]
                 for k in ("real", "base", "tuned")],
            )
        )  # fmt: skip
        rows = [
            [src, _pct(v["real"]), _pct(v["base"]), _pct(v["tuned"])]
            for src, v in a["by_source"].items()
        ]
        h.append(_table(["source", "real", "base", "tuned"], rows))
    for ex in notes.get("examples", [])[:2]:
        h.append(
            "<details><summary>An example</summary>"
            + _table(
                ["", "text"],
                [[k, ex.get(k)] for k in ("prompt", "real", "base", "tuned")],
            )
            + "</details>"
        )
    return "".join(h)


def _budget_html(report: dict[str, Any]) -> str:
    b = report.get("budget")
    if not b:
        return ""
    limit = f"{b['minutes']:g} minutes" if b.get("minutes") else "no time limit"
    h = [f"<h2>Time budget</h2><p>{limit}; used {b['used_s']:.0f} s.</p>"]
    rows = [
        [part, r["done"], r["asked"], r["unit"], r.get("allowed_s"), r.get("seconds")]
        for part, r in b["parts"].items()
    ]
    h.append(_table(["part", "done", "asked", "of", "allowed s", "took s"], rows))
    if b["left_out"]:
        h.append(
            "<p>Left out to stay within the budget (raise <code>--minutes</code> for more):</p><ul>"
            + "".join(f"<li>{html.escape(x)}</li>" for x in b["left_out"])
            + "</ul>"
        )
    return "".join(h)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"
