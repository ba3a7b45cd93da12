"""Repository functions for users, conversations and messages. Each takes a ``Session`` and never commits:
the caller (``ConversationStore.transaction()`` or a test) owns the transaction.

Sequence numbers: ``append_message`` bumps ``conversations.last_seq`` with one
``UPDATE ... SET last_seq = last_seq + 1 WHERE id = ? AND status allows it RETURNING last_seq``. The row
lock that UPDATE takes serialises concurrent writers on PostgreSQL (SQLite serialises all writers with
``BEGIN IMMEDIATE``), and a rolled-back transaction takes its increment with it, so every conversation's
messages are numbered 1..N with no gap and no duplicate. The same statement checks the status, so a
refused message changes nothing.

Message text goes through ``chatbot.store.textpolicy.clean_text`` (empty refused, over-long refused,
NUL removed, lone surrogates replaced, card numbers masked); see that module for the full policy.

Status transitions (``ALLOWED_TRANSITIONS``): ``closed`` is final; setting the current status again is a
no-op (used to reassign an agent); a ``human`` conversation refuses bot messages, a ``closed`` one all
messages.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from chatbot.store import audit
from chatbot.store.db import AlreadyExists, IllegalTransition, InvalidValue, NotFound
from chatbot.store.models import (
    CONVERSATION_STATUSES,
    MESSAGE_ROLES,
    REVIEW_STATES,
    USER_ROLES,
    Conversation,
    Message,
    ReplyCandidate,
    User,
    customer_sees,
    utcnow,
)
from chatbot.store.textpolicy import DEFAULT_MAX_CHARS, clean_text

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "bot": frozenset({"pending", "human", "closed"}),
    "pending": frozenset({"bot", "human", "closed"}),
    "human": frozenset({"bot", "pending", "closed"}),
    "closed": frozenset(),
}
OPEN_STATUSES = ("bot", "pending", "human")


# --- users -----------------------------------------------------------------------------------------


def create_user(
    session: Session,
    username: str,
    *,
    role: str = "customer",
    display_name: str | None = None,
    password_hash: str | None = None,
) -> User:
    """A new user; ``AlreadyExists`` when the username is taken."""
    _check_choice("role", role, USER_ROLES)
    if not username or not username.strip():
        raise InvalidValue("username is empty")
    user = User(username=username, role=role, display_name=display_name, password_hash=password_hash)
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as err:
        existing = session.scalar(select(User.id).where(User.username == username))
        raise AlreadyExists(f"username {username!r} is taken", existing) from err
    return user


def get_or_create_customer(session: Session, username: str, *, display_name: str | None = None) -> User:
    """The user named ``username``, created as a customer if missing (safe against a concurrent create)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is not None:
        return user
    try:
        return create_user(session, username, display_name=display_name)
    except AlreadyExists:
        return session.scalars(select(User).where(User.username == username)).one()


# --- conversations ---------------------------------------------------------------------------------


