"""The building blocks of report.html, shared by the page and every section's part of it: inline
SVG bar and line charts (no script, no fonts, nothing fetched), tables and labels."""

from __future__ import annotations

import html
from typing import Any

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


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape("-" if v is None else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def source_label(source: str) -> str:
    names = {"whatsapp": "WhatsApp", "mail": "email", "email": "email", "imessage": "iMessage"}
    if source.startswith("notes:"):
        return "notes"
    return names.get(source, source.capitalize())
