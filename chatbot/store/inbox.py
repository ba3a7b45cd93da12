"""Repository functions for the agent workspace: inbox views with counts, text search, the review queue,
and what agents did with suggested replies. Each takes a ``Session`` and never commits.

A conversation *waits* from its customer's oldest message that nothing answered yet: no agent message and
no bot reply the customer saw (``CUSTOMER_VISIBLE_STATES``) came after it. A draft is not an answer, so in
draft mode the customer waits until an agent approves it. Waiting time, preview (the customer's last
message) and the row itself are read in one statement per view, with correlated subqueries that each scan
one conversation's messages on the ``(conversation_id, seq)`` index, so the cost follows the conversations
listed, never the size of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from chatbot.store.db import InvalidValue
from chatbot.store.models import (
    CUSTOMER_VISIBLE_STATES,
    SUGGESTION_OUTCOMES,
    SUGGESTION_SOURCES,
    Conversation,
    Message,
    SuggestionUse,
    User,
    utcnow,
)

VIEWS = ("waiting", "mine", "drafts", "bot", "closed")
PREVIEW_CHARS = 160
SAMPLE_DAYS = 7  # sampled sent replies older than this leave the review queue unreviewed
_SENT_STATES = tuple(s for s in CUSTOMER_VISIBLE_STATES if s is not None)


class InboxRow(NamedTuple):
    id: int
    status: str
    language: str
    assigned_agent_id: int | None
    agent_name: str | None
    preview: str | None  # the start of the customer's last message
    waiting_since: datetime | None  # None: nothing of the customer's is unanswered
    updated_at: datetime
    drafts: int


class ReviewItem(NamedTuple):
    message_id: int
    conversation_id: int
    language: str
    text: str
    review_state: str  # "draft" (waits for approval) or "sent" (sampled for a second look)
    created_at: datetime
    customer_text: str | None  # the customer's message the reply answers


def _answered_seq(conversation_id):  # type: ignore[no-untyped-def]
    m = aliased(Message)
    answer = or_(m.role == "agent", and_(m.role == "bot", m.review_state.in_(_SENT_STATES)))
    return (select(func.coalesce(func.max(m.seq), 0))
            .where(m.conversation_id == conversation_id, answer).scalar_subquery())


def _waiting_since(conversation_id):  # type: ignore[no-untyped-def]
    m = aliased(Message)
    return (select(func.min(m.created_at))
            # correlated with this subquery's own row (SQLAlchemy correlates to the enclosing SELECT only)
            .where(m.conversation_id == conversation_id, m.role == "customer", m.seq > _answered_seq(m.conversation_id))
            .scalar_subquery())


def _preview(conversation_id):  # type: ignore[no-untyped-def]
    m = aliased(Message)
    return (select(func.substr(m.text, 1, PREVIEW_CHARS))
            .where(m.conversation_id == conversation_id, m.role == "customer")
            .order_by(m.seq.desc()).limit(1).scalar_subquery())


def _has_draft():  # type: ignore[no-untyped-def]
    return exists().where(Message.conversation_id == Conversation.id, Message.role == "bot",
                          Message.review_state == "draft")


def _view_filter(view: str, agent_id: int | None):  # type: ignore[no-untyped-def]
    if view == "waiting":
        return Conversation.status == "pending"
    if view == "mine":
        return and_(Conversation.status == "human", Conversation.assigned_agent_id == agent_id)
    if view == "drafts":
        return and_(Conversation.status.in_(("bot", "pending")), _has_draft())
    if view == "bot":
        return Conversation.status == "bot"
    if view == "closed":
        return Conversation.status == "closed"
    raise InvalidValue(f"unknown inbox view {view!r}; expected one of {', '.join(VIEWS)}")


def inbox(session: Session, view: str, agent_id: int | None, *, search: str | None = None,
          limit: int = 100) -> list[InboxRow]:
    """The conversations of one view, longest waiting first (then most recently active; ``closed``: most
    recently closed first). With ``search`` the view is ignored: every conversation whose messages contain
    the text (case-insensitive), or whose id it is, in any status."""
    agent = aliased(User)
    waiting = _waiting_since(Conversation.id).label("waiting_since")
    drafts = (select(func.count()).where(Message.conversation_id == Conversation.id, Message.role == "bot",
                                         Message.review_state == "draft").scalar_subquery())
    query = (select(Conversation.id, Conversation.status, Conversation.language, Conversation.assigned_agent_id,
                    func.coalesce(agent.display_name, agent.username), _preview(Conversation.id),
                    waiting,
                    Conversation.updated_at, drafts)
             .outerjoin(agent, agent.id == Conversation.assigned_agent_id))
    if search is not None and search.strip():
        query = query.where(_matching(search.strip()))
        order = [Conversation.updated_at.desc(), Conversation.id.desc()]
    else:
        query = query.where(_view_filter(view, agent_id))
        if view == "closed":
            order = [Conversation.closed_at.desc(), Conversation.id.desc()]
        else:
            order = [case((waiting.is_(None), 1), else_=0), waiting.asc(), Conversation.updated_at.desc(),
                     Conversation.id]
    rows = session.execute(query.order_by(*order).limit(limit)).tuples()
    # A closed conversation waits for nobody, whatever its last message was.
    return [InboxRow(*row[:6], None if row[1] == "closed" else row[6], *row[7:]) for row in rows]


def _matching(text: str):  # type: ignore[no-untyped-def]
    if len(text) > 200:
        raise InvalidValue("search for at most 200 characters")
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = select(Message.conversation_id).where(func.lower(Message.text).like(f"%{escaped}%", escape="\\"))
    condition = Conversation.id.in_(found)
    if text.isdigit() and len(text) < 12:
        condition = or_(condition, Conversation.id == int(text))
    return condition


def inbox_counts(session: Session, agent_id: int | None) -> dict[str, int]:
    """How many conversations each view holds (``VIEWS`` order), in one statement."""
    def count(condition) -> object:  # type: ignore[no-untyped-def]
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(select(*(count(_view_filter(view, agent_id)) for view in VIEWS))).one()
    return {view: int(n) for view, n in zip(VIEWS, row)}


def review_queue(session: Session, sample_share: float = 0.0, *, limit: int = 50,
                 now: datetime | None = None) -> list[ReviewItem]:
    """Bot replies waiting for an agent, oldest first: every draft of an open conversation an agent does
    not handle yet (``bot`` or ``pending``), and, with ``sample_share`` > 0, that share of the replies sent
    in the last ``SAMPLE_DAYS`` that nobody reviewed (picked by message id: the same ones on every replica
    and every refresh)."""
    if not 0 <= sample_share <= 1:
        raise InvalidValue("the review sample share is between 0 and 1")
    customer = aliased(Message)
    asked = (select(customer.text).where(customer.conversation_id == Message.conversation_id,
                                         customer.role == "customer", customer.seq < Message.seq)
             .order_by(customer.seq.desc()).limit(1).scalar_subquery())
    wanted = Message.review_state == "draft"
    percent = round(sample_share * 100)
    if percent > 0:
        since = (now or utcnow()) - timedelta(days=SAMPLE_DAYS)
        wanted = or_(wanted, and_(Message.review_state == "sent", Message.created_at >= since,
                                  Message.id % 100 < literal(percent)))
    query = (select(Message.id, Message.conversation_id, Conversation.language, Message.text, Message.review_state,
                    Message.created_at, asked)
             .join(Conversation, Conversation.id == Message.conversation_id)
             .where(Message.role == "bot", wanted, Conversation.status.in_(("bot", "pending")))
             .order_by(Message.created_at, Message.id).limit(limit))
    return [ReviewItem(*row) for row in session.execute(query).tuples()]


def staff(session: Session) -> list[tuple[int, str]]:
    """Agents and admins as ``(id, name)``, by name: whom a conversation may be assigned to."""
    name = func.coalesce(User.display_name, User.username)
    query = select(User.id, name).where(User.role.in_(("agent", "admin"))).order_by(name, User.id)
    return [(uid, str(n)) for uid, n in session.execute(query).tuples()]


def record_suggestion_use(session: Session, message_id: int, agent_id: int | None, outcome: str, *,
                          source: str | None = None, candidate_rank: int | None = None,
                          fact_id: int | None = None, shown: int = 0) -> SuggestionUse:
    """What the agent did with the suggestions shown before sending ``message_id`` (their message)."""
    if outcome not in SUGGESTION_OUTCOMES:
        raise InvalidValue(f"unknown suggestion outcome {outcome!r}; expected one of {', '.join(SUGGESTION_OUTCOMES)}")
    if source is not None and source not in SUGGESTION_SOURCES:
        raise InvalidValue(f"unknown suggestion source {source!r}; expected one of {', '.join(SUGGESTION_SOURCES)}")
    if (source is None) != (outcome == "ignored"):
        raise InvalidValue("a used suggestion has a source; an ignored one has none")
    use = SuggestionUse(message_id=message_id, agent_id=agent_id, outcome=outcome, source=source,
                        candidate_rank=candidate_rank, fact_id=fact_id, suggestions_shown=shown)
    session.add(use)
    session.flush()
    return use


def suggestion_uses(session: Session, message_ids: Iterable[int]) -> dict[int, SuggestionUse]:
    """The suggestion use recorded for each of these (agent) messages that has one."""
    ids = list(message_ids)
    if not ids:
        return {}
    return {use.message_id: use for use in session.scalars(select(SuggestionUse)
                                                            .where(SuggestionUse.message_id.in_(ids)))}
