"""Queries behind the correction analytics on ``/admin``: what agents did with the bot's replies, per model
version (never commits). Days and rates are computed by ``chatbot.service.analytics`` so SQLite and
PostgreSQL agree on what a day is (UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from chatbot.store.models import Message, Review


class ReviewOutcome(NamedTuple):
    created_at: datetime
    model_version_id: int | None  # the version that wrote the reviewed reply (None: a plain directory)
    action: str


def review_outcomes(session: Session, since: datetime) -> list[ReviewOutcome]:
    """Every review since ``since`` with the version of the reply it judged, oldest first."""
    query = (select(Review.created_at, Message.model_version_id, Review.action)
             .join(Message, Message.id == Review.message_id)
             .where(Review.created_at >= since).order_by(Review.created_at, Review.id))
    return [ReviewOutcome(*row) for row in session.execute(query)]


class CorrectedReply(NamedTuple):
    bot_text: str
    corrections: int  # edits + rejections
    edits: int
    rejections: int
    example: str | None  # one text an agent wrote instead (None: only rejected)


def most_corrected(session: Session, since: datetime, limit: int = 10) -> list[CorrectedReply]:
    """Bot replies (by exact text) that agents edited or rejected most often since ``since``."""
    edits = func.sum(case((Review.action == "edit", 1), else_=0))
    count = func.count(Review.id)
    query = (select(Review.original_text, count, edits, func.max(Review.corrected_text))
             .where(Review.created_at >= since, Review.action.in_(("edit", "reject")))
             .group_by(Review.original_text).order_by(count.desc(), Review.original_text).limit(limit))
    return [CorrectedReply(text, int(n), int(e or 0), int(n) - int(e or 0), example)
            for text, n, e, example in session.execute(query)]


class Edit(NamedTuple):
    model_version_id: int | None
    original_text: str
    corrected_text: str


def edits(session: Session, since: datetime, limit: int = 5000) -> list[Edit]:
    """The newest ``limit`` edits since ``since``: what the bot said and what the agent made of it."""
    query = (select(Message.model_version_id, Review.original_text, Review.corrected_text)
             .join(Message, Message.id == Review.message_id)
             .where(Review.created_at >= since, Review.action == "edit", Review.corrected_text.is_not(None))
             .order_by(Review.created_at.desc(), Review.id.desc()).limit(limit))
    return [Edit(*row) for row in session.execute(query)]
