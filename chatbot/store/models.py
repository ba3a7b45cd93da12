"""The SQL schema: SQLAlchemy 2.0 typed models shared by SQLite (dev, tests) and PostgreSQL (production).

Portable by construction: enums are strings guarded by CHECK constraints, JSON is ``sqlalchemy.JSON``,
and every datetime is timezone-aware UTC on the way in and out (SQLite keeps no zone, so ``UTCDateTime``
normalises). Constraint names follow one naming convention so Alembic can alter them later, also in
SQLite batch mode. Any change here needs an Alembic revision in ``migrations/versions``
(``chatbot db revision -m "..."`` autogenerates one; ``tests/store/test_migrations.py`` checks they agree).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_ROLES = ("customer", "agent", "admin")
CONVERSATION_STATUSES = ("bot", "pending", "human", "closed")
MESSAGE_ROLES = ("customer", "bot", "agent", "system")
REVIEW_STATES = ("sent", "draft", "approved", "edited", "rejected")
# Bot replies the customer sees; drafts wait for an agent and rejected ones never go out.
CUSTOMER_VISIBLE_STATES = (None, "sent", "approved", "edited")
REVIEW_ACTIONS = ("approve", "edit", "reject")
MODEL_STATUSES = ("candidate", "active", "retired", "rejected")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "skipped")


def customer_sees(role: str, review_state: str | None) -> bool:
    """Whether a message with this role and review state reached the customer."""
    return role != "bot" or review_state in CUSTOMER_VISIBLE_STATES


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def one_of(column: str, values: tuple[str, ...], *, nullable: bool = False) -> CheckConstraint:
    """CHECK constraint that keeps a string column inside its enum (named ``ck_<table>_<column>``)."""
    allowed = ", ".join(f"'{v}'" for v in values)
    expr = f"{column} IN ({allowed})"
    if nullable:
        expr = f"{column} IS NULL OR {expr}"
    return CheckConstraint(expr, name=column)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite stores them naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # none_as_null: Python None is SQL NULL (not the JSON text 'null'), so `IS NULL` finds it.
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(none_as_null=True),
        list[Any]: JSON(none_as_null=True),
    }


class User(Base):
    __tablename__ = "users"
    __table_args__ = (one_of("role", USER_ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="customer")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        one_of("status", CONVERSATION_STATUSES),
        CheckConstraint("csat IS NULL OR (csat >= 1 AND csat <= 5)", name="csat"),
        Index(None, "status", "updated_at"),  # the agent queue
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    channel: Mapped[str] = mapped_column(String(32), default="web")
    source: Mapped[str] = mapped_column(String(32), default="live")
    external_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="bot")
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    csat: Mapped[int | None]
    meta: Mapped[dict[str, Any] | None]
    # Highest sequence number handed out; `UPDATE ... SET last_seq = last_seq + 1 RETURNING` serialises
    # writers on this row, which is what keeps message sequences gap-free.
    last_seq: Mapped[int] = mapped_column(default=0, server_default="0")

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.seq", passive_deletes=True
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (one_of("status", MODEL_STATUSES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    manifest: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    # The version this one was fine-tuned from: erasure follows it, a model that saw a customer taught its heirs.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    # Set while this version shadows the active one (decodes a sample of live messages, never sent); one at most.
    shadowed_at: Mapped[datetime | None]


PROMOTION_ACTIONS = ("promote", "rollback")


class ModelPromotion(Base):
    """One change of the serving model, in order: what rollback follows and what serving falls back to.

    Replayed oldest first as a stack (a promotion pushes its version, a rollback pops the current one),
    the history says which version served before the active one, skipping versions rolled back away from.
    """

    __tablename__ = "model_promotions"
    __table_args__ = (one_of("action", PROMOTION_ACTIONS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),  # also the index for history by conversation
        one_of("role", MESSAGE_ROLES),
        one_of("review_state", REVIEW_STATES, nullable=True),
        # A customer's retry with the same Idempotency-Key finds its message instead of storing it twice.
        Index(None, "conversation_id", "client_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int]
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    decoding: Mapped[dict[str, Any] | None]
    confidence: Mapped[float | None] = mapped_column(Float)
    review_state: Mapped[str | None] = mapped_column(String(16))
    attention: Mapped[list[Any] | None]
    meta: Mapped[dict[str, Any] | None]
    client_key: Mapped[str | None] = mapped_column(String(100))  # the sender's Idempotency-Key, customers only

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    candidates: Mapped[list[ReplyCandidate]] = relationship(
        order_by="ReplyCandidate.rank", cascade="all, delete-orphan", passive_deletes=True
    )


class ReplyCandidate(Base):
    __tablename__ = "reply_candidates"
    __table_args__ = (UniqueConstraint("message_id", "rank"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rank: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)


class ShadowReply(Base):
    """What a shadowed candidate would have answered, kept beside the active model's reply (``message_id``,
    the bot reply it shadows) so agents' reviews of that reply can judge both; never sent to anyone."""

    __tablename__ = "shadow_replies"
    __table_args__ = (UniqueConstraint("message_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (one_of("action", REVIEW_ACTIONS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    original_text: Mapped[str] = mapped_column(Text)
    corrected_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (one_of("status", JOB_STATUSES), Index(None, "kind", "started_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    report: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CompanyFact(Base):
    """Something true about the company that an admin wrote down (opening hours, a policy, a phone number).

    The bot cannot look anything up, so these texts and the conversation are all it may state details
    from; the grounding check (``chatbot.text.grounding``) reads every fact, whatever its language (a
    phone number or an opening hour is the same in every language), and ``language`` says which language
    the text is written in, for the admins.
    """

    __tablename__ = "company_facts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class StaffSession(Base):
    """A signed-in agent or admin. The cookie holds a random token; only its SHA-256 is kept here, so
    deleting the row (logout, password change, role change, user removal) ends the session at once, on
    every replica. The role is read from ``users`` on each request, never from the cookie."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class LoginFailure(Base):
    """A failed staff login, by account and by client address: enough of them in a window refuse further
    attempts (HTTP 429) on every replica. Rows older than the window are deleted as new ones arrive."""

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "username", "created_at"), Index(None, "address", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WrittenFile(Base):
    """A file the product wrote that may hold customers' words (an export, a nightly job's work files, a
    report), with the customers in it: erasure finds every copy here instead of guessing paths."""

    __tablename__ = "written_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1000))
    customer_hashes: Mapped[list[Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


SUGGESTION_OUTCOMES = ("as_is", "edited", "ignored")
SUGGESTION_SOURCES = ("model", "saved")


class SuggestionUse(Base):
    """What an agent did with the replies the console suggested before sending ``message_id`` (their message):
    sent one as it was (``as_is``), changed it first (``edited``) or wrote their own (``ignored``). Training
    signal beside the reviews: an n-best candidate sent as-is is a reply the model already gets right.
    ``source`` is where the used suggestion came from (the model's n-best, rank ``candidate_rank``; or a
    saved reply, i.e. company fact ``fact_id``); NULL for ``ignored``."""

    __tablename__ = "suggestion_uses"
    __table_args__ = (one_of("outcome", SUGGESTION_OUTCOMES), one_of("source", SUGGESTION_SOURCES, nullable=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16))
    candidate_rank: Mapped[int | None]
    fact_id: Mapped[int | None] = mapped_column(ForeignKey("company_facts.id", ondelete="SET NULL"))
    suggestions_shown: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
