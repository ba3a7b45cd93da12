"""The one writer that puts imported records into the conversation store.

Bulk Core inserts (executemany, a batch of conversations at a time, so memory stays bounded however big
the corpus), idempotent on (source, external_id): a conversation already in the store is counted as a
duplicate and left alone. Message text goes through the store's text policy (``clean_text``), which
masks full card numbers: none is ever stored, even in unredacted data. Never commits: the caller owns
the transaction, and by default a whole import is one transaction that a bad record aborts.

Imported customers (``ConversationRecord.customer_id``) become ``users`` rows named
``<source>:<customer id>`` with role ``customer``, so ``chatbot forget --customer`` can find them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from chatbot.store.db import InvalidMessage
from chatbot.store.models import Conversation, Message, User, utcnow
from chatbot.store.textpolicy import DEFAULT_MAX_CHARS, clean_text
from training.importers import BadRecord, ConversationRecord, ImportFormatError, Item

BATCH_SIZE = 500


@dataclass
class IngestReport:
    conversations: int = 0  # newly stored
    messages: int = 0
    skipped: int = 0  # empty turns + bad records skipped with skip_bad
    duplicates: int = 0  # already in the store (or twice in the input): not stored again
    errors: list[str] = field(default_factory=list)  # one line per skipped bad record

    def as_dict(self) -> dict[str, Any]:
        return {"conversations": self.conversations, "messages": self.messages, "skipped": self.skipped,
                "duplicates": self.duplicates, "errors": self.errors}


def customer_username(source: str, customer_id: str) -> str:
    return f"{source}:{customer_id}"


def ingest(
    session: Session,
    items: Iterable[Item],
    *,
    skip_bad: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> IngestReport:
    """Store every new conversation of ``items``; raise ``ImportFormatError`` on the first bad record
    unless ``skip_bad`` (then each is reported in ``errors`` and counted in ``skipped``)."""
    report = IngestReport()
    seen: set[tuple[str, str]] = set()
    iterator = iter(_checked(items, report, skip_bad, max_chars))
    while batch := list(islice(iterator, batch_size)):
        _write_batch(session, batch, report, seen)
        if on_batch is not None:
            on_batch(len(batch))
    return report


def _checked(items: Iterable[Item], report: IngestReport, skip_bad: bool, max_chars: int) -> Iterator[ConversationRecord]:
    for item in items:
        if isinstance(item, ConversationRecord):
            try:
                for message in item.messages:
                    message.text = clean_text(message.text, max_chars)
            except InvalidMessage as exc:
                item = BadRecord(ImportFormatError(item.origin or item.external_id, "", str(exc)))
            else:
                report.skipped += item.skipped_turns
                yield item
                continue
        if not skip_bad:
            raise item.error
        report.skipped += 1
        report.errors.append(str(item.error))


def _write_batch(session: Session, batch: list[ConversationRecord], report: IngestReport,
                 seen: set[tuple[str, str]]) -> None:
    keys = [(r.source, r.external_id) for r in batch]
    existing = set(session.execute(
        select(Conversation.source, Conversation.external_id).where(tuple_(Conversation.source, Conversation.external_id).in_(keys))
    ).tuples())
    fresh: list[ConversationRecord] = []
    for record, key in zip(batch, keys):
        if key in existing or key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        fresh.append(record)
    if not fresh:
        return
    customers = _customer_ids(session, fresh)
    now = utcnow()
    rows = []
    for r in fresh:
        times = [m.created_at for m in r.messages if m.created_at is not None]
        rows.append({
            "source": r.source, "external_id": r.external_id, "language": r.language, "channel": "import",
            "status": "closed", "meta": r.meta or None, "last_seq": len(r.messages),
            "customer_id": customers.get(customer_username(r.source, r.customer_id)) if r.customer_id else None,
            "created_at": min(times, default=now), "updated_at": max(times, default=now),
            "closed_at": max(times, default=now),
        })
    ids = session.execute(
        insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True), rows
    ).scalars().all()
    messages = [
        {"conversation_id": cid, "seq": seq, "role": m.role, "text": m.text, "created_at": m.created_at or now,
         "meta": m.meta or None, "review_state": "sent" if m.role == "bot" else None}
        for cid, r in zip(ids, fresh) for seq, m in enumerate(r.messages, start=1)
    ]
    if messages:
        session.execute(insert(Message), messages)
    report.conversations += len(fresh)
    report.messages += len(messages)


def _customer_ids(session: Session, records: list[ConversationRecord]) -> dict[str, int]:
    names = {customer_username(r.source, r.customer_id) for r in records if r.customer_id}
    if not names:
        return {}
    found = dict(session.execute(select(User.username, User.id).where(User.username.in_(names))).tuples().all())
    missing = sorted(names - found.keys())
    if missing:
        session.execute(insert(User), [{"username": n, "role": "customer", "created_at": utcnow()} for n in missing])
        found.update(session.execute(select(User.username, User.id).where(User.username.in_(missing))).tuples().all())
    return found
