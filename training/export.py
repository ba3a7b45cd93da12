"""Turn the conversation store into training pairs, with a manifest that says what went in.

A response is an agent's message, a bot reply an agent approved, or an agent's correction in place of
the bot reply it corrected. Rejected, draft and unreviewed (``sent``) bot replies are never responses:
the model must not learn from its own unchecked output. What the customer actually saw stays in the
context (the stored text of a sent or approved reply, also when it was corrected afterwards); rejected
and draft replies never reached the customer and are left out.
A response with no context before it (a greeting opening the conversation) is not a pair.

Each line of the output::

    {"context": [{"role": "customer", "text": "..."}, ...], "response": "...", "kind": "agent|approved|corrected",
     "conversation_id": 17, "language": "en", "source": "sgd", "weight": 1.0, "seq": 4,
     "slot_values": ["7:30 pm"],   # SGD slot values the response still contains (for entity-copy recall)
     "suggestion": {"outcome": "edited", "source": "model", "rank": 1}}   # agent pairs, else null

``suggestion`` says what the agent did with the replies the console suggested (``suggestion_uses``): sent the
model's candidate (or a saved reply) as it was (``as_is``: the model already had it right), edited it, or
ignored them all; ``null`` when nothing was suggested (or the response is not an agent's message).

``since`` selects a conversation with a message *or a review* at or after that time: the nightly job exports
since its last successful run, and an agent's correction of an old reply is new training data even when the
conversation itself went quiet before that run (``reviewed_since``).

Corrections weigh ``CORRECTION_WEIGHT``: an agent fixing the model is the most direct signal there is.

The manifest (``OUT.manifest.json``) holds counts, sources, languages, the export settings, a SHA-256 of
the sorted conversation ids, and ``customer_hashes``: ``customer_hash(user_id)`` of every customer whose
conversations are included. Training copies the manifest into the registered model version
(``ModelVersion.manifest["export"]``), which is how ``chatbot forget`` lists the models trained on a
customer's data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from chatbot.files import open_private, private_dir, write_private_text
from chatbot.store.facts import fact_texts
from chatbot.store.models import Conversation, Message, Review, SuggestionUse, User, utcnow
from chatbot.store.retention import customer_hash
from chatbot.text.redact import redact
from training.slots import slot_values

CORRECTION_WEIGHT = 2.0
PAGE = 500
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ExportOptions:
    since: datetime | None = None
    language: str | None = None
    source: str | None = None
    max_context_turns: int = 6
    redact: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None, "language": self.language,
                "source": self.source, "max_context_turns": self.max_context_turns, "redact": self.redact}


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".manifest.json")


def export_pairs(session: Session, out: Path, options: ExportOptions) -> dict[str, Any]:
    """Write the pairs to ``out`` and the manifest next to it (both atomically); return the manifest."""
    out = Path(out)
    private_dir(out.parent)  # customer text: owner-only files in an owner-only directory (chatbot.files)
    kinds: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    conversation_ids: list[int] = []
    customers: set[int] = set()
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open_private(tmp, "w") as fh:
            for conversation, pairs in _conversation_pairs(session, options):
                if not pairs:
                    continue
                conversation_ids.append(conversation.id)
                if conversation.customer_id is not None:
                    customers.add(conversation.customer_id)
                for pair in pairs:
                    fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
                    kinds[pair["kind"]] += 1
                    sources[pair["source"]] += 1
                    languages[pair["language"]] += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "created_at": utcnow().isoformat(),
        "output": out.name,
        "pairs": sum(kinds.values()),
        "conversations": len(conversation_ids),
        "responses": dict(kinds),
        "sources": dict(sources),
        "languages": dict(languages),
        "conversation_ids_sha256": hashlib.sha256(",".join(map(str, sorted(conversation_ids))).encode()).hexdigest(),
        "customer_hashes": sorted(customer_hash(c) for c in customers),
        "settings": options.as_dict(),
    }
    _write_json_atomically(manifest_path(out), manifest)
    return manifest


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write_private_text(tmp, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _conversation_pairs(session: Session, options: ExportOptions) -> Iterator[tuple[Conversation, list[dict[str, Any]]]]:
    """Conversations a page at a time (keyset on id), each with its pairs: memory stays bounded."""
    public = fact_texts(session) if options.redact else []
    last_id = 0
    while True:
        query = select(Conversation).where(Conversation.id > last_id).order_by(Conversation.id).limit(PAGE)
        if options.since is not None:
            query = query.where(or_(Conversation.updated_at >= options.since,
                                    Conversation.id.in_(reviewed_since(options.since))))
        if options.language:
            query = query.where(Conversation.language == options.language)
        if options.source:
            query = query.where(Conversation.source == options.source)
        page = list(session.scalars(query))
        if not page:
            return
        last_id = page[-1].id
        ids = [c.id for c in page]
        messages: dict[int, list[Message]] = {i: [] for i in ids}
        for message in session.scalars(select(Message).where(Message.conversation_id.in_(ids))
                                       .order_by(Message.conversation_id, Message.seq)):
            messages[message.conversation_id].append(message)
        corrections = _corrections(session, ids)
        suggestions = _suggestions(session, ids)
        names = _customer_names(session, page) if options.redact else {}
        for conversation in page:
            known = _known_values(conversation, names.get(conversation.customer_id))
            yield conversation, list(_pairs(conversation, messages[conversation.id], corrections, options, known,
                                            suggestions, public))
        session.expunge_all()


def reviewed_since(since: datetime) -> Select[tuple[int]]:
    """Ids of the conversations with a review at or after ``since``.

    A review (approve, edit, reject) is stored in ``reviews`` and leaves ``conversations.updated_at`` alone:
    that column is the last *message* (the agent queue and retention read it), so an agent's correction made
    after a conversation went quiet is only found by its own time. The subquery is uncorrelated: the engine
    runs it once per page, a range scan of ``ix_reviews_created_at`` plus a primary-key lookup per review,
    so its cost is the number of recent reviews, never the size of the store.
    """
    return (select(Message.conversation_id)
            .join(Review, Review.message_id == Message.id)
            .where(Review.created_at >= since))


def _corrections(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    """Latest correction text of each edited bot message."""
    query = (select(Review.message_id, Review.corrected_text)
             .join(Message, Message.id == Review.message_id)
             .where(Message.conversation_id.in_(conversation_ids), Review.action == "edit",
                    Review.corrected_text.is_not(None))
             .order_by(Review.message_id, Review.created_at, Review.id))
    return {message_id: text for message_id, text in session.execute(query).tuples()}


def _customer_names(session: Session, page: list[Conversation]) -> dict[int, dict[str, str]]:
    """Known values from each customer's user row: display name, and username without its source prefix."""
    ids = {c.customer_id for c in page if c.customer_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.username, User.display_name).where(User.id.in_(ids))).tuples()
    return {uid: {k: v for k, v in (("customer_name", display), ("username", username.split(":", 1)[-1])) if v}
            for uid, username, display in rows}


