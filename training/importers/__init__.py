"""Corpus importers: one module per format, each yielding plain ``ConversationRecord``s.

``get_importer(format)`` returns ``read(path, language) -> Iterator[ConversationRecord | BadRecord]``.
Importers never touch the database; ``training.ingest`` is the one writer.
"""

from __future__ import annotations

import importlib

from training.importers.base import Importer, Item
from training.importers.records import BadRecord, ConversationRecord, ImportFormatError, MessageRecord

FORMATS = ("sgd", "taskmaster", "abcd", "chatterbot", "crosswoz", "jsonl", "csv")

__all__ = ["FORMATS", "BadRecord", "ConversationRecord", "ImportFormatError", "Importer", "Item",
           "MessageRecord", "get_importer"]


def get_importer(fmt: str) -> Importer:
    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return importlib.import_module(f"training.importers.{fmt}").read
