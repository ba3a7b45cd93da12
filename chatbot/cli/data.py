"""`chatbot import`, `chatbot export pairs`, `chatbot forget`, `chatbot purge`: transcripts in and out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import typer

from chatbot.cli import CliError, app, echo_json, get_settings

export_app = typer.Typer(help="Export training data from the store.", no_args_is_help=True)
app.add_typer(export_app, name="export")

T = TypeVar("T")
_AGE = re.compile(r"^\s*(\d+)\s*([dwhy]?)\s*$")


def _store(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from chatbot.store import ConversationStore

    return ConversationStore(get_settings(ctx))


def _in_transaction(ctx: typer.Context, work: Callable[[Any], T]) -> T:
    """Run ``work(session)`` in one store transaction; a store error is a one-line CLI error."""
    from chatbot.store import StoreError

    store = _store(ctx)
    try:
        with store.transaction() as session:
            return work(session)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()


@app.command("import")
def import_(
    ctx: typer.Context,
    fmt: str = typer.Argument(..., metavar="FORMAT", help="sgd, taskmaster, abcd, chatterbot, crosswoz, jsonl or csv."),
    path: str = typer.Argument(..., help="File or directory; for chatterbot also chatterbot:<language>."),
    language: str | None = typer.Option(None, "--language", help="Language code for data that has none "
                                           "(default: the format's own, else en)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Import the good records and report each bad one, "
                                  "instead of failing the whole import."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Import a dialogue corpus into the store: one transaction, idempotent on source + external id."""
    from tqdm import tqdm

    from chatbot.store import StoreError
    from training.importers import ImportFormatError, get_importer
    from training.ingest import ingest

    try:
        read = get_importer(fmt)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = _store(ctx)
    try:
        with tqdm(unit=" conversations", disable=None, leave=False) as bar, store.transaction() as session:
            report = ingest(session, read(Path(path), language), skip_bad=skip_bad,
                            max_chars=store.max_message_chars, on_batch=bar.update)
    except ImportFormatError as exc:
        raise CliError(f"{exc}; nothing was imported (use --skip-bad to import the good records)") from None
    except StoreError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    for line in report.errors:
        typer.echo(f"skipped: {line}", err=True)
    if as_json:
        echo_json(report.as_dict())
    else:
        typer.echo(f"imported {report.conversations:,} conversations, {report.messages:,} messages; "
                   f"skipped {report.skipped:,}; already present {report.duplicates:,}")


@export_app.command("pairs")
def export_pairs(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Output JSON Lines file; the manifest is written next to it."),
    since: str | None = typer.Option(None, "--since", help="Only conversations with a message or a "
                                        "review since this ISO date/time (UTC if no zone)."),
    language: str | None = typer.Option(None, "--language", help="Only this language."),
    source: str | None = typer.Option(None, "--source", help="Only this source (sgd, live, ...)."),
    max_context_turns: int | None = typer.Option(None, "--max-context-turns", min=1,
                                                    help="Context turns per pair (default: settings.context_turns)."),
    redact: bool = typer.Option(True, "--redact/--no-redact", help="Replace PII with placeholders."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Write training pairs (agent replies, approved bot replies, corrections) and their manifest."""
    from chatbot.store import StoreError
    from training.export import ExportOptions, manifest_path
    from training.export import export_pairs as run_export

    settings = get_settings(ctx)
    options = ExportOptions(since=_parse_since(since), language=language, source=source,
                            max_context_turns=max_context_turns or settings.context_turns, redact=redact)
    store = _store(ctx)
    try:
        with store.transaction(read_only=True) as session:
            manifest = run_export(session, out, options)
        from chatbot.store.files import record_written

        with store.transaction() as session:  # so that `chatbot forget` finds this copy later
            record_written(session, "pairs", out, manifest.get("customer_hashes") or [])
    except (StoreError, OSError) as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    if as_json:
        echo_json(manifest)
    else:
        typer.echo(f"wrote {manifest['pairs']:,} pairs from {manifest['conversations']:,} conversations to {out} "
                   f"(manifest: {manifest_path(out)})")


@app.command("forget")
def forget(
    ctx: typer.Context,
    customer: str = typer.Option(..., "--customer", help="User id or username of the customer."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Erase a customer's conversations, messages, candidates and corrections; list models to retrain."""
    from chatbot.store import StoreError
    from chatbot.store.files import reclaim_space
    from chatbot.store.retention import forget_customer

    report = _in_transaction(ctx, lambda session: forget_customer(session, customer))
    store = _store(ctx)
    try:  # the deleted rows' text leaves the database files (WAL, free pages) where the engine allows
        reclaimed = reclaim_space(store.engine)
    except (StoreError, OSError) as exc:
        reclaimed = f"not run: {exc}"
    finally:
        store.close()
    if as_json:
        echo_json(report.as_dict() | {"reclaimed": reclaimed})
        return
    typer.echo(f"deleted {report.conversations} conversations, {report.messages} messages, "
               f"{report.candidates} candidates, {report.reviews} reviews, {report.users} user")
    for written in report.files:
        typer.echo(f"{written['kind']} file {written['path']}: {written['action']}")
    typer.echo(f"database: {reclaimed}")
    for version in report.model_versions:
        typer.echo(f"retrain: model version {version['id']} {version['name']} ({version['status']}): "
                   f"{version['via']}")


@app.command("purge")
def purge(
    ctx: typer.Context,
    older_than: str = typer.Option(..., "--older-than", help="Age such as 365d, 52w, 1y or 48h."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Retention: delete conversations with no activity for longer than the given age."""
    from chatbot.store.retention import purge_older_than

    cutoff = datetime.now(timezone.utc) - parse_age(older_than)
    report = _in_transaction(ctx, lambda session: purge_older_than(session, cutoff))
    if as_json:
        echo_json(report.as_dict() | {"cutoff": cutoff.isoformat()})
        return
    typer.echo(f"deleted {report.conversations} conversations, {report.messages} messages, "
               f"{report.candidates} candidates, {report.reviews} reviews (inactive since before {cutoff:%Y-%m-%d %H:%M} UTC)")


def parse_age(text: str) -> timedelta:
    """``365d``, ``52w``, ``48h``, ``1y`` (365 days); a bare number means days."""
    match = _AGE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise CliError(f"invalid age {text!r}; use e.g. 365d, 52w, 48h or 1y")
    n, unit = int(match.group(1)), match.group(2) or "d"
    return {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n), "y": timedelta(days=365 * n)}[unit]


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"invalid --since {text!r}; use an ISO date such as 2024-05-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
