"""Attention heatmap as an HTML table: every token is escaped text, so a message can never inject markup."""

from __future__ import annotations

import html
from typing import Any


def attention_parts(attention: Any) -> tuple[list[str], list[str], list[list[float]]] | None:
    """``(context tokens, reply tokens, weights[reply][context])`` from the stored attention, if usable."""
    if isinstance(attention, dict):
        weights = attention.get("weights") or attention.get("attention")
        source = [str(t) for t in attention.get("source") or attention.get("source_tokens") or []]
        target = [str(t) for t in attention.get("target") or attention.get("target_tokens") or []]
    elif isinstance(attention, list):
        weights, source, target = attention, [], []
    else:
        return None
    if not weights or not isinstance(weights, list) or not all(isinstance(r, list) for r in weights):
        return None
    width = max(len(r) for r in weights)
    source = source or [f"#{i}" for i in range(width)]
    target = target or [f"#{i}" for i in range(len(weights))]
    return source[:width], target[: len(weights)], [[float(x) for x in r] for r in weights]


def heatmap_html(attention: Any, max_cols: int = 60) -> str:
    """Rows: reply words; columns: the last ``max_cols`` context words (as column headers); each cell shows
    the weight in percent as text as well as by its shade, and a legend explains the scale, so nothing is
    told by colour alone."""
    parts = attention_parts(attention)
    if parts is None:
        return "<p>No attention recorded for this reply.</p>"
    source, target, weights = parts
    start = max(0, len(source) - max_cols)
    head = "".join(f'<th scope="col" class="word"><span>{html.escape(t)}</span></th>' for t in source[start:])
    rows = []
    for token, row in zip(target, weights):
        cells = []
        for w in row[start:]:
            level = max(0.0, min(1.0, w))
            ink = "#fff" if level > 0.55 else "#111"
            cells.append(f'<td style="background:rgba(190,40,20,{level:.2f});color:{ink}" title="{w:.3f}">'
                         f"{round(level * 100)}</td>")
        rows.append(f'<tr><th scope="row" class="row">{html.escape(token)}</th>{"".join(cells)}</tr>')
    legend = ('<div class="heatmap-legend" aria-hidden="false">Attention of each reply word (row) to each '
              'conversation word (column), in percent: '
              '<span class="scale" style="display:inline-block;width:120px;height:12px;vertical-align:middle;'
              'background:linear-gradient(to right, rgba(190,40,20,0), rgba(190,40,20,1));border:1px solid #888">'
              '</span> 0 → 100 (darker = more)</div>')
    table = (f'<table class="heatmap"><caption>Rows: reply words · columns: conversation words</caption>'
             f'<tr><th scope="col">reply ↓ / context →</th>{head}</tr>{"".join(rows)}</table>')
    return f'<div class="heatmap-wrap" style="overflow-x:auto">{legend}{table}</div>'
