"""What all importers share: finding the input files, per-file error isolation, field checks.

An importer is a function ``(path, language) -> Iterator[ConversationRecord | BadRecord]``. It never
raises for bad data: each problem becomes a ``BadRecord`` naming file and position, and the ingest
writer decides whether that aborts the whole import (the default) or is reported and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.importers.records import BadRecord, ConversationRecord, ImportFormatError, MessageRecord

Item = ConversationRecord | BadRecord
Importer = Callable[[Path, "str | None"], Iterator[Item]]


def expand_files(path: Path, patterns: Iterable[str], what: str) -> list[Path]:
    """The file itself, or the files in a directory matching ``patterns``, in a stable order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImportFormatError(path, "", "no such file or directory")
    files = sorted({f for pattern in patterns for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise ImportFormatError(path, "", f"no {what} files ({', '.join(patterns)}) in this directory")
    return files


def per_file(files: list[Path], read_one: Callable[[Path], Iterator[Item]]) -> Iterator[Item]:
    """Read each file; a file-level failure becomes one BadRecord and the next file still runs."""
    for file in files:
        try:
            yield from read_one(file)
        except ImportFormatError as exc:
            yield BadRecord(exc)


def build_each(items: Iterable[tuple[str, Any]], build: Callable[[Any, str], ConversationRecord]) -> Iterator[Item]:
    """``build(obj, position)`` for each (position, raw record); a bad record becomes a BadRecord."""
    for position, obj in items:
        try:
            yield build(obj, position)
        except ImportFormatError as exc:
            yield BadRecord(exc)


def field(obj: Any, key: str, kind: type | tuple[type, ...], path: Path, position: str, hint: str = "") -> Any:
    """``obj[key]`` checked for presence and type, or a clear ImportFormatError."""
    if not isinstance(obj, dict):
        raise ImportFormatError(path, position, f"expected a JSON object, found {type(obj).__name__}{hint}")
    if key not in obj:
        raise ImportFormatError(path, position, f"missing field {key!r}{hint}")
    value = obj[key]
    if not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ImportFormatError(path, position, f"field {key!r} should be {names}, found {type(value).__name__}")
    return value


def add_turn(record: ConversationRecord, role: str, text: Any, path: Path, position: str,
             created_at: datetime | None = None, meta: dict[str, Any] | None = None) -> None:
    """Append a message; an empty or whitespace-only turn is counted as skipped, not an error."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ImportFormatError(path, position, f"turn text should be a string, found {type(text).__name__}")
    if not text.strip():
        record.skipped_turns += 1
        return
    record.messages.append(MessageRecord(role=role, text=text, created_at=created_at, meta=meta or {}))


def parse_time(value: Any, path: Path, position: str) -> datetime | None:
    """ISO-8601 timestamps; naive values are taken as UTC so every stored time is comparable."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ImportFormatError(path, position, f"created_at should be an ISO-8601 string, found {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ImportFormatError(path, position, f"created_at is not an ISO-8601 time: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_language(value: Any, path: Path, position: str) -> str:
    if not isinstance(value, str) or not (2 <= len(value.strip()) <= 12):
        raise ImportFormatError(path, position, f"language should be a code like 'en' or 'zh', found {value!r}")
    return value.strip().lower()
