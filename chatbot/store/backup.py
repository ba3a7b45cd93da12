"""Backups of the conversation store, taken while the service runs, and their restore.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot while other
connections keep reading and writing (WAL); the copy is one self-contained file (rollback journal, no
``-wal`` beside it), checked with ``PRAGMA quick_check``, owner-only like the database. PostgreSQL:
``pg_dump --format=custom`` (one consistent snapshot, the server keeps serving) and ``pg_restore``; the
client tools must be on ``PATH``. The password goes to them in ``PGPASSWORD``, never on a command line
that ``ps`` shows. A restore goes into an empty database unless ``force`` is given: restoring over a live
store would silently drop what was written since the backup.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from chatbot.errors import StoreError
from chatbot.files import create_private, private_dir
from chatbot.settings import mask_url


class BackupError(StoreError):
    """A backup or restore that cannot be done: missing tools or files, a non-empty target, a bad copy."""


@dataclass(frozen=True)
class BackupReport:
    url: str  # the database, password masked
    path: str
    conversations: int | None
    messages: int | None


def backup(url: str, path: str | os.PathLike[str]) -> BackupReport:
    """Copy the database at ``url`` into the new file ``path`` while it stays in use."""
    parsed, target = make_url(url), Path(path)
    if target.exists():
        raise BackupError(f"{target} already exists; back up into a new file")
    private_dir(target.parent)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    create_private(partial)
    try:
        if parsed.get_backend_name() == "sqlite":
            _sqlite_copy(_sqlite_file(parsed, must_exist=True), partial, to_single_file=True)
            counts = _sqlite_counts(partial)
        elif parsed.get_backend_name() == "postgresql":
            _run("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", f"--file={partial}",
                             f"--dbname={_libpq_url(parsed)}"], parsed)
            counts = (None, None)
        else:
            raise BackupError(f"no backup for {parsed.get_backend_name()} databases (SQLite and PostgreSQL only)")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(mask_url(url), str(target), *counts)


def restore(path: str | os.PathLike[str], url: str, force: bool = False) -> BackupReport:
    """Load the backup ``path`` into the database at ``url``, which must hold no tables unless ``force``."""
    parsed, source = make_url(url), Path(path)
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    if not force and _has_tables(url):
        raise BackupError(f"{mask_url(url)} already holds tables; restore into an empty database, or pass "
                          "--force to replace them (stop every server using it first)")
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(source)
        from chatbot.store.db import ensure_sqlite_dir

        ensure_sqlite_dir(url)  # creates the file owner-only
        _sqlite_copy(source, _sqlite_file(parsed, must_exist=True), to_single_file=False)
    elif parsed.get_backend_name() == "postgresql":
        args = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
        if force:
            args += ["--clean", "--if-exists"]
        _run("pg_restore", [*args, f"--dbname={_libpq_url(parsed)}", str(source)], parsed)
    else:
        raise BackupError(f"no restore for {parsed.get_backend_name()} databases (SQLite and PostgreSQL only)")
    return BackupReport(mask_url(url), str(source), *_counts(url))


# --- SQLite ----------------------------------------------------------------------------------------------
def _sqlite_file(parsed: URL, must_exist: bool) -> Path:
    if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file:"):
        raise BackupError("an in-memory or URI SQLite database cannot be backed up or restored by path")
    path = Path(parsed.database).expanduser()
    if must_exist and not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    return path


def _sqlite_copy(source: Path, target: Path, to_single_file: bool) -> None:
    """The online backup API: a consistent snapshot of ``source`` while others use it."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst)
        if to_single_file:  # a backup file stands alone: no -wal/-shm files to carry along
            dst.execute("PRAGMA journal_mode=DELETE")
        problem = dst.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BackupError(f"the copy in {target} failed its check: {problem}")
    except sqlite3.Error as err:
        raise BackupError(f"SQLite backup from {source} to {target} failed: {err}") from err
    finally:
        dst.close()
        src.close()


def _check_sqlite(path: Path) -> None:
    """A readable SQLite file that holds this product's schema (it has an Alembic revision)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{path} is damaged (PRAGMA quick_check failed)")
            conn.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise BackupError(f"{path} is not a backup of this store: {err}") from err


def _sqlite_counts(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("conversations", "messages"))
    finally:
        conn.close()


# --- PostgreSQL -----------------------------------------------------------------------------------------
def _libpq_url(parsed: URL) -> str:
    """The URL for libpq's tools: no SQLAlchemy driver name, no password (that goes in ``PGPASSWORD``)."""
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _run(tool: str, args: list[str], parsed: URL) -> None:
    binary = shutil.which(tool)
    if binary is None:
        raise BackupError(f"{tool} is not on PATH: install the PostgreSQL client tools (the server's major "
                          "version or newer) to back up or restore a PostgreSQL store")
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    done = subprocess.run([binary, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise BackupError(f"{tool} failed: {detail}")


# --- both -------------------------------------------------------------------------------------------------
def _engine(url: str):  # type: ignore[no-untyped-def]
    from chatbot.store.db import make_engine

    return make_engine(url, pool_size=1)


def _has_tables(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed, must_exist=False)
        if not path.exists() or path.stat().st_size == 0:
            return False
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _counts(url: str) -> tuple[int, int]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return (conn.execute(text("SELECT count(*) FROM conversations")).scalar_one(),
                    conn.execute(text("SELECT count(*) FROM messages")).scalar_one())
    finally:
        engine.dispose()
