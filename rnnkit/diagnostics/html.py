"""Pieces of the self-contained HTML report: page, tables, embedded images, coloured text.

Images are embedded as base64 ``data:`` URLs, so the report is one file that opens anywhere,
offline, and can be mailed or attached to an issue.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.name { text-align: left; }
td.good { background: #e3f4e3; } td.bad { background: #fbe5e5; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #555; font-size: 0.93em; }
.text { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px;
        white-space: pre-wrap; line-height: 1.6; border: 1px solid #ddd; padding: 0.6em; }
.text span { border-radius: 2px; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def escape(text) -> str:
    return html.escape(str(text), quote=True)


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def table(header: Sequence[str], rows: Sequence[Sequence], classes=None) -> str:
    """An HTML table; ``classes[i][j]`` (optional) is the CSS class of cell (i, j)."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            css = classes[i][j] if classes and classes[i][j] else ("name" if j == 0 else "")
            cells.append(f'<td class="{css}">{escape(value)}</td>' if css
                         else f"<td>{escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def details(summary: str, *parts: str) -> str:
    """A fold, closed until clicked: ``summary`` shows, ``parts`` open under it."""
    return f"<details><summary>{escape(summary)}</summary>{''.join(parts)}</details>"


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{escape(text)}</p>' if css else f"<p>{escape(text)}</p>"


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def page(title: str, intro: str, sections: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{intro}{''.join(sections)}</body></html>\n"
    )


def _background(value: float, signed: bool) -> str:
    """Blue for negative (or low), red for positive (or high), white at the middle."""
    if not math.isfinite(value):
        return "#ffffff"
    if not signed:
        value = 2.0 * value - 1.0  # a gate in [0, 1] -> [-1, 1]
    value = max(-1.0, min(1.0, value))
    fade = int(255 * (1.0 - abs(value)))
    return f"rgb(255,{fade},{fade})" if value >= 0 else f"rgb({fade},{fade},255)"


def coloured_text(tokens: Sequence[str], values: Sequence[float], signed: bool = True) -> str:
    """Each token on the background its value gives (Karpathy, Johnson & Fei-Fei 2015).

    ``signed``: values in [-1, 1] (a tanh cell); otherwise in [0, 1] (a gate). The value is
    shown when the pointer rests on a token.
    """
    spans = []
    for token, value in zip(tokens, values):
        shown = escape(token).replace("\n", "↵\n")
        spans.append(f'<span style="background:{_background(float(value), signed)}" '
                     f'title="{float(value):.3f}">{shown}</span>')
    return f'<div class="text">{"".join(spans)}</div>'