def start_conversation(
    session: Session,
    *,
    customer_id: int | None = None,
    language: str = "en",
    channel: str = "web",
    source: str = "live",
    external_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Conversation:
    """A new conversation in status ``bot``. Imports pass ``source`` + ``external_id``; a second import
    of the same pair raises ``AlreadyExists`` (with ``existing_id``) instead of duplicating it."""
    conversation = Conversation(
        customer_id=customer_id, language=language, channel=channel, source=source,
        external_id=external_id, meta=meta, status="bot",
    )
    try:
        with session.begin_nested():
            session.add(conversation)
    except IntegrityError as err:
        existing = find_conversation(session, source, external_id) if external_id is not None else None
        if existing is None:
            raise
        raise AlreadyExists(f"conversation {source}:{external_id} exists", existing.id) from err
    return conversation


def find_conversation(session: Session, source: str, external_id: str) -> Conversation | None:
    """The conversation imported from ``source`` under ``external_id``, if any."""
    query = select(Conversation).where(Conversation.source == source, Conversation.external_id == external_id)
    return session.scalar(query)


def get_conversation(session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return conversation


class ConversationState(NamedTuple):
    status: str
    language: str
    token_hash: str | None


def conversation_state(session: Session, conversation_id: int) -> ConversationState | None:
    """Status, language and customer-token hash in one indexed read, without building the ORM object:
    all that every customer message needs to know about its conversation."""
    row = session.execute(_STATE, {"conversation_id": conversation_id}).one_or_none()
    return ConversationState(*row) if row is not None else None


def adopt_written_language(session: Session, conversation_id: int, language: str) -> bool:
    """Set the conversation's language to the one its customer writes in, while the customer has written
    only one message (the one just stored); later messages never change it. True when it changed."""
    customer_messages = (select(func.count()).where(_MESSAGES.c.conversation_id == conversation_id,
                                                    _MESSAGES.c.role == "customer").scalar_subquery())
    changed = session.execute(update(_CONVERSATIONS).where(
        _CONVERSATIONS.c.id == conversation_id, _CONVERSATIONS.c.language != language, customer_messages == 1,
    ).values(language=language))
    return bool(changed.rowcount)


def set_status(
    session: Session, conversation_id: int, new_status: str, *, agent_id: int | None = None
) -> Conversation:
    """Move a conversation along ``ALLOWED_TRANSITIONS`` (row-locked); audited with the agent as actor.

    ``human`` records ``agent_id`` as the assigned agent; ``bot`` and ``pending`` release the agent;
    ``closed`` stamps ``closed_at``."""
    _check_choice("status", new_status, CONVERSATION_STATUSES)
    conversation = session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    old = conversation.status
    if old == "closed" or (new_status != old and new_status not in ALLOWED_TRANSITIONS[old]):
        raise IllegalTransition(f"conversation {conversation_id} is {old}; it cannot become {new_status}")
    now = utcnow()
    conversation.status = new_status
    conversation.updated_at = now
    if new_status == "human" and agent_id is not None:
        conversation.assigned_agent_id = agent_id
    elif new_status in ("bot", "pending"):
        conversation.assigned_agent_id = None
    elif new_status == "closed":
        conversation.closed_at = now
    audit.record(session, agent_id, "conversation.status", f"conversation:{conversation_id}",
                 {"from": old, "to": new_status})
    session.flush()
    return conversation


def close_conversation(session: Session, conversation_id: int, csat: int | None = None) -> Conversation:
    """Close (final) and optionally record the customer's satisfaction score, 1..5."""
    _check_csat(csat)
    conversation = set_status(session, conversation_id, "closed")
    conversation.csat = csat
    session.flush()
    return conversation


def set_csat(session: Session, conversation_id: int, csat: int) -> Conversation:
    """Record a CSAT score that arrives after closing; a score already given is not overwritten."""
    _check_csat(csat)
    conversation = session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    if conversation.csat is not None:
        raise IllegalTransition(f"conversation {conversation_id} already has CSAT {conversation.csat}")
    conversation.csat = csat
    session.flush()
    return conversation


def list_queue(
    session: Session, statuses: Iterable[str] | None = None, limit: int = 50
) -> list[Conversation]:
    """Conversations for the agent console (default: every open one): ``pending`` first, longest
    waiting first; then the others, most recently active first."""
    wanted = tuple(statuses) if statuses is not None else OPEN_STATUSES
    for status in wanted:
        _check_choice("status", status, CONVERSATION_STATUSES)
    is_pending = Conversation.status == "pending"
    query = (
        select(Conversation)
        .where(Conversation.status.in_(wanted))
        .order_by(
            case((is_pending, 0), else_=1),
            case((is_pending, Conversation.updated_at)).asc(),
            Conversation.updated_at.desc(),
            Conversation.id,
        )
        .limit(limit)
    )
    return list(session.scalars(query))


# --- messages --------------------------------------------------------------------------------------


class StoredMessage(NamedTuple):
    """What the chat path needs back from a stored message, without an ORM object behind it."""

    id: int
    seq: int
    role: str
    text: str
    created_at: datetime
    review_state: str | None
    confidence: float | None
    model_version_id: int | None


def store_message(
    session: Session,
    conversation_id: int,
    role: str,
    text: str,
    *,
    model_version_id: int | None = None,
    decoding: dict[str, Any] | None = None,
    confidence: float | None = None,
    review_state: str | None = None,
    attention: list[Any] | dict[str, Any] | None = None,
    candidates: Sequence[tuple[str, float]] | None = None,
    meta: dict[str, Any] | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    only_in: Iterable[str] | None = None,
    client_key: str | None = None,
) -> StoredMessage:
    """Store one message with the next sequence number of its conversation.

    Bot messages default to review state ``sent``; ``candidates`` are the n-best ``(text, score)``
    pairs, stored with rank 0 = best. Refused (nothing written): text against the text policy
    (``InvalidMessage``), unknown conversation (``NotFound``), a bot message in a ``human`` or
    ``closed`` conversation or any message in a ``closed`` one (``IllegalTransition``). ``only_in``
    narrows the statuses that take the message further; the check and the write are one statement, so a
    status change committed by another transaction can never slip between them.

    Core INSERTs, no unit of work: every chat turn writes two or three messages, and building and
    flushing ORM objects cost more than SQLite takes to store them. ``append_message`` is the same with
    the ORM object back."""
    _check_choice("role", role, MESSAGE_ROLES)
    if role != "bot" and (review_state is not None or candidates):
        raise InvalidValue("review_state and candidates belong to bot messages only")
    if role == "bot" and review_state is None:
        review_state = "sent"
    if review_state is not None:
        _check_choice("review_state", review_state, REVIEW_STATES)
    text = clean_text(text, max_chars)
    ranked = [{"rank": rank, "text": clean_text(cand_text, max_chars, allow_empty=True), "score": float(score)}
              for rank, (cand_text, score) in enumerate(candidates or ())]

    now = utcnow()
    allowed = _BOT_MAY_WRITE if role == "bot" else _OTHERS_MAY_WRITE
    if only_in is not None:
        narrowed = set(only_in)
        allowed = tuple(status for status in allowed if status in narrowed)
    seq = session.execute(_bump(allowed), {"conversation_id": conversation_id, "now": now}).scalar_one_or_none()
    cached = session.identity_map.get(session.identity_key(Conversation, conversation_id))
    if cached is not None:
        session.expire(cached, ["last_seq", "updated_at"])
    if seq is None:
        status = session.scalar(select(Conversation.status).where(Conversation.id == conversation_id))
        if status is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        raise IllegalTransition(f"conversation {conversation_id} is {status}; it takes no {role} messages")

    row = {
        "conversation_id": conversation_id, "seq": seq, "role": role, "text": text, "created_at": now,
        "model_version_id": model_version_id, "decoding": decoding, "confidence": confidence,
        "review_state": review_state, "attention": attention, "meta": meta,
    }
    if client_key is not None:  # a customer's Idempotency-Key: unique per conversation (a retry finds it)
        row["client_key"] = client_key
    message_id = session.execute(_INSERT_MESSAGE, row).scalar_one()
    if ranked:
        session.execute(_INSERT_CANDIDATE, [{"message_id": message_id, **c} for c in ranked])
    return StoredMessage(message_id, seq, role, text, now, review_state, confidence, model_version_id)


def append_message(session: Session, conversation_id: int, role: str, text: str, **fields: Any) -> Message:
    """``store_message`` (same arguments and refusals), returning the stored ``Message`` ORM object."""
    stored = store_message(session, conversation_id, role, text, **fields)
    message = session.get(Message, stored.id, options=[selectinload(Message.candidates)])
    assert message is not None  # written by this transaction a moment ago: usable after it ends too
    return message


def last_turns(session: Session, conversation_id: int, n: int) -> list[Message]:
    """The last ``n`` messages, oldest first: the model's context. One index range scan on
    (conversation_id, seq), so it costs the same however large the store grows."""
    if n <= 0:
        return []
    newest_first = list(session.scalars(_LAST_TURNS, {"conversation_id": conversation_id, "n": n}))
    if not newest_first and session.get(Conversation, conversation_id) is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    newest_first.reverse()
    return newest_first


# The statements every chat turn runs, built once per status set (building them costs more than SQLite
# runs them). Core UPDATE rather than ORM-enabled UPDATE: a third of the overhead on the hottest path.
_OTHERS_MAY_WRITE = tuple(status for status in CONVERSATION_STATUSES if status != "closed")
_BOT_MAY_WRITE = tuple(status for status in CONVERSATION_STATUSES if status not in ("closed", "human"))


@functools.cache
def _bump(allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]
    table = Conversation.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("conversation_id"), table.c.status.in_(allowed))
        .values(last_seq=table.c.last_seq + 1, updated_at=bindparam("now"))
        .returning(table.c.last_seq)
    )

