"""Fixtures shared by every area's tests: real databases, fresh for each test.

* ``_hermetic_env`` (autouse): removes every ``CHATBOT_*`` variable, so a developer's environment
  cannot change what a test sees. Build settings explicitly (the ``settings`` fixture, or
  ``load_settings(...)`` with keyword overrides).
* ``settings``: ``Settings`` whose ``data_dir`` is a fresh temporary directory (so the default
  database is an SQLite file there, not yet created or migrated).
* ``sqlite_url``: URL of a fresh SQLite file in ``tmp_path`` (empty; nothing created yet).
* ``postgresql_url``: URL of a fresh, empty database on the PostgreSQL server at 127.0.0.1:5432, with a
  unique name (parallel test runs never meet) and dropped with ``WITH (FORCE)`` after the test.
  Skipped when the server is down, except when ``CI`` is set: then it is a failure.
* ``db_url``: parametrized ``sqlite`` / ``postgresql`` - the two URLs above, empty.
* ``engine``: ``chatbot.store.db.make_engine(db_url)`` already migrated to head; disposed after.
* ``session_factory``: sessions on ``engine`` (``expire_on_commit=False``); you commit or roll back.
* ``store``: a ``ShortcutStore`` (``tests/shortcuts.py``: a ``ConversationStore`` with one-call shortcuts)
  on ``db_url`` with the schema at head; closed after.

Use ``db_url``/``engine``/``session_factory``/``store`` for anything whose behaviour could differ
between the engines; use ``settings`` or ``sqlite_url`` where one engine is enough and speed matters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.missing import missing

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_pg_state: dict[str, str | None] = {}


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CHATBOT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from chatbot.settings import load_settings

    return load_settings(data_dir=tmp_path / "data")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chatbot.db'}"


def _pg_unavailable_reason() -> str | None:
    """Checked once per test session; None when the server answers."""
    if "reason" not in _pg_state:
        import psycopg

        try:
            psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3).close()
            _pg_state["reason"] = None
        except psycopg.Error as err:
            _pg_state["reason"] = f"PostgreSQL at 127.0.0.1:5432 unreachable: {err}".strip()
    return _pg_state["reason"]


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    reason = _pg_unavailable_reason()
    if reason is not None:
        missing(reason)
    from chatbot.store.scratch import scratch_postgresql_database

    with scratch_postgresql_database(PG_SERVER, "chatbot_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    from chatbot.store.db import make_engine, upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine):  # type: ignore[no-untyped-def]
    from chatbot.store.db import make_session_factory

    return make_session_factory(engine)


@pytest.fixture
def store(db_url: str):  # type: ignore[no-untyped-def]
    from tests.shortcuts import ShortcutStore

    store = ShortcutStore(db_url)
    store.ensure_schema()
    yield store
    store.close()
