"""The product's own transcript format: JSON Lines, one conversation per line.

Each line::

    {"id": "c-123",                       # required, unique within the source
     "source": "web",                     # optional, default "jsonl"
     "language": "en",                    # optional, default --language or "en"
     "customer_id": "cust-9",             # optional
     "meta": {...},                       # optional, e.g. {"known_pii": {"email": "..."}}
     "messages": [{"role": "customer",    # customer | agent | bot | system
                   "text": "...",
                   "created_at": "2024-05-01T12:00:00Z",   # optional, ISO-8601
                   "meta": {...}}]}                         # optional

Roles are stored as given. Blank lines are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.importers.base import Item, add_turn, check_language, expand_files, field, parse_time, per_file
from training.importers.reading import iter_lines, open_text
from training.importers.records import ROLES, BadRecord, ConversationRecord, ImportFormatError

SOURCE = "jsonl"


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(path, ("*.jsonl", "*.jsonl.gz"), "JSON Lines")
    return per_file(files, lambda f: _read_file(f, language))


def _read_file(path: Path, language: str | None) -> Iterator[Item]:
    seen_any = False
    with open_text(path) as text:
        for lineno, line in iter_lines(path, text):
            if not line.strip():
                continue
            seen_any = True
            position = f"line {lineno}"
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportFormatError(path, f"{position}, column {exc.colno}", f"malformed JSON: {exc.msg}") from exc
                yield parse_conversation(obj, path, position, language)
            except ImportFormatError as exc:
                yield BadRecord(exc)
    if not seen_any:
        raise ImportFormatError(path, "", "file is empty (only blank lines)")


def parse_conversation(obj: Any, path: Path, position: str, language: str | None) -> ConversationRecord:
    hint = " (is this a chatbot JSON Lines file?)"
    external_id = field(obj, "id", (str, int), path, position, hint)
    messages = field(obj, "messages", list, path, position, hint)
    source = obj.get("source", SOURCE)
    if not isinstance(source, str) or not source.strip():
        raise ImportFormatError(path, position, f"source should be a non-empty string, found {source!r}")
    lang = check_language(obj["language"], path, position) if obj.get("language") else (language or "en")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ImportFormatError(path, position, "meta should be a JSON object")
    customer = obj.get("customer_id")
    record = ConversationRecord(source.strip(), str(external_id), lang, [], meta=meta,
                                customer_id=str(customer) if customer not in (None, "") else None,
                                origin=f"{path} {position}")
    for m, message in enumerate(messages):
        where = f"{position}, message {m}"
        role = field(message, "role", str, path, where)
        if role not in ROLES:
            raise ImportFormatError(path, where, f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        text = field(message, "text", (str, type(None)), path, where)
        msg_meta = message.get("meta") or {}
        if not isinstance(msg_meta, dict):
            raise ImportFormatError(path, where, "message meta should be a JSON object")
        add_turn(record, role, text, path, where, parse_time(message.get("created_at"), path, where), msg_meta)
    return record
