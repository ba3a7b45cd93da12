"""Password hashing, conversation tokens and signed sessions."""

from __future__ import annotations

import pytest

from chatbot.service.auth import (
    AuthError,
    Forbidden,
    Principal,
    SessionSigner,
    hash_password,
    hash_token,
    new_conversation_token,
    token_matches,
    verify_password,
)


def test_password_hash_roundtrip_and_salt():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second, "each hash needs its own salt"
    assert first.startswith("scrypt$") and "correct horse" not in first
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsE", first)
    assert not verify_password("correct horse", "garbage")
    assert not verify_password("correct horse", "scrypt$1$2$3$!!$??")


def test_short_password_refused():
    with pytest.raises(ValueError, match="at least"):
        hash_password("short")


def test_conversation_tokens_are_random_and_only_hashes_are_kept():
    tokens = {new_conversation_token()[0] for _ in range(50)}
    assert len(tokens) == 50
    token, digest = new_conversation_token()
    assert len(token) >= 40 and token not in digest
    assert digest == hash_token(token)
    assert token_matches(token, digest)
    assert not token_matches(token + "x", digest)
    assert not token_matches(None, digest) and not token_matches(token, None)


def test_session_sign_verify_tamper_and_expiry(monkeypatch):
    import itsdangerous.timed

    clock = [1000.0]
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: clock[0])
    signer = SessionSigner("s3cret", max_age_s=60)
    cookie = signer.sign("token-123")
    assert signer.verify(cookie) == "token-123"
    clock[0] = 1061
    with pytest.raises(AuthError, match="expired"):
        signer.verify(cookie)
    clock[0] = 1010
    forged = SessionSigner("s3cret").sign("token-124")
    with pytest.raises(AuthError, match="invalid"):
        signer.verify(forged.split(".")[0] + "." + cookie.split(".", 1)[1])
    with pytest.raises(AuthError, match="invalid"):
        SessionSigner("other").verify(cookie)
    with pytest.raises(AuthError, match="not logged in"):
        signer.verify(None)


def test_principal_roles():
    Principal(1, "root", "admin").require("admin")
    with pytest.raises(Forbidden):
        Principal(2, "ana", "agent").require("admin")
