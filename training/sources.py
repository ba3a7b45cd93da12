"""Resolve ``--data SPEC`` into training pairs.

``SPEC`` is ``db`` (the store's export of reviewed transcripts) or ``FORMAT:PATH`` with an importer
format (``sgd:../shared/data/sgd/train``, ``jsonl:chats.jsonl``, ...). A pair is one agent/bot reply
with the conversation before it; SGD slot values in the reply come along so evaluation can measure
entity copying. Bad input stops with the importer's file-and-position message: a model silently
trained on half a file is worse than no model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.slots import slot_values

REPLY_ROLES = ("agent", "bot")


class SourceError(ValueError):
    """A data spec that cannot be read (unknown format, missing or corrupt file, nothing to train on)."""


@dataclass(frozen=True, slots=True)
class Pair:
    context: tuple[tuple[str, str], ...]  # (role, text), oldest first
    reply: str
    language: str = "en"
    slot_values: tuple[str, ...] = ()
    conversation: str = ""  # stable id of the source conversation (dev split, per-example CSV)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def context_text(self) -> str:
        return "\n".join(text for _, text in self.context)


def pairs_from_messages(
    messages: Sequence[tuple[str, str, dict[str, Any] | None]], language: str, conversation: str, max_turns: int
) -> Iterator[Pair]:
    """One pair per agent/bot message that follows at least one customer message."""
    for i, (role, text, meta) in enumerate(messages):
        if role not in REPLY_ROLES or i == 0:
            continue
        context = tuple((r, t) for r, t, _ in messages[max(0, i - max_turns) : i])
        if not any(r == "customer" for r, _ in context):
            continue
        yield Pair(context, text, language, slot_values(text, meta), conversation)


HELDOUT_FRACTION = 0.2
SPLIT_PARTS = ("train", "dev")


@dataclass(frozen=True, slots=True)
class Source:
    """One entry of a recipe's data mix: a spec and how much of it a training epoch sees.

    ``weight`` 2 shows every pair twice an epoch, 0.5 a fixed half of them (chosen by a hash, so the same
    half every run)."""

    spec: str
    weight: float = 1.0


def split_part(spec: str) -> tuple[str, str | None]:
    """``FORMAT:PATH@dev`` -> (``FORMAT:PATH``, ``"dev"``): a fixed part of a corpus with no dev split of its own.

    The part is chosen per conversation by a hash (``HELDOUT_FRACTION`` of them are ``dev``), so a corpus
    such as CrossWOZ's one released split gives a train part and a dev part that never share a dialogue."""
    base, sep, part = spec.rpartition("@")
    if sep and part in SPLIT_PARTS and base:
        return base, part
    return spec, None


def in_part(pair: Pair, part: str | None) -> bool:
    if part is None:
        return True
    digest = hashlib.sha1(f"heldout:{pair.conversation}".encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32 < HELDOUT_FRACTION) == (part == "dev")


def parse_spec(spec: str) -> tuple[str, Path | None]:
    spec = split_part(spec)[0]
    if spec == "db":
        return "db", None
    fmt, sep, path = spec.partition(":")
    if not sep or not fmt or not path:
        raise SourceError(f"bad --data {spec!r}: use 'db' or FORMAT:PATH[@train|@dev], e.g. sgd:../shared/data/sgd/train")
    from training.importers import FORMATS

    if fmt not in FORMATS:
        raise SourceError(f"bad --data {spec!r}: unknown format {fmt!r}; choose one of db, {', '.join(FORMATS)}")
    return fmt, Path(path).expanduser()


def load_file_pairs(fmt: str, path: Path, max_turns: int, language: str | None = None) -> list[Pair]:
    from training.importers import BadRecord, ImportFormatError, get_importer

    read = get_importer(fmt)
    pairs: list[Pair] = []
    try:
        for item in read(path, language):
            if isinstance(item, BadRecord):
                raise SourceError(f"corrupt training data: {item.error}")
            messages = [(m.role, m.text, m.meta) for m in item.messages]
            conversation = f"{item.source}:{item.external_id}"
            pairs.extend(pairs_from_messages(messages, item.language, conversation, max_turns))
    except ImportFormatError as exc:
        raise SourceError(f"corrupt training data: {exc}") from exc
    return pairs


