"""Schema-Guided Dialogue (SGD) splits.

Input: a split directory of ``dialogues_*.json`` or ``dialogues_*.json.gz`` files (or one such file),
each a JSON array of dialogues ``{"dialogue_id", "services", "turns": [{"speaker", "utterance",
"frames"}]}``.

Mapping: ``USER`` -> customer, ``SYSTEM`` -> agent. The external id is ``<split>/<dialogue_id>`` (the
split is the file's directory name) because SGD reuses dialogue ids across train/dev/test. The slot
spans of system turns are kept in the message metadata as ``{"slots": [{"slot", "start",
"exclusive_end", "service"}]}`` (character offsets into the utterance) so the evaluation can measure
how well replies copy entities.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.importers.base import Item, add_turn, build_each, expand_files, field, per_file
from training.importers.reading import json_array_items, open_text
from training.importers.records import ConversationRecord, ImportFormatError

SOURCE = "sgd"
ROLES = {"USER": "customer", "SYSTEM": "agent"}
_HINT = " (is this a Schema-Guided Dialogue file?)"


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(path, ("dialogues_*.json", "dialogues_*.json.gz"), "SGD")
    return per_file(files, lambda f: _read_file(f, language or "en"))


def _read_file(path: Path, language: str) -> Iterator[Item]:
    split = path.parent.name
    with open_text(path) as text:
        items = json_array_items(path, text)
        yield from build_each(items, lambda obj, position: _dialogue(obj, path, position, split, language))

def _dialogue(obj: Any, path: Path, position: str, split: str, language: str) -> ConversationRecord:
    dialogue_id = field(obj, "dialogue_id", str, path, position, _HINT)
    turns = field(obj, "turns", list, path, position, _HINT)
    services = obj.get("services") or []
    record = ConversationRecord(SOURCE, f"{split}/{dialogue_id}", language, [],
                                meta={"services": services, "split": split}, origin=f"{path} {position}")
    for t, turn in enumerate(turns):
        where = f"{position}, turn {t}"
        speaker = field(turn, "speaker", str, path, where, _HINT)
        if speaker not in ROLES:
            raise ImportFormatError(path, where, f"unknown speaker {speaker!r} (expected USER or SYSTEM)")
        utterance = field(turn, "utterance", (str, type(None)), path, where, _HINT)
        meta = {"slots": _slots(turn, path, where)} if speaker == "SYSTEM" else {}
        add_turn(record, ROLES[speaker], utterance, path, where, meta=meta)
    return record


def _slots(turn: dict[str, Any], path: Path, where: str) -> list[dict[str, Any]]:
    spans = []
    for frame in turn.get("frames") or []:
        for slot in frame.get("slots") or [] if isinstance(frame, dict) else []:
            try:
                spans.append({"slot": str(slot["slot"]), "start": int(slot["start"]),
                              "exclusive_end": int(slot["exclusive_end"]), "service": frame.get("service")})
            except (KeyError, TypeError, ValueError) as exc:
                raise ImportFormatError(path, where, f"malformed slot span {slot!r}") from exc
    return spans
