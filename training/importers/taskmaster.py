"""Taskmaster-4 style dialogs.

Input: a directory of ``data_*.json`` / ``data_*.json.gz`` files (or one such file), each a JSON array of
``{"conversation_id", "vertical", "scenario", "utterances": [{"index", "speaker", "text"}]}``.

Mapping: ``user`` -> customer, ``assistant`` -> agent. External id: ``conversation_id``. The vertical
and scenario go to the conversation metadata; per-utterance API annotations are not imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.importers.base import Item, add_turn, build_each, expand_files, field, per_file
from training.importers.reading import json_array_items, open_text
from training.importers.records import ConversationRecord, ImportFormatError

SOURCE = "taskmaster"
ROLES = {"user": "customer", "assistant": "agent"}
_HINT = " (is this a Taskmaster file?)"


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(path, ("data_*.json", "data_*.json.gz"), "Taskmaster")
    return per_file(files, lambda f: _read_file(f, language or "en"))


def _read_file(path: Path, language: str) -> Iterator[Item]:
    with open_text(path) as text:
        items = json_array_items(path, text)
        yield from build_each(items, lambda obj, position: _dialogue(obj, path, position, language))

def _dialogue(obj: Any, path: Path, position: str, language: str) -> ConversationRecord:
    conversation_id = field(obj, "conversation_id", str, path, position, _HINT)
    utterances = field(obj, "utterances", list, path, position, _HINT)
    meta = {key: obj[key] for key in ("vertical", "scenario") if obj.get(key)}
    record = ConversationRecord(SOURCE, conversation_id, language, [], meta=meta, origin=f"{path} {position}")
    for u, utterance in enumerate(utterances):
        where = f"{position}, utterance {u}"
        speaker = field(utterance, "speaker", str, path, where, _HINT).lower()
        if speaker not in ROLES:
            raise ImportFormatError(path, where, f"unknown speaker {speaker!r} (expected user or assistant)")
        add_turn(record, ROLES[speaker], utterance.get("text"), path, where)
    return record
