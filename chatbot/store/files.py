"""Files the product wrote that may hold customers' words, and erasing a customer from them.

Every ``chatbot export pairs`` output and every nightly job's work directory is recorded in
``written_files`` with the customers it holds (``customer_hashes``, as in the export manifest), so
``chatbot forget`` reaches every copy: an export's lines of the customer's conversations are removed (the
file is rewritten atomically, owner-only) and its manifest updated; a nightly work directory loses its data
files (``*.jsonl``) and is listed with the models trained there. A file that no longer exists is reported
as gone. Reports quote customers too (the gate's held-out corrections, each row with its
``conversation_id``): those rows leave the nightly ``report.json``/``report.md``, the jobs' reports and the
registry's metrics; the models' ``taught.json`` (the corrections they were taught, chatbot.text.taught) lose
the customer's entries in every nightly work directory. Also here: reclaiming the space of deleted rows,
which otherwise keep the text on disk until the database reuses or vacuums the pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from chatbot.files import replace_private_text
from chatbot.store.models import Job, ModelVersion, WrittenFile

WRITTEN_KINDS = ("pairs", "nightly", "report")


def record_written(session: Session, kind: str, path: Path | str, customer_hashes: Iterable[str]) -> WrittenFile:
    if kind not in WRITTEN_KINDS:
        raise ValueError(f"unknown written-file kind {kind!r}")
    row = WrittenFile(kind=kind, path=str(Path(path).resolve()), customer_hashes=sorted(set(customer_hashes)))
    session.add(row)
    session.flush()
    return row


def erase_from_files(session: Session, wanted_hash: str, conversation_ids: set[int]) -> list[dict[str, Any]]:
    """Remove one customer (their pseudonymous hash, their conversation ids) from every recorded file."""
    done: list[dict[str, Any]] = []
    for row in session.scalars(select(WrittenFile).order_by(WrittenFile.id)):
        if wanted_hash not in (row.customer_hashes or []):
            continue
        path = Path(row.path)
        if not path.exists():
            action = "gone"
        elif row.kind == "pairs":
            action = f"removed {_drop_lines(path, conversation_ids, wanted_hash)} lines"
        else:
            removed = [p for p in sorted(path.rglob("*.jsonl")) if p.is_file()] if path.is_dir() else []
            for data_file in removed:
                data_file.unlink()
            quoted = _scrub_report_files(path, conversation_ids) if path.is_dir() else 0
            action = (f"deleted {len(removed)} data files, {quoted} quoted rows from its reports; models trained "
                      "here are listed to retrain")
        row.customer_hashes = [h for h in (row.customer_hashes or []) if h != wanted_hash]
        done.append({"kind": row.kind, "path": row.path, "action": action})
    for row in session.scalars(select(WrittenFile).where(WrittenFile.kind == "nightly").order_by(WrittenFile.id)):
        # A model's taught answers hold every correction the store had when it was trained, not only the
        # customers this work directory recorded: each one is looked through
        path = Path(row.path)
        removed_taught = _scrub_taught_files(path, conversation_ids) if path.is_dir() else 0
        if removed_taught:
            done.append({"kind": "taught", "path": row.path,
                         "action": f"removed {removed_taught} taught answers from its models"})
    quoted = erase_quoted_rows(session, conversation_ids)
    if quoted:
        done.append({"kind": "report", "path": "database: jobs and model versions",
                     "action": f"removed {quoted} quoted rows"})
    session.flush()
    return done


def scrub_rows(value: Any, conversation_ids: set[int]) -> tuple[Any, list[dict[str, Any]]]:
    """``value`` (parsed JSON) without the rows (dicts in lists) that quote one of the conversations, and
    those rows."""
    if isinstance(value, dict):
        out, removed = {}, []
        for key, item in value.items():
            out[key], rows = scrub_rows(item, conversation_ids)
            removed += rows
        return out, removed
    if isinstance(value, list):
        out_list, removed = [], []
        for item in value:
            if isinstance(item, dict) and item.get("conversation_id") in conversation_ids:
                removed.append(item)
                continue
            kept, rows = scrub_rows(item, conversation_ids)
            out_list.append(kept)
            removed += rows
        return out_list, removed
    return value, []


def erase_quoted_rows(session: Session, conversation_ids: set[int]) -> int:
    """Rows quoting the conversations, out of every job report and model version's metrics in the store."""
    if not conversation_ids:
        return 0
    total = 0
    for row, attr in [*((j, "report") for j in session.scalars(select(Job).where(Job.report.is_not(None)))),
                      *((v, "metrics") for v in session.scalars(select(ModelVersion)
                                                                  .where(ModelVersion.metrics.is_not(None))))]:
        scrubbed, removed = scrub_rows(getattr(row, attr), conversation_ids)
        if removed:
            setattr(row, attr, scrubbed)  # a new object: the JSON column sees the change
            total += len(removed)
    return total


