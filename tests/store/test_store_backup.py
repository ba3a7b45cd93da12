"""Issue 19, "Prove: backups": ``chatbot db backup`` of a store in use (a writer keeps adding messages while it
runs) and ``chatbot db restore`` into a fresh location, on SQLite (online backup API) and PostgreSQL
(pg_dump/pg_restore into a database the test creates and drops); the restored store holds every conversation
and message the backup's snapshot held, and nothing half-written."""

from __future__ import annotations

import json
import shutil
import stat
import threading
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from chatbot.cli import app
from chatbot.store import ConversationStore
from chatbot.store.models import Conversation, Message
from tests.missing import missing
from tests.shortcuts import ShortcutStore

runner = CliRunner()
CONVERSATIONS = 30


def _invoke(db_url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"CHATBOT_DATABASE_URL": db_url})


def _fill(store: ShortcutStore) -> None:
    for i in range(CONVERSATIONS):
        conv = store.start_conversation()
        for turn in range(3):
            store.append_message(conv.id, "customer", f"conversation {i} question {turn} — 你好")
            store.append_message(conv.id, "bot", f"conversation {i} answer {turn}")
        if i % 3 == 0:
            store.set_status(conv.id, "pending")


def _contents(url: str) -> tuple[dict[int, tuple[str, str]], dict[int, tuple[int, int, str, str]]]:
    """Every conversation (status, language) and message (conversation, seq, role, text), by id."""
    with ConversationStore(url) as store, store.transaction(read_only=True) as s:
        conversations = {c.id: (c.status, c.language) for c in s.scalars(select(Conversation))}
        messages = {m.id: (m.conversation_id, m.seq, m.role, m.text) for m in s.scalars(select(Message))}
    return conversations, messages


def _backup_while_writing(db_url: str, path: Path) -> tuple[dict, dict, dict]:
    """Back up ``db_url`` while another thread keeps writing to it; (before, after, the backup's report)."""
    with ShortcutStore(db_url) as store:
        store.ensure_schema()
        _fill(store)
        before = _contents(db_url)
        stop = threading.Event()
        writer_conv = store.start_conversation().id

        def write() -> None:
            n = 0
            while not stop.is_set():
                store.append_message(writer_conv, "customer", f"written during the backup {n}")
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            done = _invoke(db_url, "db", "backup", str(path), "--json")
        finally:
            stop.set()
            writer.join(30)
        assert done.exit_code == 0, done.output
        after = _contents(db_url)
    return before, after, json.loads(done.stdout)


def _check_restored(restored: tuple[dict, dict], before: tuple[dict, dict], after: tuple[dict, dict]) -> None:
    conversations, messages = restored
    assert before[0].items() <= conversations.items()  # every conversation from before the backup
    assert before[1].items() <= messages.items()  # every message, word for word
    assert conversations.items() <= after[0].items() and messages.items() <= after[1].items()  # nothing invented
    seqs: dict[int, list[int]] = {}
    for conv, seq, _role, _text in messages.values():
        seqs.setdefault(conv, []).append(seq)
    assert all(sorted(s) == list(range(min(s), min(s) + len(s))) for s in seqs.values())  # no holes: one snapshot


def test_sqlite_backup_of_a_store_in_use_restores_every_conversation(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'live' / 'chatbot.db'}"
    backup = tmp_path / "backups" / "chatbot-backup.db"
    before, after, report = _backup_while_writing(db_url, backup)
    assert report["conversations"] >= CONVERSATIONS and report["messages"] >= CONVERSATIONS * 6
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # as private as the database
    assert not Path(f"{backup}-wal").exists()  # one self-contained file

    fresh = f"sqlite:///{tmp_path / 'restored' / 'chatbot.db'}"
    done = _invoke(fresh, "db", "restore", str(backup))
    assert done.exit_code == 0, done.output
    assert f"into sqlite:///{tmp_path / 'restored' / 'chatbot.db'}" in done.stdout
    _check_restored(_contents(fresh), before, after)
    assert _invoke(fresh, "db", "current", "--json").exit_code == 0
    current = json.loads(_invoke(fresh, "db", "current", "--json").stdout)
    assert current["up_to_date"]  # the schema came along, at head

    # Refusals: a backup over an existing file, a restore over a store with data, a file that is no backup
    again = _invoke(db_url, "db", "backup", str(backup))
    assert again.exit_code == 1 and "already exists" in again.stderr
    over = _invoke(db_url, "db", "restore", str(backup))
    assert over.exit_code == 1 and "already holds tables" in over.stderr and "--force" in over.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    refused = _invoke(f"sqlite:///{tmp_path / 'other.db'}", "db", "restore", str(junk))
    assert refused.exit_code == 1 and "not a backup of this store" in refused.stderr
    absent = _invoke(f"sqlite:///{tmp_path / 'other.db'}", "db", "restore", str(tmp_path / "nope.db"))
    assert absent.exit_code == 1 and "no backup file" in absent.stderr

    # --force replaces what the target holds (here: the live store goes back to the snapshot)
    forced = _invoke(db_url, "db", "restore", str(backup), "--force")
    assert forced.exit_code == 0, forced.output
    assert _contents(db_url) == _contents(fresh)


def test_postgresql_backup_restores_into_a_new_database(postgresql_url, tmp_path):
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        missing("pg_dump/pg_restore are not on PATH")
    from sqlalchemy.engine import make_url

    from chatbot.store.scratch import scratch_postgresql_database

    backup = tmp_path / "chatbot.dump"
    before, after, report = _backup_while_writing(postgresql_url, backup)
    assert report["url"] == make_url(postgresql_url).render_as_string(hide_password=True)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    server = make_url(postgresql_url).set(database="postgres").render_as_string(hide_password=False)
    with scratch_postgresql_database(server, "chatbot_restore") as fresh:  # created here, dropped after
        done = _invoke(fresh, "db", "restore", str(backup), "--json")
        assert done.exit_code == 0, done.output
        restored = _contents(fresh)
        assert json.loads(done.stdout)["messages"] == len(restored[1])
        _check_restored(restored, before, after)
        assert json.loads(_invoke(fresh, "db", "current", "--json").stdout)["up_to_date"]
        with ShortcutStore(fresh) as store:  # sequences came along: new rows get new ids
            conv = store.start_conversation()
            assert conv.id not in restored[0]
            assert store.append_message(conv.id, "customer", "after the restore").id not in restored[1]
        over = _invoke(fresh, "db", "restore", str(backup))
        assert over.exit_code == 1 and "already holds tables" in over.stderr
        forced = _invoke(fresh, "db", "restore", str(backup), "--force")
        assert forced.exit_code == 0, forced.output
        assert _contents(fresh) == restored  # back to the snapshot: the row added since is gone


def test_postgresql_without_the_client_tools_is_a_clear_error(postgresql_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    done = _invoke(postgresql_url, "db", "backup", str(tmp_path / "x.dump"))
    assert done.exit_code == 1 and "pg_dump is not on PATH" in done.stderr
    assert not (tmp_path / "x.dump").exists() and not list(tmp_path.glob(".x.dump*"))
