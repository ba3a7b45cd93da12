"""ABCD (Action-Based Conversations Dataset) customer-service dialogs.

Input: a JSON file (optionally gzipped) holding an array of conversations, or ABCD's split layout
``{"train": [...], "dev": [...], "test": [...]}``; only the ``original`` turns are used.

Mapping: ``customer`` -> customer, ``agent`` -> agent, ``action`` -> system (the agent's tool actions,
e.g. "Account has been pulled up for ..."). External id: ``convo_id``. ``scenario.personal`` values
(name, email, phone, username) are known PII for that conversation: they go to the conversation
metadata under ``known_pii`` so redaction can remove them wherever they appear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.importers.base import Item, add_turn, build_each, expand_files, field, per_file
from training.importers.reading import json_array_items, open_text
from training.importers.records import ConversationRecord, ImportFormatError

SOURCE = "abcd"
ROLES = {"customer": "customer", "agent": "agent", "action": "system"}
PII_FIELDS = ("customer_name", "email", "phone", "username", "account_id", "order_id", "street_address", "full_address",
              "zip_code")
_HINT = " (is this an ABCD file?)"


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(path, ("*.json", "*.json.gz"), "ABCD")
    return per_file(files, lambda f: _read_file(f, language or "en"))


def _read_file(path: Path, language: str) -> Iterator[Item]:
    with open_text(path) as text:
        head = text.read(1)
        stripped = head.lstrip()
        while head and not stripped:
            head = text.read(1)
            stripped = head.lstrip()
        if stripped == "{":  # the split layout: small enough in practice to parse whole
            try:
                splits = json.loads(stripped + text.read())
            except json.JSONDecodeError as exc:
                raise ImportFormatError(path, f"line {exc.lineno}", f"malformed JSON: {exc.msg}") from exc
            items = ((f"{name} record {i}", obj) for name, rows in splits.items()
                     if isinstance(rows, list) for i, obj in enumerate(rows))
        else:
            items = json_array_items(path, _Prefixed(stripped, text))
        yield from build_each(items, lambda obj, position: _dialogue(obj, path, position, language))


class _Prefixed:
    """Give back the character already read to sniff the layout."""

    def __init__(self, prefix: str, text: Any) -> None:
        self._prefix, self._text = prefix, text

    def read(self, size: int = -1) -> str:
        prefix, self._prefix = self._prefix, ""
        return prefix + self._text.read(size)


def _dialogue(obj: Any, path: Path, position: str, language: str) -> ConversationRecord:
    convo_id = field(obj, "convo_id", (int, str), path, position, _HINT)
    turns = field(obj, "original", list, path, position, _HINT)
    scenario = obj.get("scenario") if isinstance(obj.get("scenario"), dict) else {}
    personal = scenario.get("personal") if isinstance(scenario.get("personal"), dict) else {}
    order = scenario.get("order") if isinstance(scenario.get("order"), dict) else {}
    known = {k: str(v) for src in (personal, order) for k, v in src.items() if k in PII_FIELDS and v}
    meta = {"flow": scenario.get("flow"), "subflow": scenario.get("subflow"), "known_pii": known}
    customer = personal.get("username") or personal.get("email") or personal.get("customer_name")
    record = ConversationRecord(SOURCE, str(convo_id), language, [], meta=meta,
                                customer_id=str(customer) if customer else None, origin=f"{path} {position}")
    for t, turn in enumerate(turns):
        where = f"{position}, turn {t}"
        if not (isinstance(turn, list) and len(turn) == 2 and isinstance(turn[0], str)):
            raise ImportFormatError(path, where, f"expected [speaker, text], found {turn!r:.80}")
        if turn[0] not in ROLES:
            raise ImportFormatError(path, where, f"unknown speaker {turn[0]!r} (expected customer, agent or action)")
        add_turn(record, ROLES[turn[0]], turn[1], path, where)
    return record
