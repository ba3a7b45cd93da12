"""Audit trail: who did what to which object, for agents' and admins' actions (never commits)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from chatbot.store.models import AuditLog


def record(
    session: Session, actor_id: int | None, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditLog:
    """Add one audit entry, e.g. ``record(s, agent.id, "conversation.status", "conversation:7", {...})``."""
    entry = AuditLog(actor_id=actor_id, action=action, target=target, details=details)
    session.add(entry)
    return entry
