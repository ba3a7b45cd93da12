"""Staff sign-in: throttled logins, server-side sessions, and account changes that end sessions.

The cookie carries a signed random token; the store keeps its SHA-256 in ``staff_sessions``. Every request
reads the session and the user's *current* role from the store, so a logout, a password change, a demotion
or a removed user take effect on the next request, on every replica. Failed logins are counted per account
and per client address in a sliding window; past the limit even the right password gets ``TooManyAttempts``
(HTTP 429) until the window has passed, which is what stops guessing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from chatbot.service.auth import (
    ROLES,
    AuthError,
    Principal,
    SessionSigner,
    TooManyAttempts,
    hash_password,
    hash_token,
    verify_password,
)
from chatbot.settings import Settings
from chatbot.store import audit
from chatbot.store import conversations as users
from chatbot.store import staff as repo
from chatbot.store.db import InvalidValue, NotFound
from chatbot.store.manager import ConversationStore
from chatbot.store.models import User, utcnow

_DUMMY_HASH = hash_password("not-a-real-password")


def _storable(text: str, limit: int = 150) -> str:
    """``text`` without control characters or lone surrogates, cut to ``limit``: fit for a VARCHAR column."""
    cleaned = "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else "?" for c in text)
    return cleaned[:limit]


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    cookie: str  # the value of the session cookie


class StaffAuth:
    def __init__(self, store: ConversationStore, settings: Settings, signer: SessionSigner) -> None:
        self.store, self.settings, self.signer = store, settings, signer
        self.window = timedelta(seconds=settings.login_failure_window_s)

    # --- login ------------------------------------------------------------------------------------
    def login(self, username: str, password: str, address: str = "local") -> Principal:
        """The agent or admin with this password; the same ``AuthError`` for every kind of failure and
        ``TooManyAttempts`` once the account or the address failed too often in the window."""
        now = utcnow()
        # No account is named with control characters or past the column's 150: such a name (NUL makes
        # PostgreSQL refuse the query) fails like any wrong name, counted under a form the store can hold.
        plausible = len(username) <= 150 and username.isprintable()
        username = username if plausible else _storable(username)
        address = _storable(address, 64)
        with self.store.transaction(read_only=True) as s:
            self._throttle(s, username, address, now)
            user = repo.user_by_name(s, username) if plausible else None
            staff = user is not None and user.role in ROLES and bool(user.password_hash)
            found = Principal(user.id, user.username, user.role) if user is not None and staff else None  # type: ignore[arg-type]
            stored_hash = user.password_hash if staff and user is not None else _DUMMY_HASH
        # scrypt (~50 ms) runs outside any transaction; an unknown user costs the same (no enumeration).
        ok = verify_password(password, stored_hash or _DUMMY_HASH) and found is not None
        with self.store.transaction() as s:
            if ok and found is not None:
                repo.clear_login_failures(s, username)
                audit.record(s, found.user_id, "user.login", f"user:{found.user_id}")
                return found
            repo.record_login_failure(s, username, address, now, self.window)
            if found is not None:
                audit.record(s, found.user_id, "user.login_failed", f"user:{found.user_id}")
        raise AuthError("wrong username or password")

    def sign_in(self, username: str, password: str, address: str = "local") -> SignedIn:
        """``login`` plus a new server-side session; the cookie value goes to the browser."""
        who = self.login(username, password, address)
        token = secrets.token_urlsafe(32)
        with self.store.transaction() as s:
            now = utcnow()
            repo.delete_expired_sessions(s, now)
            repo.create_session(s, who.user_id, hash_token(token),
                                now + timedelta(seconds=self.signer.max_age_s))
        return SignedIn(who, self.signer.sign(token))

    def _throttle(self, s: Session, username: str, address: str, now: datetime) -> None:
        since = now - self.window
        for (count, oldest), limit, what in (
            (repo.login_failures_since(s, since, username=username), self.settings.login_max_failures, "this account"),
            (repo.login_failures_since(s, since, address=address), self.settings.login_max_failures_per_address,
             "your address"),
        ):
            if count >= limit:
                wait = self.window - (now - oldest) if oldest is not None else self.window
                retry = max(1, int(wait.total_seconds()) + 1)
                raise TooManyAttempts(f"too many failed logins for {what}; try again in {retry} s", retry)

    # --- sessions ---------------------------------------------------------------------------------
    def principal(self, cookie: str | None) -> Principal:
        """Who holds this cookie now: ``AuthError`` when it is forged, expired, logged out or revoked, or
        when the user is no longer staff. The role comes from the user's row, not from the cookie."""
        token = self.signer.verify(cookie)
        with self.store.transaction(read_only=True) as s:
            user = repo.session_user(s, hash_token(token), utcnow())
            if user is None:
                raise AuthError("session ended; log in again")
            if user.role not in ROLES:
                raise AuthError("this account may no longer sign in")
            return Principal(user.id, user.username, user.role)  # type: ignore[arg-type]

    def sign_out(self, cookie: str | None) -> None:
        """End this session (a missing or forged cookie has nothing to end)."""
        try:
            token = self.signer.verify(cookie)
        except AuthError:
            return
        with self.store.transaction() as s:
            repo.delete_session(s, hash_token(token))

    # --- accounts ---------------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str, display_name: str | None = None) -> int:
        if role not in ROLES:
            raise InvalidValue(f"role must be agent or admin, not {role!r}")
        with self.store.transaction() as s:
            user = users.create_user(s, username, role=role, display_name=display_name,
                                     password_hash=hash_password(password))
            audit.record(s, None, "user.create", f"user:{user.id}", {"role": role})
            return user.id

    # --- account changes: each ends the user's sessions -----------------------------------------------
    def set_password(self, username: str, password: str, actor_id: int | None = None) -> int:
        with self.store.transaction() as s:
            user = _staff_user(s, username)
            user.password_hash = hash_password(password)
            ended = repo.revoke_user_sessions(s, user.id)
            audit.record(s, actor_id, "user.password", f"user:{user.id}", {"sessions_ended": ended})
            return ended

    def set_role(self, username: str, role: str, actor_id: int | None = None) -> int:
        if role not in (*ROLES, "customer"):
            raise InvalidValue(f"role must be agent, admin or customer, not {role!r}")
        with self.store.transaction() as s:
            user = _staff_user(s, username)
            before, user.role = user.role, role
            ended = repo.revoke_user_sessions(s, user.id)
            audit.record(s, actor_id, "user.role", f"user:{user.id}",
                         {"from": before, "to": role, "sessions_ended": ended})
            return ended

    def remove_user(self, username: str, actor_id: int | None = None) -> int:
        """Delete a staff account; its sessions go with it (and are deleted explicitly, whatever the engine
        does with ON DELETE CASCADE). Conversations and reviews keep their rows with the agent unset."""
        with self.store.transaction() as s:
            user = _staff_user(s, username)
            ended = repo.revoke_user_sessions(s, user.id)
            audit.record(s, actor_id, "user.remove", f"user:{user.id}", {"sessions_ended": ended})
            s.delete(user)
            s.flush()
            return ended


def _staff_user(s: Session, username: str) -> User:
    user = repo.user_by_name(s, username)
    if user is None or user.role not in (*ROLES, "customer") or (user.role == "customer" and not user.password_hash):
        raise NotFound(f"no staff account {username!r}")
    return user
