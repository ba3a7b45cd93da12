"""Erasure and retention: delete a customer's data, or everything past its retention period (never commits).

Both delete explicitly, child tables first (reviews, reply candidates, messages, conversations), so the
counts are exact and nothing depends on the engine honouring ON DELETE CASCADE. Each writes one audit
entry with counts only: no names, no text, no username. ``forget_customer`` also lists the registered
model versions whose training export included the customer (``customer_hashes`` in the export manifest
copied into ``ModelVersion.manifest``), so an admin can retrain without them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from chatbot.store.audit import record
from chatbot.store.db import NotFound
from chatbot.store.files import erase_from_files
from chatbot.store.models import Conversation, Message, ModelVersion, ReplyCandidate, Review, ShadowReply, User


@dataclass
class DeletionReport:
    conversations: int = 0
    messages: int = 0
    candidates: int = 0
    reviews: int = 0
    users: int = 0
    model_versions: list[dict[str, Any]] = field(default_factory=list)  # forget only
    files: list[dict[str, Any]] = field(default_factory=list)  # forget only: exports and work files scrubbed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_customer(session: Session, customer: str) -> User:
    """A customer by user id (digits) or username; ``NotFound`` otherwise."""
    user = None
    if customer.strip().isdigit():
        user = session.get(User, int(customer))
    if user is None:
        user = session.scalar(select(User).where(User.username == customer))
    if user is None:
        raise NotFound(f"no customer {customer!r} (give a user id or a username)")
    return user


def customer_hash(user_id: int) -> str:
    """Pseudonymous, stable reference to a customer for export manifests (no name, no username): the
    exporter writes it, ``forget_customer`` looks for it; here so that the store needs no training code."""
    return hashlib.sha256(f"chatbot-customer:{user_id}".encode()).hexdigest()[:32]


def forget_customer(session: Session, customer: str, actor_id: int | None = None) -> DeletionReport:
    """Delete the customer's conversations, messages, candidates and corrections, and their user row."""
    user = find_customer(session, customer)
    user_id = user.id
    conversations = select(Conversation.id).where(Conversation.customer_id == user_id)
    conversation_ids = set(session.scalars(conversations))
    report = _delete_conversations(session, conversations)
    wanted = customer_hash(user_id)
    report.model_versions = trained_on(session, wanted)
    report.files = erase_from_files(session, wanted, conversation_ids)
    if user.role == "customer":
        session.delete(user)
        session.flush()
        report.users = 1
    details = report.as_dict() | {"model_versions": [v["id"] for v in report.model_versions]}
    record(session, actor_id, "privacy.forget", f"user:{user_id}", details)
    return report


def trained_on(session: Session, wanted_hash: str) -> list[dict[str, Any]]:
    """The versions whose training data held the customer, and every version fine-tuned from one of them
    (``parent_id``, any depth): a model that saw the customer passed what it learned on to its heirs."""
    versions = list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))
    found: dict[int, dict[str, Any]] = {
        v.id: {"id": v.id, "name": v.name, "status": v.status, "via": "trained on the customer's data"}
        for v in versions if wanted_hash in _customer_hashes(v.manifest)
    }
    grew = True
    while grew:  # follow the lineage down to the last fine-tune
        grew = False
        for v in versions:
            if v.id not in found and v.parent_id in found:
                found[v.id] = {"id": v.id, "name": v.name, "status": v.status,
                               "via": f"fine-tuned from version {v.parent_id}"}
                grew = True
    return [found[i] for i in sorted(found)]


def purge_older_than(session: Session, cutoff: datetime, actor_id: int | None = None) -> DeletionReport:
    """Retention: delete conversations whose last activity (``updated_at``) is before ``cutoff``."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be a timezone-aware datetime")
    report = _delete_conversations(session, select(Conversation.id).where(Conversation.updated_at < cutoff))
    record(session, actor_id, "privacy.purge", "conversations", report.as_dict() | {"cutoff": cutoff.isoformat()})
    return report


def _delete_conversations(session: Session, conversation_ids: Select[Any]) -> DeletionReport:
    ids = list(session.scalars(conversation_ids))
    report = DeletionReport()
    for start in range(0, len(ids), 500):  # bounded IN lists
        chunk = ids[start:start + 500]
        messages = select(Message.id).where(Message.conversation_id.in_(chunk))
        report.reviews += _count_delete(session, delete(Review).where(Review.message_id.in_(messages)))
        report.candidates += _count_delete(session, delete(ReplyCandidate).where(ReplyCandidate.message_id.in_(messages)))
        # a shadowed candidate's replies can copy the customer's words (the copy mechanism): they go too
        _count_delete(session, delete(ShadowReply).where(ShadowReply.message_id.in_(messages)))
        report.messages += _count_delete(session, delete(Message).where(Message.conversation_id.in_(chunk)))
        report.conversations += _count_delete(session, delete(Conversation).where(Conversation.id.in_(chunk)))
    session.expire_all()
    return report


def _count_delete(session: Session, statement: Any) -> int:
    return session.execute(statement, execution_options={"synchronize_session": False}).rowcount or 0


def _customer_hashes(manifest: Any) -> set[str]:
    """``customer_hashes`` of an export manifest, at the top level or under ``export``/``data``."""
    if not isinstance(manifest, dict):
        return set()
    found = set(manifest.get("customer_hashes") or [])
    for key in ("export", "data"):
        found |= _customer_hashes(manifest.get(key))
    return found

