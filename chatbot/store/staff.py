"""Staff accounts' server-side sessions and failed logins (repository functions; never commit).

A session row is what makes a cookie valid: deleting it ends the session on every replica at once. Failed
logins are counted per account and per client address inside a sliding window; rows older than the window
are pruned whenever a new failure is written, so the table stays small.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from chatbot.store.models import LoginFailure, StaffSession, User


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def create_session(session: Session, user_id: int, token_hash: str, expires_at: datetime) -> StaffSession:
    row = StaffSession(user_id=user_id, token_hash=token_hash, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row


def session_user(session: Session, token_hash: str, now: datetime) -> User | None:
    """The user behind a live session (its current row: role and all), or None when revoked or expired."""
    return session.scalar(
        select(User).join(StaffSession, StaffSession.user_id == User.id)
        .where(StaffSession.token_hash == token_hash, StaffSession.expires_at > now)
    )


def delete_session(session: Session, token_hash: str) -> int:
    return _rowcount(session.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash)))


def revoke_user_sessions(session: Session, user_id: int) -> int:
    """End every session of one user (password or role changed, user removed)."""
    return _rowcount(session.execute(delete(StaffSession).where(StaffSession.user_id == user_id)))


def delete_expired_sessions(session: Session, now: datetime) -> int:
    return _rowcount(session.execute(delete(StaffSession).where(StaffSession.expires_at <= now)))


def record_login_failure(session: Session, username: str, address: str, now: datetime, window: timedelta) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.created_at < now - window))
    session.add(LoginFailure(username=username[:150], address=address[:64], created_at=now))
    session.flush()


def login_failures_since(session: Session, since: datetime, *, username: str | None = None,
                         address: str | None = None) -> tuple[int, datetime | None]:
    """How many failures since ``since`` for the account or the address, and the oldest one's time."""
    query = select(func.count(LoginFailure.id), func.min(LoginFailure.created_at)).where(LoginFailure.created_at >= since)
    if username is not None:
        query = query.where(LoginFailure.username == username[:150])
    if address is not None:
        query = query.where(LoginFailure.address == address[:64])
    count, oldest = session.execute(query).one()
    if oldest is not None and oldest.tzinfo is None:  # aggregate results skip the column's type on SQLite
        from datetime import timezone

        oldest = oldest.replace(tzinfo=timezone.utc)
    return int(count or 0), oldest


def clear_login_failures(session: Session, username: str) -> None:
    """A successful login forgives the account's earlier failures (not the address's)."""
    session.execute(delete(LoginFailure).where(LoginFailure.username == username[:150]))


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