def read_export(path: Path) -> list[Pair]:
    """Pairs from a ``chatbot export pairs`` JSONL file; corrections (weight 2) count twice."""
    import json

    pairs: list[Pair] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                context = tuple((t["role"], t["text"]) for t in row["context"])
                pair = Pair(context, row["response"], row.get("language", "en"),
                            slot_values=tuple(str(v) for v in row.get("slot_values") or ()),
                            conversation=f"{row.get('source', 'db')}:{row['conversation_id']}",
                            meta={"kind": row.get("kind"), "seq": row.get("seq"),
                                  "conversation_id": row["conversation_id"]})
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(f"corrupt export file {path} (line {lineno}): {exc}") from None
            pairs.extend([pair] * max(1, round(float(row.get("weight", 1.0)))))
    return pairs


def db_pairs(store: Any, max_turns: int, since: Any = None) -> tuple[list[Pair], dict[str, Any]]:
    """Export the store (redacted, corrections applied) and read the pairs back, with the manifest."""
    import tempfile

    from training.export import ExportOptions, export_pairs  # here: the store and SQLAlchemy only for ``db``

    with tempfile.TemporaryDirectory(prefix="chatbot-export-") as tmp:
        out = Path(tmp) / "pairs.jsonl"
        with store.transaction(read_only=True) as session:
            manifest = export_pairs(session, out, ExportOptions(since=since, max_context_turns=max_turns))
        return read_export(out), manifest


def load_groups(specs: Iterable[str], max_turns: int, store: Any = None,
                manifest: dict[str, Any] | None = None) -> list[list[Pair]]:
    """The pairs of each spec, one list per spec in order; ``db`` needs the store (a ``ConversationStore``).

    Pass a dict as ``manifest`` to receive what was read: the specs, pairs per spec and, for ``db``, the
    store export's manifest under ``"export"`` (its ``customer_hashes`` let ``chatbot forget`` find the model)."""
    groups: list[list[Pair]] = []
    specs = list(specs)
    counts: dict[str, int] = {}
    for spec in specs:
        fmt, path = parse_spec(spec)
        part = split_part(spec)[1]
        if fmt == "db":
            if store is None:
                raise SourceError("--data db needs a database (settings.database_url)")
            got, export_manifest = db_pairs(store, max_turns)
            if manifest is not None:
                manifest["export"] = export_manifest
            if not got:
                raise SourceError("--data db: the export is empty (no reviewed or agent replies in the store)")
        else:
            assert path is not None
            got = load_file_pairs(fmt, path, max_turns)
            if not got:
                raise SourceError(f"--data {spec}: no training pairs (no agent reply after a customer message)")
        got = [p for p in got if in_part(p, part)]
        counts[spec] = len(got)
        groups.append(got)
    if manifest is not None:
        manifest.update(data=specs, pairs_per_spec=counts, pairs=sum(counts.values()))
    return groups


def load_pairs(specs: Iterable[str], max_turns: int, store: Any = None,
               manifest: dict[str, Any] | None = None) -> list[Pair]:
    """Every pair of every spec, in order (see ``load_groups``)."""
    return [p for group in load_groups(specs, max_turns, store, manifest) for p in group]


def spread(pairs: Sequence[Pair], limit: int) -> list[Pair]:
    """``limit`` pairs taken evenly over the whole list (every k-th), not its first dialogues only."""
    step = max(1, len(pairs) // limit)
    return list(pairs[::step][:limit])


def weighted(pairs: Sequence[Pair], weight: float) -> list[Pair]:
    """Each pair ``int(weight)`` times, plus the same hash-chosen share of them for the fraction."""
    whole, fraction = int(weight), weight - int(weight)
    out: list[Pair] = []
    for p in pairs:
        digest = hashlib.sha1(repr((p.conversation, p.context, p.reply)).encode("utf-8")).digest()
        extra = int.from_bytes(digest[:4], "big") / 2**32 < fraction
        out.extend([p] * (whole + extra))
    return out


def is_dev(pair: Pair, dev_fraction: float) -> bool:
    """Deterministic split by conversation, so no conversation is in both train and dev."""
    digest = hashlib.sha1(pair.conversation.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < dev_fraction


def split_dev(pairs: Sequence[Pair], dev_fraction: float) -> tuple[list[Pair], list[Pair]]:
    train = [p for p in pairs if not is_dev(p, dev_fraction)]
    dev = [p for p in pairs if is_dev(p, dev_fraction)]
    if not dev and len(train) > 1 and dev_fraction > 0:  # tiny data: keep at least one dev pair
        dev = [train.pop()]
    return train, dev
