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
    """Rows: reply tokens; columns: the last ``max_cols`` context tokens; darker = more attention."""
    parts = attention_parts(attention)
    if parts is None:
        return "<p>No attention recorded for this reply.</p>"
    source, target, weights = parts
    start = max(0, len(source) - max_cols)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in source[start:])
    rows = []
    for token, row in zip(target, weights):
        cells = []
        for w in row[start:]:
            level = max(0.0, min(1.0, w))
            cells.append(f'<td style="background:rgba(220,60,40,{level:.2f})" title="{w:.3f}">&nbsp;</td>')
        rows.append(f'<tr><th class="row">{html.escape(token)}</th>{"".join(cells)}</tr>')
    return f'<div style="overflow-x:auto"><table class="heatmap"><tr><th></th>{head}</tr>{"".join(rows)}</table></div>'
