"""`chatbot db upgrade|current|downgrade|revision|backup|restore` and `chatbot stats`: schema and store figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from chatbot.cli import CliError, app, echo_json, get_settings
from chatbot.settings import mask_url

db_app = typer.Typer(help="Database schema: migrate, inspect, create revisions.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@contextmanager
def _store_errors() -> Iterator[None]:
    """Unreachable database or refused input: one line on stderr, exit status 1, no traceback."""
    from chatbot.store import StoreError

    try:
        yield
    except StoreError as err:
        raise CliError(str(err)) from None


def _prepared_url(ctx: typer.Context) -> str:
    from chatbot.store.db import ensure_sqlite_dir

    url = get_settings(ctx).effective_database_url
    ensure_sqlite_dir(url)
    return url


def _migrate(ctx: typer.Context, direction: str, revision: str) -> None:
    from chatbot.store.db import current_revision, downgrade, make_engine, upgrade

    with _store_errors():
        url = _prepared_url(ctx)
        engine = make_engine(url, pool_size=1)
        try:
            (upgrade if direction == "up" else downgrade)(engine, revision)
            now = current_revision(engine)
        finally:
            engine.dispose()
    typer.echo(f"{mask_url(url)} is at revision {now or 'base (empty)'}")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: str = typer.Argument("head", help="Target revision."),
) -> None:
    """Migrate the configured database to REVISION (default: head). Safe to run repeatedly."""
    _migrate(ctx, "up", revision)


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base (drops every table)."),
) -> None:
    """Migrate the configured database down to REVISION."""
    _migrate(ctx, "down", revision)


@db_app.command("current")
def db_current(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Show the database's revision and whether it is at head."""
    from chatbot.store.db import current_revision, head_revision, make_engine

    with _store_errors():
        url = _prepared_url(ctx)
        engine = make_engine(url, pool_size=1)
        try:
            current = current_revision(engine)
        finally:
            engine.dispose()
    head = head_revision()
    report = {"url": mask_url(url), "current": current, "head": head, "up_to_date": current == head}
    if as_json:
        echo_json(report)
    else:
        state = "up to date" if current == head else f"behind head {head}; run `chatbot db upgrade`"
        typer.echo(f"{report['url']}: {current or 'empty (no revision)'} ({state})")


@db_app.command("revision")
def db_revision(
    ctx: typer.Context,
    message: str = typer.Option(..., "-m", "--message", help="What the revision changes."),
) -> None:
    """Autogenerate a migration from the difference between the models and the database at head."""
    from alembic import command

    from chatbot.store.db import alembic_config, upgrade

    with _store_errors():
        url = _prepared_url(ctx)
        upgrade(url)
        command.revision(alembic_config(url), message=message, autogenerate=True)


@db_app.command("backup")
def db_backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="New file to write (owner-only); refused if it exists.")],
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Back up the configured database while it is in use: SQLite with its online backup API, PostgreSQL
    with pg_dump (custom format; the client tools must be on PATH)."""
    from chatbot.store.backup import backup

    with _store_errors():
        report = backup(get_settings(ctx).effective_database_url, path)
    _show_backup(report, "backed up", as_json)


@db_app.command("restore")
def db_restore(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file written by `chatbot db backup`.")],
    force: bool = typer.Option(False, "--force", help="Replace the tables of a database that has some "
                                "(stop every server using it first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Restore a backup into the configured database, which must be empty unless --force; then run
    `chatbot db upgrade` if this version of the product is newer than the backup."""
    from chatbot.store.backup import restore

    with _store_errors():
        report = restore(path, get_settings(ctx).effective_database_url, force=force)
    _show_backup(report, "restored", as_json)


def _show_backup(report: Any, verb: str, as_json: bool) -> None:
    if as_json:
        echo_json(report.__dict__)
        return
    counts = "" if report.conversations is None else \
        f" ({report.conversations:,} conversations, {report.messages:,} messages)"
    where = f"{report.url} to {report.path}" if verb == "backed up" else f"{report.path} into {report.url}"
    typer.echo(f"{verb} {where}{counts}")


@app.command("stats")
def stats(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Count conversations and messages, by status and by role (migrates the schema first)."""
    from chatbot.store import ConversationStore

    with _store_errors():
        store = ConversationStore(get_settings(ctx))
        try:
            figures = store.stats()
        finally:
            store.close()
    if as_json:
        echo_json(figures)
        return
    typer.echo(f"conversations: {figures['conversations']}")
    typer.echo(f"messages:      {figures['messages']}")
    for group in ("by_status", "by_role"):
        typer.echo(f"{group}: " + ", ".join(f"{k}={v}" for k, v in figures[group].items()))
