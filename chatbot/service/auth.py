"""Passwords, customer conversation tokens and signed agent sessions.

Passwords are stored as scrypt hashes (memory-hard KDF, standard library); customer tokens are 32 random
bytes of which only a SHA-256 is stored, so a database leak gives no way into a conversation; agent
sessions are HMAC-signed cookies so any replica sharing ``secret_key`` can check them without a lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chatbot.settings import Settings

Role = Literal["agent", "admin"]
ROLES: tuple[Role, ...] = ("agent", "admin")

# scrypt cost: n=2**14, r=8 -> 16 MiB and ~50 ms per hash; the parameters travel with each hash.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32
MIN_PASSWORD_CHARS = 8


class AuthError(Exception):
    """Login failed or a credential is missing, invalid or not allowed to do this."""


class Forbidden(AuthError):
    """Authenticated, but the role may not do this."""


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh 16-byte salt."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check; a malformed stored hash is simply a mismatch."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=_SCRYPT_LEN)


def new_conversation_token() -> tuple[str, str]:
    """A fresh ``(token, token_hash)``: the customer keeps the token, the database keeps the hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, token_hash: str | None) -> bool:
    if not token or not token_hash:
        return False
    return hmac.compare_digest(hash_token(token), token_hash)


@dataclass(frozen=True)
class Principal:
    """Who is acting: an agent/admin user, from a verified session."""

    user_id: int
    username: str
    role: Role

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(f"{self.role} may not do this (needs {' or '.join(roles)})")


class SessionSigner:
    """Signs and checks ``{user_id, username, role, exp}`` as ``payload.signature`` (HMAC-SHA256)."""

    def __init__(self, secret: str | bytes, max_age_s: int = 12 * 3600) -> None:
        if not secret:
            raise ValueError("session secret must not be empty")
        self._key = secret.encode() if isinstance(secret, str) else secret
        self.max_age_s = max_age_s

    def sign(self, principal: Principal, now: float | None = None) -> str:
        exp = int((now if now is not None else time.time()) + self.max_age_s)
        body = {"uid": principal.user_id, "u": principal.username, "r": principal.role, "exp": exp}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str | None, now: float | None = None) -> Principal:
        if not value or value.count(".") != 1:
            raise AuthError("not logged in")
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise AuthError("invalid session")
        try:
            body = json.loads(_unb64(payload))
            principal = Principal(int(body["uid"]), str(body["u"]), body["r"])
            exp = int(body["exp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("invalid session") from exc
        if principal.role not in ROLES:
            raise AuthError("invalid session")
        if exp < (now if now is not None else time.time()):
            raise AuthError("session expired; log in again")
        return principal

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_secret(settings: Settings) -> str:
    """``settings.secret_key``, else a random key kept in ``data_dir/session.key`` (0600).

    Replicas must share the key to accept each other's sessions: set ``secret_key`` when they run on
    several hosts; on one host they share the file.
    """
    if settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".session.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic: the first replica to get here wins, the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
