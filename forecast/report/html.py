"""The self-contained HTML report: tables and PNG figures in one file that opens offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from .tables import METRIC_LABELS, format_value

def html_report(path: Path, title: str, intro: list[str], tables: list[tuple[str, pd.DataFrame]],
                figures: list[tuple[str, Path]]) -> Path:
    """One HTML file with the tables and the PNGs embedded (base64): opens offline."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}"
             ".note{color:#555}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in intro]
    for heading, frame in tables:
        shown = frame.copy()
        for col in shown.columns:
            shown[col] = [format_value(v, col) for v in shown[col]]
        shown.columns = [METRIC_LABELS.get(c, c) for c in shown.columns]
        parts += [f"<h2>{html.escape(heading)}</h2>", shown.to_html(index=False, escape=True, border=0)]
    for heading, png in figures:
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        parts += [f"<h2>{html.escape(heading)}</h2>", f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{data}'>"]
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
