"""Plain, detached values the service hands to the web layer (no ORM objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chatbot.store.conversations import StoredMessage
from chatbot.store.models import Conversation, Message, customer_sees


def visible_to_customer(message: Message) -> bool:
    return customer_sees(message.role, message.review_state)


@dataclass(frozen=True)
class MessageView:
    id: int
    seq: int
    role: str
    text: str
    created_at: datetime
    review_state: str | None = None
    confidence: float | None = None
    model_version_id: int | None = None
    decoding: dict[str, Any] | None = None
    candidates: list[tuple[str, float]] = field(default_factory=list)
    attention: Any = None
    meta: dict[str, Any] | None = None

    @classmethod
    def of(cls, message: Message | StoredMessage, *, detail: bool = False) -> MessageView:
        """``detail`` (decoding, attention, meta, candidates) needs the ``Message`` row itself."""
        base = cls(message.id, message.seq, message.role, message.text, message.created_at,
                   message.review_state, message.confidence, message.model_version_id)
        if not detail:
            return base
        return cls(
            **{**base.__dict__, "decoding": message.decoding, "attention": message.attention,
               "meta": message.meta, "candidates": [(c.text, c.score) for c in message.candidates]}
        )

    def public(self) -> dict[str, Any]:
        """What a customer may see of a message."""
        return {"id": self.id, "role": self.role, "text": self.text, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class ConversationView:
    id: int
    status: str
    language: str
    created_at: datetime
    updated_at: datetime
    assigned_agent_id: int | None
    csat: int | None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationView:
        c = conversation
        return cls(c.id, c.status, c.language, c.created_at, c.updated_at, c.assigned_agent_id, c.csat)


@dataclass(frozen=True)
class SendResult:
    """The outcome of one customer message: the stored message, and the reply or what happens instead."""

    conversation_id: int
    status: str  # the conversation's status afterwards
    message: MessageView
    reply: MessageView | None = None  # a sent bot reply
    notice: MessageView | None = None  # a system message, e.g. "a person will join"
    awaiting_review: bool = False  # draft mode: the reply waits for an agent
    handoff: str | None = None  # why the conversation went to a person

    def public(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "status": self.status,
            "message": self.message.public(),
            "reply": self.reply.public() if self.reply else None,
            "notice": self.notice.public() if self.notice else None,
            "awaiting_review": self.awaiting_review,
            "handoff": self.handoff,
        }
