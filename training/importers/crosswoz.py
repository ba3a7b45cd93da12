"""CrossWOZ, Chinese task dialogues (Zhu et al. 2020; Apache-2.0).

Input: a split file ``train.json`` / ``val.json`` / ``test.json``, optionally zipped (``val.json.zip``, the
form the authors distribute) or gzipped, or a directory holding such files. Each file is one JSON object
``{dialogue_id: {"messages": [{"role": "usr"|"sys", "content", "dialog_act"}], "type", ...}}``.

Mapping: ``usr`` -> customer, ``sys`` -> agent, language ``zh``. The external id is
``<file stem>/<dialogue id>``. The values a system turn informs (``dialog_act`` rows ``[intent, domain,
slot, value]``) that occur in its text are kept as slot spans in the message metadata, in the SGD
importer's form (``{"slots": [{"slot", "start", "exclusive_end", "service"}]}``), so evaluation measures
entity copying in Chinese the same way.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.importers.base import Item, add_turn, build_each, expand_files, field, per_file
from training.importers.reading import MAX_RECORD_CHARS, open_text
from training.importers.records import ConversationRecord, ImportFormatError

SOURCE = "crosswoz"
ROLES = {"usr": "customer", "sys": "agent"}
PATTERNS = ("*.json", "*.json.zip", "*.json.gz")
MAX_FILE_CHARS = 64 * MAX_RECORD_CHARS  # a split file is read whole; the largest real one is ~60 MB
_HINT = " (is this a CrossWOZ file?)"


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(path, PATTERNS, "CrossWOZ")
    return per_file(files, lambda f: _read_file(f, language or "zh"))


def _read_file(path: Path, language: str) -> Iterator[Item]:
    text = _file_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(path, f"line {exc.lineno}", f"malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ImportFormatError(path, "", f"expected a JSON object of dialogues, found {type(data).__name__}{_HINT}")
    stem = path.name.split(".")[0]
    items = ((f"dialogue {key!r}", (key, value)) for key, value in data.items())
    yield from build_each(items, lambda obj, position: _dialogue(obj, path, position, stem, language))


def _file_text(path: Path) -> str:
    """The whole file as text: a zip member, gzip or plain, strict UTF-8, bounded in size."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir() and m.filename.endswith(".json")]
                if len(members) != 1:
                    raise ImportFormatError(path, "", f"expected one .json file in the zip archive, found {len(members)}")
                if members[0].file_size > MAX_FILE_CHARS * 4:
                    raise ImportFormatError(path, members[0].filename, "archive member too large; refusing to load it")
                raw = archive.read(members[0])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ImportFormatError(path, "", f"corrupt zip archive ({exc})") from exc
        if b"\x00" in raw:
            raise ImportFormatError(path, members[0].filename, "binary data (NUL byte), not a text file")
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ImportFormatError(path, f"line {line}", f"not valid UTF-8 text ({exc.reason})") from exc
    with open_text(path) as stream:
        text = stream.read(MAX_FILE_CHARS + 1)
        if len(text) > MAX_FILE_CHARS:
            raise ImportFormatError(path, "", f"file longer than {MAX_FILE_CHARS:,} characters; refusing to load it")
        return text.removeprefix("\ufeff")


def _dialogue(item: tuple[str, Any], path: Path, position: str, stem: str, language: str) -> ConversationRecord:
    dialogue_id, obj = item
    messages = field(obj, "messages", list, path, position, _HINT)
    record = ConversationRecord(SOURCE, f"{stem}/{dialogue_id}", language, [],
                                meta={"type": obj.get("type"), "split": stem}, origin=f"{path} {position}")
    for t, message in enumerate(messages):
        where = f"{position}, turn {t}"
        role = field(message, "role", str, path, where, _HINT)
        if role not in ROLES:
            raise ImportFormatError(path, where, f"unknown role {role!r} (expected usr or sys)")
        content = field(message, "content", (str, type(None)), path, where, _HINT)
        meta = {"slots": _slots(message.get("dialog_act"), content or "", path, where)} if role == "sys" else {}
        add_turn(record, ROLES[role], content, path, where, meta=meta)
    return record


def _slots(acts: Any, text: str, path: Path, where: str) -> list[dict[str, Any]]:
    """Spans of the informed values that the turn's text contains (first occurrence of each)."""
    if acts is None:
        return []
    if not isinstance(acts, list):
        raise ImportFormatError(path, where, f"field 'dialog_act' should be a list, found {type(acts).__name__}")
    spans: list[dict[str, Any]] = []
    for act in acts:
        if not (isinstance(act, list) and len(act) == 4 and all(isinstance(a, str) for a in act)):
            raise ImportFormatError(path, where, f"malformed dialog act {act!r} (expected [intent, domain, slot, value])")
        intent, domain, slot, value = act
        if intent != "Inform" or value in ("", "none") or not text:
            continue
        start = text.find(value)
        if start >= 0:
            spans.append({"slot": slot, "start": start, "exclusive_end": start + len(value), "service": domain})
    return spans