def _scrub_report_files(workdir: Path, conversation_ids: set[int]) -> int:
    """A nightly report quotes held-out corrections: drop the customer's rows from report.json, and from
    report.md the table lines that render them (``report_cell``)."""
    report_json = workdir / "report.json"
    if not report_json.is_file():
        return 0
    try:
        report = json.loads(report_json.read_text(encoding="utf-8"))
    except ValueError:
        return 0
    scrubbed, removed = scrub_rows(report, conversation_ids)
    if not removed:
        return 0
    replace_private_text(report_json, json.dumps(scrubbed, indent=2, default=str))
    report_md = workdir / "report.md"
    if report_md.is_file():
        starts = tuple(f"| {report_cell(r.get('customer', ''))} | {report_cell(r.get('agent', ''))} |"
                       for r in removed)
        lines = report_md.read_text(encoding="utf-8").splitlines(keepends=True)
        replace_private_text(report_md, "".join(line for line in lines if not line.startswith(starts)))
    return len(removed)


def _scrub_taught_files(workdir: Path, conversation_ids: set[int]) -> int:
    """The customer's questions out of every ``taught.json`` under ``workdir`` (chatbot.text.taught)."""
    from chatbot.text.taught import TAUGHT_FILE, load_taught, save_taught

    total = 0
    for path in sorted(workdir.rglob(TAUGHT_FILE)):
        try:
            taught = load_taught(path.parent)
        except ValueError:  # unreadable, so unservable: it may still hold the customer's words
            path.unlink()
            total += 1
            continue
        if taught is None:
            continue
        kept = taught.without(conversation_ids)
        if len(kept) < len(taught):
            save_taught(kept, path.parent)
            total += len(taught) - len(kept)
    return total


def report_cell(text: str) -> str:
    """A Markdown table cell of someone's words (no pipes or newlines that would break the table): the
    nightly report renders its quoted rows with it, and erasure finds those lines by it."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _drop_lines(path: Path, conversation_ids: set[int], wanted_hash: str) -> int:
    kept, dropped = [], 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                conversation = json.loads(line).get("conversation_id")
            except (ValueError, AttributeError):
                conversation = None
            if conversation in conversation_ids:
                dropped += 1
            else:
                kept.append(line)
    replace_private_text(path, "".join(kept))
    manifest = path.with_name(path.name.removesuffix(".jsonl") + ".manifest.json")
    if manifest.exists():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["customer_hashes"] = [h for h in data.get("customer_hashes") or [] if h != wanted_hash]
        data["pairs"] = len(kept)
        data["erased_lines"] = int(data.get("erased_lines") or 0) + dropped
        replace_private_text(manifest, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return dropped


# Tables whose deleted rows held a customer's words or identity.
ERASED_TABLES = ("messages", "reply_candidates", "reviews", "conversations", "users", "shadow_replies")


def reclaim_space(engine: Engine) -> str:
    """Make deleted rows' text leave the database files, where the engine allows it from here.

    SQLite: checkpoint the WAL into the main file and truncate it, then VACUUM (rewrites the file without
    the freed pages). PostgreSQL: VACUUM the touched tables (dead tuples become free space; the bytes stay
    until overwritten, and the WAL segments and any base backups keep them until they are recycled).
    """
    if engine.dialect.name == "sqlite":
        # On the driver's connection: the engine's "begin" hook would wrap VACUUM in a transaction.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
                cursor.execute(statement)
                cursor.fetchall()
            cursor.close()
        finally:
            raw.close()
        return "sqlite: wal_checkpoint(TRUNCATE) + VACUUM"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            present = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
                          .scalars())
            tables = [t for t in ERASED_TABLES if t in present]
            conn.exec_driver_sql(f"VACUUM {', '.join(tables)}")
            return f"postgresql: VACUUM {', '.join(tables)}"
    return f"{engine.dialect.name}: nothing run"