_CONVERSATIONS, _MESSAGES = Conversation.__table__, Message.__table__
_STATE = select(_CONVERSATIONS.c.status, _CONVERSATIONS.c.language, _CONVERSATIONS.c.token_hash).where(
    _CONVERSATIONS.c.id == bindparam("conversation_id"))
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_INSERT_CANDIDATE = insert(ReplyCandidate.__table__)
_LAST_TURNS = (
    select(Message)
    .where(Message.conversation_id == bindparam("conversation_id"))
    .order_by(Message.seq.desc())
    .limit(bindparam("n"))
)


def stats(session: Session) -> dict[str, Any]:
    """Counts for ``chatbot stats``: conversations, messages, and both broken down."""
    by_status = dict.fromkeys(CONVERSATION_STATUSES, 0)
    by_status.update(session.execute(select(Conversation.status, func.count()).group_by(Conversation.status)).tuples().all())
    by_role = dict.fromkeys(MESSAGE_ROLES, 0)
    by_role.update(session.execute(select(Message.role, func.count()).group_by(Message.role)).tuples().all())
    return {
        "conversations": sum(by_status.values()),
        "messages": sum(by_role.values()),
        "by_status": by_status,
        "by_role": by_role,
    }


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidValue(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _check_csat(csat: int | None) -> None:
    if csat is not None and (isinstance(csat, bool) or not isinstance(csat, int) or not 1 <= csat <= 5):
        raise InvalidValue(f"CSAT must be an integer from 1 to 5, not {csat!r}")


def visible_context(session: Session, conversation_id: int, turns: int, before_seq: int | None = None) -> list[tuple[str, str]]:
    """The last ``turns`` turns the customer actually saw (drafts, rejected replies and notices left out),
    oldest first. Reads three columns only: a bot row's attention JSON costs more to load than a decode."""
    params = {"conversation_id": conversation_id, "n": 3 * turns, "before_seq": before_seq}
    query = _CONTEXT if before_seq is None else _CONTEXT_BEFORE
    rows = [(role, text) for role, text, state in session.execute(query, params) if customer_sees(role, state)]
    return rows[:turns][::-1]


# Built once: every customer message runs _CONTEXT (Core columns, no ORM compile step per call).
_M = _MESSAGES.c
_CONTEXT = (select(_M.role, _M.text, _M.review_state)
            .where(_M.conversation_id == bindparam("conversation_id"), _M.role != "system")
            .order_by(_M.seq.desc()).limit(bindparam("n")))
_CONTEXT_BEFORE = _CONTEXT.where(_M.seq < bindparam("before_seq"))


def conversation_texts(session: Session, conversation_id: int, limit: int = 200) -> list[str]:
    """The texts of the conversation's last ``limit`` messages that reached the customer (customer, agent
    and sent bot turns; drafts, rejected replies and notices left out), oldest first: what a reply may
    take its details from (``chatbot.text.grounding``). One index range scan on (conversation_id, seq)."""
    rows = session.execute(_CONTEXT, {"conversation_id": conversation_id, "n": limit})
    return [text for role, text, state in rows if customer_sees(role, state)][::-1]


# --- idempotent sends and recovery (issue 19) ----------------------------------------------------------------
def message_by_client_key(session: Session, conversation_id: int, client_key: str) -> Message | None:
    """The customer message a sender stored under this Idempotency-Key, if any."""
    return session.scalar(select(Message).where(Message.conversation_id == conversation_id,
                                                Message.client_key == client_key))


def messages_after(session: Session, conversation_id: int, seq: int, *, stop_at_customer: bool = True
                   ) -> list[Message]:
    """The messages after ``seq`` (up to the next customer message unless ``stop_at_customer`` is off):
    what answered that one."""
    rows = session.scalars(select(Message).where(Message.conversation_id == conversation_id, Message.seq > seq)
                           .order_by(Message.seq).limit(20))
    out = []
    for message in rows:
        if message.role == "customer" and stop_at_customer:
            break
        out.append(message)
    return out


def unanswered_customer_messages(session: Session, stored_before: datetime, limit: int = 100) -> list[tuple[int, int]]:
    """``(conversation_id, seq)`` of bot conversations whose newest message is a customer's, stored before
    ``stored_before``: someone was left without an answer (a fault or a restart between the two writes).
    One probe per conversation through ``last_seq`` and the ``(conversation_id, seq)`` key."""
    query = (select(Conversation.id, Message.seq)
             .join(Message, (Message.conversation_id == Conversation.id) & (Message.seq == Conversation.last_seq))
             .where(Conversation.status == "bot", Message.role == "customer", Message.created_at < stored_before)
             .order_by(Message.created_at).limit(limit))
    return [(int(cid), int(seq)) for cid, seq in session.execute(query)]


# --- row reads and locks the service decides on ---------------------------------------------------------------
def lock_conversation(session: Session, conversation_id: int) -> Conversation | None:
    """The conversation, row-locked (``SELECT ... FOR UPDATE`` where the engine has it) and re-read, so a
    decision on its status holds until the transaction ends; None when it does not exist."""
    return session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)


def lock_message(session: Session, message_id: int) -> Message:
    """The message, row-locked and re-read (a rating or a review changes it); ``NotFound`` when missing."""
    message = session.get(Message, message_id, with_for_update=True, populate_existing=True)
    if message is None:
        raise NotFound(f"message {message_id} does not exist")
    return message


def get_message(session: Session, message_id: int) -> Message | None:
    return session.get(Message, message_id)


def messages_of(session: Session, conversation_id: int) -> list[Message]:
    """Every message of the conversation, oldest first (what a viewer filters)."""
    return list(session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                                .order_by(Message.seq)))


def message_at(session: Session, conversation_id: int, seq: int) -> Message | None:
    """The message at ``seq`` of the conversation, through the (conversation_id, seq) key."""
    return session.scalar(select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq))
