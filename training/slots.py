"""Slot values of a message: the surface strings an importer marked in its metadata (SGD slot spans).

A leaf module: the corpus readers (``training.sources``) and the store exporter (``training.export``)
both need it, and the reader also runs the exporter, so it cannot live in either without a cycle.
"""

from __future__ import annotations

from typing import Any


def slot_values(text: str, meta: dict[str, Any] | None) -> tuple[str, ...]:
    """Surface strings of the slot spans the SGD importer keeps in message metadata."""
    values: list[str] = []
    for span in (meta or {}).get("slots") or []:
        try:
            value = text[int(span["start"]) : int(span["exclusive_end"])]
        except (KeyError, TypeError, ValueError):
            continue
        if value.strip() and value not in values:
            values.append(value)
    return tuple(values)
