"""Passwords, customer conversation tokens and signed agent sessions.

Passwords are stored as scrypt hashes (memory-hard KDF, standard library); customer tokens are 32 random
bytes of which only a SHA-256 is stored, so a database leak gives no way into a conversation; agent
sessions are signed cookies (itsdangerous) carrying a random token whose hash is a row in ``staff_sessions``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
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


class TooManyAttempts(AuthError):
    """Too many failed logins for this account or from this address: wait ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SessionSigner:
    """Signs the random session token that goes into the staff cookie (``itsdangerous``, timestamped).

    The signature only says the token came from us and is not older than ``max_age_s``; whether the session
    still exists, and which role its user has, is read from the store on every request
    (``chatbot.service.staff``), so logout, a password or role change and user removal take effect at once.
    """

    def __init__(self, secret: str | bytes, max_age_s: int = 12 * 3600) -> None:
        if not secret:
            raise ValueError("session secret must not be empty")
        from itsdangerous import URLSafeTimedSerializer

        self._serializer = URLSafeTimedSerializer(secret, salt="chatbot-staff-session")
        self.max_age_s = max_age_s

    def sign(self, token: str) -> str:
        return str(self._serializer.dumps(token))

    def verify(self, value: str | None) -> str:
        """The token inside a cookie; ``AuthError`` when missing, forged or too old."""
        from itsdangerous import BadSignature, SignatureExpired

        if not value:
            raise AuthError("not logged in")
        try:
            token = self._serializer.loads(value, max_age=self.max_age_s)
        except SignatureExpired as exc:
            raise AuthError("session expired; log in again") from exc
        except BadSignature as exc:
            raise AuthError("invalid session") from exc
        if not isinstance(token, str) or not token:
            raise AuthError("invalid session")
        return token


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
