"""Shadow testing in the store: which version is shadowed, its replies, and what agents did with the
active replies they shadow (never commits).

At most one version is shadowed at a time (``ModelVersion.shadowed_at``); every replica's shadow worker
reads it from here, so an admin's choice reaches all of them. A shadow reply hangs off the active model's
bot reply it shadows (``message_id``); a bot reply is reviewed at most once, so each shadow reply meets at
most one review.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatbot.store.audit import record
from chatbot.store.db import IllegalTransition
from chatbot.store.models import Message, ModelVersion, Review, ShadowReply, utcnow
from chatbot.store.registry import get_version


def shadowed_version(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.shadowed_at.is_not(None))
                           .order_by(ModelVersion.shadowed_at.desc())).first()


def set_shadow(session: Session, version_id: int | None, actor_id: int | None = None) -> ModelVersion | None:
    """Shadow ``version_id`` (a candidate or retired version) instead of whatever was shadowed; ``None`` stops."""
    version = get_version(session, version_id) if version_id is not None else None
    if version is not None and version.status in ("active", "rejected"):
        why = "it serves already" if version.status == "active" else "the gate rejected it, it cannot be promoted"
        raise IllegalTransition(f"model version {version.id} ({version.name}) cannot be shadowed: {why}")
    for other in session.scalars(select(ModelVersion).where(ModelVersion.shadowed_at.is_not(None))):
        if other is not version:
            other.shadowed_at = None
    if version is not None and version.shadowed_at is None:
        version.shadowed_at = utcnow()
    session.flush()
    record(session, actor_id, "model.shadow", f"model_version:{version.id}" if version else "model_version:none")
    return version


def bot_reply_after(session: Session, conversation_id: int, seq: int) -> Message | None:
    """The bot reply that answered the customer message at ``seq``: the conversation's next message, if it
    is the bot's (an agent who took over, or a second customer message first, means there is none)."""
    following = session.scalars(select(Message).where(Message.conversation_id == conversation_id,
                                                      Message.seq > seq).order_by(Message.seq).limit(1)).first()
    return following if following is not None and following.role == "bot" else None


def store_shadow_reply(session: Session, message_id: int, version_id: int, text: str, score: float) -> bool:
    """Keep a shadow reply; ``False`` when this version already shadowed that message (nothing changes)."""
    try:
        with session.begin_nested():
            session.add(ShadowReply(message_id=message_id, model_version_id=version_id, text=text, score=score))
    except IntegrityError:
        return False
    return True


class ShadowRow(NamedTuple):
    """One shadow reply with the active reply it shadows and the agent's review of that reply, if any."""

    model_version_id: int
    message_id: int
    shadow_text: str
    active_text: str  # what the active model said (the review's original text once reviewed)
    action: str | None  # approve / edit / reject, None while unreviewed
    corrected_text: str | None
    created_at: datetime


def shadow_rows(session: Session, limit_per_version: int = 2000) -> list[ShadowRow]:
    """The newest ``limit_per_version`` shadow replies of every version that has any."""
    rows: list[ShadowRow] = []
    versions = session.scalars(select(ShadowReply.model_version_id).distinct())
    for version_id in list(versions):
        query = (select(ShadowReply.model_version_id, ShadowReply.message_id, ShadowReply.text, Message.text,
                        Review.action, Review.original_text, Review.corrected_text, ShadowReply.created_at)
                 .join(Message, Message.id == ShadowReply.message_id)
                 .outerjoin(Review, Review.message_id == ShadowReply.message_id)
                 .where(ShadowReply.model_version_id == version_id)
                 .order_by(ShadowReply.created_at.desc(), ShadowReply.id.desc()).limit(limit_per_version))
        for vid, mid, shadow, said, action, original, corrected, created in session.execute(query):
            rows.append(ShadowRow(vid, mid, shadow, original if original is not None else said, action, corrected,
                                  created))
    return rows