def _known_values(conversation: Conversation, user_values: dict[str, str] | None) -> dict[str, str]:
    known = {**(user_values or {}), **((conversation.meta or {}).get("known_pii") or {})}
    return {k: str(v) for k, v in known.items()}


def _suggestions(session: Session, conversation_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What the agent did with the suggested replies, per agent message that has a record."""
    query = (select(SuggestionUse.message_id, SuggestionUse.outcome, SuggestionUse.source,
                    SuggestionUse.candidate_rank)
             .join(Message, Message.id == SuggestionUse.message_id)
             .where(Message.conversation_id.in_(conversation_ids)))
    return {message_id: {"outcome": outcome, "source": source, "rank": rank}
            for message_id, outcome, source, rank in session.execute(query).tuples()}


def _pairs(conversation: Conversation, messages: list[Message], corrections: dict[int, str],
           options: ExportOptions, known: dict[str, str],
           suggestions: dict[int, dict[str, Any]] | None = None, public: Sequence[str] = ()
           ) -> Iterator[dict[str, Any]]:
    def clean(text: str, role: str) -> str:
        # Staff text keeps what the company published (company facts): an agent teaching "call us at
        # 555-0199" must not teach the bot "call us at <PHONE>". A customer's text keeps nothing.
        keep = () if role == "customer" else public
        return redact(text, conversation.language, known, keep) if options.redact else text

    context: list[dict[str, str]] = []
    for message in messages:
        text, kind = message.text, None
        if message.role == "agent":
            kind = "agent"
        elif message.role == "bot":
            state = message.review_state
            if state in ("rejected", "draft"):
                continue  # the customer never saw it
            if state == "approved":
                kind = "approved"
            elif state == "edited" and message.id in corrections:
                text, kind = corrections[message.id], "corrected"
        shown = clean(message.text, message.role)
        if kind is not None and context:
            response = shown if text is message.text else clean(text, message.role)
            # SGD slot values of an agent turn, for entity-copy recall; a value redaction removed stays out.
            values = slot_values(message.text, message.meta) if kind == "agent" else ()
            yield {
                "context": context[-options.max_context_turns:], "kind": kind, "response": response,
                "conversation_id": conversation.id, "language": conversation.language,
                "source": conversation.source, "weight": CORRECTION_WEIGHT if kind == "corrected" else 1.0,
                "seq": message.seq, "slot_values": [v for v in values if v in response],
                "suggestion": (suggestions or {}).get(message.id) if kind == "agent" else None,
            }
        context.append({"role": message.role, "text": shown})
