"""Engines, sessions and migrations for SQLite and PostgreSQL; raises the errors of ``chatbot.errors``.

SQLite gets WAL (readers never block the writer), foreign keys ON, a busy timeout, and write
transactions that start with ``BEGIN IMMEDIATE``: the write lock is taken up front, so two writers queue
on the busy timeout instead of failing with "database is locked" halfway through a transaction.
Read-only work can opt out with ``engine.execution_options(**READ_ONLY)`` (a plain deferred BEGIN).
PostgreSQL gets a connect timeout and ``pool_pre_ping`` so a restarted server costs one failed
transaction at most, never a stuck pool.

Alembic is configured in code with ``script_location`` = the ``migrations`` package directory, so
migrations run from any working directory and from an installed package.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from chatbot.errors import (  # noqa: F401 - the store raises them; re-exported for its callers
    AlreadyExists,
    IllegalTransition,
    InvalidMessage,
    InvalidValue,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from chatbot.files import create_private, private_dir

# Execution option that makes an SQLite transaction a plain (deferred) BEGIN: for read-only sessions.
READ_ONLY: dict[str, Any] = {"chatbot_read_only": True}
# pg_advisory_xact_lock key that serialises concurrent `upgrade()` calls on one PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x6368617462  # "chatb"
# The largest row id on every engine: ids are INTEGER columns, 32-bit on PostgreSQL (SQLite's go to 2^63-1).
MAX_ID = 2**31 - 1


class OutOfRange(NotFound):
    """A number past the database's integer range: as an id it names no row (404, never a driver error)."""


def check_id(value: int, what: str = "record") -> int:
    """``value`` if a row could have it as id; ``OutOfRange`` (a ``NotFound``) otherwise."""
    if not -MAX_ID - 1 <= value <= MAX_ID:
        raise OutOfRange(f"{what} {value} does not exist (ids are at most {MAX_ID})")
    return value


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    connect_timeout_s: float = 5.0,
    busy_timeout_s: float = 10.0,
    **opts: Any,
) -> Engine:
    """An engine tuned for the store; ``opts`` go to ``sqlalchemy.create_engine`` unchanged."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        connect_args = {"timeout": busy_timeout_s, "check_same_thread": False}
        engine = create_engine(url, connect_args=connect_args, pool_size=pool_size, **opts)
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    if backend == "postgresql":
        connect_args = {"connect_timeout": max(1, round(connect_timeout_s)), "application_name": "chatbot"}
        return create_engine(url, connect_args=connect_args, pool_size=pool_size, pool_pre_ping=True, **opts)
    return create_engine(url, **opts)


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    in_memory = make_url(engine.url).database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory and cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            _switch_to_wal(cursor, time.monotonic() + busy_timeout_s)
        # WAL + NORMAL: a commit survives any application crash and the file never corrupts; only an OS
        # crash or power cut may undo the last commits. Saves an fsync (~2 ms here) per message.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("chatbot_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _switch_to_wal(cursor: Any, deadline: float) -> None:
    # Once per database file (the mode is persistent). SQLite answers "locked" here without waiting on
    # the busy timeout when another connection is busy with the new file, so wait by hand.
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (callers get plain values back)."""
    bind = engine.execution_options(**READ_ONLY) if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def ensure_sqlite_dir(url: str) -> None:
    """Create the parent directory of an SQLite file URL (the default URL points into the data dir) and
    the database file, owner-only (0700 / 0600: SQLite gives its WAL and shared-memory files the database
    file's mode, so they are owner-only too); ``StoreUnavailable`` when that is impossible."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not parsed.database.startswith("file:"):
        path = Path(parsed.database).expanduser()
        try:
            private_dir(path.parent)
            create_private(path)
        except OSError as err:
            raise StoreUnavailable(url, f"cannot create {path}: {err.strerror or err}") from err


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver errors that mean "no database right now" into ``StoreUnavailable``."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as err:
        raise StoreUnavailable(url, _reason(err)) from err
    except OverflowError as err:  # SQLite's driver refuses ints past 2^63 before the query runs
        raise OutOfRange("no such record: a number in the request is out of range") from err
    except exc.DataError as err:
        if getattr(err.orig, "sqlstate", None) == "22003":  # PostgreSQL: numeric value out of range
            raise OutOfRange("no such record: a number in the request is out of range") from err
        raise
    except exc.DBAPIError as err:
        # A bare DatabaseError (not Integrity/Programming/Data) is e.g. SQLite's "file is not a database".
        if err.connection_invalidated or type(err) is exc.DatabaseError:
            raise StoreUnavailable(url, _reason(err)) from err
        raise
    except exc.TimeoutError as err:  # connection pool exhausted for too long
        raise StoreUnavailable(url, f"no free connection: {err}") from err


def is_sqlite_busy(err: BaseException) -> bool:
    """True for SQLite's "database is locked/busy", worth a short retry."""
    orig = getattr(err, "orig", None) or getattr(err.__cause__, "orig", None)
    message = str(orig or err).lower()
    return "database is locked" in message or "database is busy" in message


def _reason(err: exc.DBAPIError) -> str:
    message = str(err.orig) if err.orig is not None else str(err)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err.orig or err).__name__


# --- migrations ------------------------------------------------------------------------------------


def alembic_config(url: str | None = None) -> Any:
    """Alembic ``Config`` pointing at the ``migrations`` package, wherever it is installed."""
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", os.path.dirname(os.path.abspath(migrations.__file__)))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with translate_errors(str(engine.url)), engine.execution_options(**READ_ONLY).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Migrate to ``revision``; idempotent and safe to call from many processes at once."""
    from alembic import command

    with _engine(engine_or_url) as engine:
        if revision == "head" and current_revision(engine) == head_revision():
            return
        _run_locked(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine_or_url: Engine | str, revision: str) -> None:
    """Migrate down to ``revision`` (``base`` empties the schema)."""
    from alembic import command

    with _engine(engine_or_url) as engine:
        _run_locked(engine, lambda cfg: command.downgrade(cfg, revision))


def _run_locked(engine: Engine, migrate: Callable[[Any], None]) -> None:
    # One transaction holding a database-wide lock: SQLite's BEGIN IMMEDIATE write lock, or a
    # PostgreSQL advisory lock. A second migrator waits, then finds the work done and does nothing.
    with translate_errors(str(engine.url)), engine.connect() as conn:
        conn.begin()
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        migrate(cfg)
        conn.commit()


@contextmanager
def _engine(engine_or_url: Engine | str) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    ensure_sqlite_dir(engine_or_url)
    engine = make_engine(engine_or_url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()
