"""A database that is unreachable or goes away mid-run: ``StoreUnavailable``, nothing half-written, and
the same store works again once the database is back."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from chatbot.store import ConversationStore, StoreUnavailable
from chatbot.store import conversations as repo
from tests.shortcuts import ShortcutStore


def _terminate_backends(db_url: str) -> int:
    """What a server restart does to our connections (we cannot restart the shared server)."""
    name = make_url(db_url).database
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
    return int(killed[0]) if killed else 0


def test_closed_port_is_unavailable_with_password_masked() -> None:
    store = ConversationStore("postgresql+psycopg://postgres:hunter2@127.0.0.1:1/chatbot")
    try:
        for _ in range(2):  # and stays a clean error on every call, no hang, no half state
            with pytest.raises(StoreUnavailable) as caught:
                store.stats()
            message = str(caught.value)
            assert "127.0.0.1:1" in message and "***" in message and "hunter2" not in message
    finally:
        store.close()


def test_connection_killed_mid_transaction_loses_the_whole_transaction_only(postgresql_url: str) -> None:
    with ShortcutStore(postgresql_url) as store:
        conv = store.start_conversation()
        store.append_message(conv.id, "customer", "before")
        failed = pytest.raises(StoreUnavailable, match="database unavailable at postgresql")
        with failed, store.transaction() as session:
            repo.append_message(session, conv.id, "customer", "half of a transaction")
            assert _terminate_backends(postgresql_url) >= 1
            repo.append_message(session, conv.id, "bot", "the other half")
        store.append_message(conv.id, "customer", "after")  # the pool recovered by itself
        turns = store.last_turns(conv.id, 10)
        assert [(t.seq, t.text) for t in turns] == [(1, "before"), (2, "after")]


def test_idle_connections_killed_between_calls_are_replaced(postgresql_url: str) -> None:
    with ShortcutStore(postgresql_url) as store:
        conv = store.start_conversation()
        store.append_message(conv.id, "customer", "one")
        assert _terminate_backends(postgresql_url) >= 1
        store.append_message(conv.id, "customer", "two")  # pool_pre_ping: no error at all
        assert [t.seq for t in store.last_turns(conv.id, 5)] == [1, 2]


def test_missing_postgresql_database_is_unavailable_then_recovers(postgresql_url: str) -> None:
    name = make_url(postgresql_url).database
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        with ShortcutStore(postgresql_url) as store:
            with pytest.raises(StoreUnavailable, match="does not exist"):
                store.start_conversation()
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            conv = store.start_conversation()  # migrates on this first successful use
            assert store.append_message(conv.id, "customer", "hello").seq == 1


def test_sqlite_directory_that_cannot_exist_is_unavailable_then_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    with ShortcutStore(f"sqlite:///{blocker}/chatbot.db") as store:
        with pytest.raises(StoreUnavailable, match="not-a-directory"):
            store.start_conversation()
        blocker.unlink()
        conv = store.start_conversation()
        assert store.append_message(conv.id, "customer", "hello").seq == 1
        assert (blocker / "chatbot.db").is_file()


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "chatbot.db"
    bogus.write_bytes(b"this is not an SQLite file" * 100)
    with ConversationStore(f"sqlite:///{bogus}") as store, pytest.raises(StoreUnavailable, match="not a database"):
        store.stats()
    assert bogus.read_bytes() == b"this is not an SQLite file" * 100  # left alone
