"""The evaluation report as files: reports/<id>/report.json (the numbers), report.html (the same
numbers with plots as inline SVG: no script, no fonts, nothing fetched) and blind_pairs.jsonl
(real vs generated reply for the same context, for the "which one is real?" game).

`render_html` only lays out the page: the verdict (`verdict`), the training curve, each
section's own part (`sections.SECTIONS`), the time budget and the timings; the folder's files
are written through `artefacts.ReportDir`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from selftune.artefacts import ReportDir
from selftune.evaluation.charts import line_chart, table
from selftune.evaluation.sections import SECTIONS


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


def render_html(report: dict[str, Any]) -> str:
    h: list[str] = []
    h.append(f'<p class="verdict">{html.escape(report.get("verdict", ""))}</p>')
    h.append(
        f"<p>Run <code>{html.escape(report['run'])}</code> on dataset <code>{html.escape(report['dataset'])}</code>, base {html.escape(str(report['base_model']))}; scored on the {html.escape(report['split'])} split.</p>"
    )
    curve = report.get("train", {}).get("curve", {})
    h.append("<h2>Training</h2>" + line_chart(curve, "Loss by step"))
    h += [part for section in SECTIONS if (part := section.html(report))]
    h.append(_budget_html(report))
    if report.get("timings_s"):
        h.append(
            "<h2>Timings</h2>"
            + table(["section", "seconds"], [[k, v] for k, v in report["timings_s"].items()])
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
    h.append(table(["part", "done", "asked", "of", "allowed s", "took s"], rows))
    if b["left_out"]:
        h.append(
            "<p>Left out to stay within the budget (raise <code>--minutes</code> for more):</p><ul>"
            + "".join(f"<li>{html.escape(x)}</li>" for x in b["left_out"])
            + "</ul>"
        )
    return "".join(h)
