"""``ConversationStore``: the one place that owns transactions over the repository functions.

* ``with store.transaction() as session:`` commits on success and rolls back on any error, so a
  failure never leaves half a change behind; driver errors that mean "no database" come out as
  ``StoreUnavailable`` (URL shown with the password masked).
* The schema is migrated to head on first use (idempotent and safe with many processes starting at
  once; see ``chatbot.store.db.upgrade``). A failed attempt is retried on the next use, so the store
  recovers by itself once the database is back.
* SQLite write transactions take the write lock at BEGIN; if that still reports "database is locked"
  after the busy timeout, BEGIN is retried a few times with a short back-off.

Callers open ``transaction()`` and call the ``chatbot.store`` repository functions; ``stats`` (the
CLI and ``/healthz``) is the one shortcut. Tests have more in ``tests/shortcuts.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from chatbot.settings import Settings
from chatbot.store import conversations as repo
from chatbot.store.db import (
    ensure_sqlite_dir,
    is_sqlite_busy,
    make_engine,
    make_session_factory,
    translate_errors,
    upgrade,
)
from chatbot.store.textpolicy import DEFAULT_MAX_CHARS

_BEGIN_ATTEMPTS = 4


class ConversationStore:
    def __init__(self, settings_or_url: Settings | str) -> None:
        if isinstance(settings_or_url, Settings):
            settings = settings_or_url
            self.url = settings.effective_database_url
            self.max_message_chars = settings.max_message_chars
            self.engine = make_engine(
                self.url, pool_size=settings.db_pool_size, connect_timeout_s=settings.db_connect_timeout_s
            )
        else:
            self.url = settings_or_url
            self.max_message_chars = DEFAULT_MAX_CHARS
            self.engine = make_engine(self.url)
        self._write_sessions = make_session_factory(self.engine)
        self._read_sessions = make_session_factory(self.engine, read_only=True)
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def ensure_schema(self) -> None:
        """Create the SQLite directory if needed and migrate to head, once per store."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            ensure_sqlite_dir(self.url)
            upgrade(self.engine)
            self._schema_ready = True

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed if the block succeeds, rolled back otherwise."""
        self.ensure_schema()
        factory = self._read_sessions if read_only else self._write_sessions
        with translate_errors(self.url):
            session = factory()
            try:
                self._begin(session)
                yield session
                session.commit()
            except BaseException:
                _rollback_quietly(session)
                raise
            finally:
                session.close()

    def _begin(self, session: Session) -> None:
        for attempt in range(_BEGIN_ATTEMPTS):
            try:
                session.connection()  # emits BEGIN (IMMEDIATE on SQLite) now, not at the first query
                return
            except OperationalError as err:
                if not is_sqlite_busy(err) or attempt == _BEGIN_ATTEMPTS - 1:
                    raise
                session.rollback()
                time.sleep(0.05 * 2**attempt)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Row counts in one read-only transaction: ``chatbot db stats`` and ``/healthz`` call it."""
        with self.transaction(read_only=True) as session:
            return repo.stats(session)


def _rollback_quietly(session: Session) -> None:
    # The connection may be dead already (server restarted); closing the session discards it.
    try:
        session.rollback()
    except SQLAlchemyError:
        pass
