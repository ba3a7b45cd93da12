"""CSV transcripts: ``conversation_id,role,text[,language,created_at]``.

The first row is a header naming the columns (any order; ``language`` and ``created_at`` optional).
Rows of one conversation must be contiguous, in message order. Roles: customer | agent | bot | system.
External id: ``conversation_id``; source ``csv``. ``created_at`` is ISO-8601 (naive = UTC).
"""

from __future__ import annotations

import csv as _csv
from collections.abc import Iterator
from pathlib import Path

from training.importers.base import Item, add_turn, check_language, expand_files, parse_time, per_file
from training.importers.reading import iter_lines, open_text
from training.importers.records import ROLES, BadRecord, ConversationRecord, ImportFormatError

SOURCE = "csv"
REQUIRED = ("conversation_id", "role", "text")
OPTIONAL = ("language", "created_at")


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(path, ("*.csv", "*.csv.gz"), "CSV")
    return per_file(files, lambda f: _read_file(f, language))


def _read_file(path: Path, language: str | None) -> Iterator[Item]:
    with open_text(path) as text:
        rows = _csv.reader((line + "\n" for _, line in iter_lines(path, text)), strict=True)
        try:
            header = next(rows, None)
            if header is None or not any(h.strip() for h in header):
                raise ImportFormatError(path, "line 1", "file is empty (no header row)")
            columns = _columns(header, path)
            current: ConversationRecord | None = None
            bad_id: str | None = None  # a conversation already reported bad: drop its remaining rows
            finished: set[str] = set()
            while True:
                try:
                    row = next(rows, None)
                except _csv.Error as exc:
                    raise ImportFormatError(path, f"line {rows.line_num}", f"malformed CSV: {exc}") from exc
                if row is None:
                    break
                if not any(cell.strip() for cell in row):
                    continue
                position = f"line {rows.line_num}"
                try:
                    if len(row) != len(header):
                        raise ImportFormatError(path, position, f"expected {len(header)} columns, found {len(row)}")
                    cid = row[columns["conversation_id"]].strip()
                    if not cid:
                        raise ImportFormatError(path, position, "empty conversation_id")
                    if cid == bad_id:
                        continue
                    if current is None or cid != current.external_id:
                        if current is not None:
                            finished.add(current.external_id)
                            yield current
                            current = None
                        if cid in finished:
                            raise ImportFormatError(path, position, f"rows of conversation {cid!r} are not "
                                                    "contiguous; group each conversation's rows together")
                        lang = language or "en"
                        if "language" in columns and row[columns["language"]].strip():
                            lang = check_language(row[columns["language"]], path, position)
                        current = ConversationRecord(SOURCE, cid, lang, [], origin=f"{path} {position}")
                    role = row[columns["role"]].strip()
                    if role not in ROLES:
                        raise ImportFormatError(path, position, f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
                    created = parse_time(row[columns["created_at"]], path, position) if "created_at" in columns else None
                    add_turn(current, role, row[columns["text"]], path, position, created)
                except ImportFormatError as exc:
                    if current is not None and row and columns["conversation_id"] < len(row) \
                            and row[columns["conversation_id"]].strip() == current.external_id:
                        bad_id, current = current.external_id, None
                        finished.add(bad_id)
                    yield BadRecord(exc)
            if current is not None:
                yield current
        except _csv.Error as exc:
            raise ImportFormatError(path, f"line {rows.line_num}", f"malformed CSV: {exc}") from exc


def _columns(header: list[str], path: Path) -> dict[str, int]:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise ImportFormatError(path, "line 1", f"header is missing column(s) {', '.join(missing)}; expected "
                                f"{','.join(REQUIRED)}[,{','.join(OPTIONAL)}] (is this a transcript CSV?)")
    unknown = [name for name in names if name not in REQUIRED + OPTIONAL]
    if unknown:
        raise ImportFormatError(path, "line 1", f"unknown column(s) {', '.join(unknown)}")
    return {name: i for i, name in enumerate(names)}
