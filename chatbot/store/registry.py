"""Model registry: which trained model directories exist and which one serves (never commits).

Exactly one version is ``active`` at a time; serving reads it from here. Promotion retires the previous
active version, rollback re-activates the version that was active before it. On PostgreSQL a
transaction-scoped advisory lock serialises status changes so two promotions cannot both win; SQLite
write transactions are already serial (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from chatbot.store.audit import record
from chatbot.store.db import IllegalTransition, NotFound
from chatbot.store.models import ModelVersion, utcnow

_REGISTRY_LOCK_KEY = 0x6D6F64656C  # "model"


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _REGISTRY_LOCK_KEY})


def register(
    session: Session,
    name: str,
    path: str,
    manifest: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    notes: str | None = None,
) -> ModelVersion:
    """Add a ``candidate`` version; names are unique."""
    if session.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
        raise IllegalTransition(f"a model version named {name!r} is already registered")
    version = ModelVersion(name=name, path=str(path), status="candidate", manifest=manifest, metrics=metrics,
                           notes=notes)
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"no model version {version_id}")
    return version


def list_versions(session: Session) -> list[ModelVersion]:
    """Newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())))


def active_version(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.status == "active")).first()


def set_metrics(session: Session, version_id: int, metrics: dict[str, Any]) -> ModelVersion:
    version = get_version(session, version_id)
    version.metrics = {**(version.metrics or {}), **metrics}
    return version


def promote(session: Session, version_id: int, actor_id: int | None = None, reason: str = "") -> ModelVersion:
    """Make a candidate (or a retired version) active and retire the one serving now."""
    _lock(session)
    version = get_version(session, version_id)
    if version.status == "active":
        raise IllegalTransition(f"model version {version_id} ({version.name}) is already active")
    if version.status == "rejected":
        raise IllegalTransition(
            f"model version {version_id} ({version.name}) was rejected by the promotion gate: {version.notes or ''}"
        )
    previous = active_version(session)
    if previous is not None:
        previous.status = "retired"
    version.status = "active"
    version.promoted_at = utcnow()
    session.flush()
    record(session, actor_id, "model.promote", f"model_version:{version.id}",
           {"previous": previous.id if previous else None, "reason": reason})
    return version


def reject(session: Session, version_id: int, reasons: list[str], actor_id: int | None = None) -> ModelVersion:
    """Record that the gate (or a person) refused a candidate, and why."""
    version = get_version(session, version_id)
    if version.status != "candidate":
        raise IllegalTransition(f"only candidates can be rejected; version {version_id} is {version.status}")
    version.status = "rejected"
    version.notes = "; ".join(reasons)
    record(session, actor_id, "model.reject", f"model_version:{version.id}", {"reasons": reasons})
    return version


def rollback(session: Session, actor_id: int | None = None) -> ModelVersion:
    """Re-activate the version promoted last before the active one; the active one becomes retired.

    ``promoted_at`` keeps the first promotion time, so repeated rollbacks walk further back in history.
    """
    _lock(session)
    current = active_version(session)
    if current is None:
        raise IllegalTransition("no active model version to roll back from")
    earlier = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.status == "retired", ModelVersion.promoted_at.is_not(None),
               ModelVersion.promoted_at < current.promoted_at)
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
    ).first()
    if earlier is None:
        raise IllegalTransition(f"no earlier model version to roll back to from {current.id} ({current.name})")
    current.status = "retired"
    session.flush()
    earlier.status = "active"
    session.flush()
    record(session, actor_id, "model.rollback", f"model_version:{earlier.id}", {"from": current.id})
    return earlier
