"""Queries behind the daily figures on ``/admin`` (never commit). Days and rates are computed by
``chatbot.service.dashboard`` in Python, so SQLite and PostgreSQL agree on what a day is (UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.store.models import AuditLog, Conversation, Review


def live_conversations_since(session: Session, since: datetime) -> list[tuple[datetime, int | None]]:
    """(created_at, csat) of every live (not imported) conversation started since ``since``."""
    rows = session.execute(select(Conversation.created_at, Conversation.csat)
                           .where(Conversation.created_at >= since, Conversation.source == "live"))
    return [(created, score) for created, score in rows]


def status_changes_since(session: Session, since: datetime) -> list[tuple[datetime, str, dict[str, Any] | None]]:
    """(created_at, target, details) of every audited conversation status change since ``since``."""
    rows = session.execute(select(AuditLog.created_at, AuditLog.target, AuditLog.details)
                           .where(AuditLog.action == "conversation.status", AuditLog.created_at >= since))
    return [(created, target, details) for created, target, details in rows]


def reviews_since(session: Session, since: datetime) -> list[tuple[datetime, str]]:
    """(created_at, action) of every agent review since ``since``."""
    rows = session.execute(select(Review.created_at, Review.action).where(Review.created_at >= since))
    return [(created, action) for created, action in rows]
