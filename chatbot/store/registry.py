"""Model registry: which trained model directories exist and which one serves (never commits).

Exactly one version is ``active`` at a time; serving reads it from here. Promotion retires the previous
active version, rollback re-activates the version that was active before it according to the promotion
history (``model_promotions``), skipping versions rolled back away from. On PostgreSQL a
transaction-scoped advisory lock serialises status changes so two promotions cannot both win; SQLite
write transactions are already serial (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from chatbot.store.audit import record
from chatbot.store.db import IllegalTransition, NotFound
from chatbot.store.models import ModelPromotion, ModelVersion, utcnow

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
    version.shadowed_at = None  # it serves now: nothing left to shadow (``chatbot.store.shadow``)
    session.flush()
    _remember(session, version.id, "promote", previous.id if previous else None, actor_id)
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
    """Re-activate the version that served before the active one (``rollback_target``); the active one
    becomes retired. Repeated rollbacks walk further back; a version rolled back away from is skipped."""
    _lock(session)
    current = active_version(session)
    if current is None:
        raise IllegalTransition("no active model version to roll back from")
    earlier = rollback_target(session)
    current.status = "retired"
    session.flush()
    earlier.status = "active"
    session.flush()
    _remember(session, earlier.id, "rollback", current.id, actor_id)
    record(session, actor_id, "model.rollback", f"model_version:{earlier.id}", {"from": current.id})
    return earlier


def rollback_target(session: Session) -> ModelVersion:
    """The version a rollback would activate now; ``IllegalTransition`` when there is none."""
    current = active_version(session)
    if current is None:
        raise IllegalTransition("no active model version to roll back from")
    earlier = next(iter(fallbacks(session)), None)
    if earlier is None:
        raise IllegalTransition(f"no earlier model version to roll back to from {current.id} ({current.name})")
    return earlier


def serving_stack(session: Session) -> list[int]:
    """Version ids from the first promotion to the active version: the promotion history replayed, each
    promotion pushing its version and each rollback popping the version it left."""
    stack: list[int] = []
    for action, version_id in session.execute(
            select(ModelPromotion.action, ModelPromotion.version_id).order_by(ModelPromotion.id)):
        if action == "rollback":
            while stack and stack[-1] != version_id:
                stack.pop()
            if not stack:
                stack.append(version_id)
        else:
            stack.append(version_id)
    return stack


def fallbacks(session: Session) -> list[ModelVersion]:
    """Versions that served before the active one, most recent first (each once), never rejected ones:
    where rollback goes, and what serving falls back to when the active version cannot load."""
    current = active_version(session)
    stack = serving_stack(session)
    if current is None or not stack or stack[-1] != current.id:
        # No usable history (versions activated outside ``promote``): the latest earlier promotion first.
        query = select(ModelVersion).where(ModelVersion.status == "retired", ModelVersion.promoted_at.is_not(None))
        if current is not None and current.promoted_at is not None:
            query = query.where(ModelVersion.promoted_at < current.promoted_at)
        return list(session.scalars(query.order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())))
    out: list[ModelVersion] = []
    for version_id in reversed(stack[:-1]):
        version = session.get(ModelVersion, version_id)
        if version is not None and version.id != current.id and version.status == "retired" and version not in out:
            out.append(version)
    return out


def _remember(session: Session, version_id: int, action: str, previous_id: int | None, actor_id: int | None) -> None:
    session.add(ModelPromotion(version_id=version_id, action=action, previous_id=previous_id, actor_id=actor_id))
    session.flush()
