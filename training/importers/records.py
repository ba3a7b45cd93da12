"""Plain records every importer yields and the ingest writer consumes.

Importers know file formats, not the database: they turn one source conversation into one
``ConversationRecord`` and stop there, so each format can be tested without a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROLES = ("customer", "bot", "agent", "system")


@dataclass(slots=True)
class MessageRecord:
    role: str
    text: str
    created_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ConversationRecord:
    source: str
    external_id: str
    language: str
    messages: list[MessageRecord]
    meta: dict[str, Any] = field(default_factory=dict)
    customer_id: str | None = None
    # Turns dropped for being empty or whitespace-only; the conversation itself is kept.
    skipped_turns: int = 0
    # Where the record came from, for error messages ("dialogues_001.json record 7").
    origin: str = ""


class ImportFormatError(ValueError):
    """Bad input, named by file and position so the user can find and fix it."""

    def __init__(self, path: Path | str, position: str, problem: str) -> None:
        self.path = str(path)
        self.position = position
        self.problem = problem
        where = f"{self.path} ({position})" if position else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(slots=True)
class BadRecord:
    """A record that failed validation, yielded instead of raised when the caller skips bad input."""

    error: ImportFormatError
