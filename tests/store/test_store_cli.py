"""`chatbot db ...` and `chatbot stats` on both engines, plus the real console script once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from chatbot.cli import app
from chatbot.store.db import head_revision
from tests.shortcuts import ShortcutStore

runner = CliRunner()


def _invoke(db_url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"CHATBOT_DATABASE_URL": db_url})


def test_upgrade_current_stats_downgrade(db_url: str) -> None:
    current = _invoke(db_url, "db", "current", "--json")
    assert current.exit_code == 0, current.output
    assert json.loads(current.stdout) | {"url": None} == {
        "url": None, "current": None, "head": head_revision(), "up_to_date": False
    }

    upgraded = _invoke(db_url, "db", "upgrade")
    assert upgraded.exit_code == 0 and f"at revision {head_revision()}" in upgraded.stdout
    with ShortcutStore(db_url) as store:
        conv = store.start_conversation()
        store.append_message(conv.id, "customer", "hi")
        store.append_message(conv.id, "bot", "hello")
        store.set_status(conv.id, "pending")

    stats = _invoke(db_url, "stats", "--json")
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout) == {
        "conversations": 1,
        "messages": 2,
        "by_status": {"bot": 0, "pending": 1, "human": 0, "closed": 0},
        "by_role": {"customer": 1, "bot": 1, "agent": 0, "system": 0},
    }
    assert "messages:      2" in _invoke(db_url, "stats").stdout

    down = _invoke(db_url, "db", "downgrade", "base")
    assert down.exit_code == 0 and "base (empty)" in down.stdout
    assert json.loads(_invoke(db_url, "db", "current", "--json").stdout)["current"] is None


def test_unreachable_database_is_one_line_and_exit_1() -> None:
    for args in (["db", "upgrade"], ["db", "current"], ["stats", "--json"]):
        result = _invoke("postgresql+psycopg://postgres:hunter2@127.0.0.1:1/chatbot", *args)
        assert result.exit_code == 1
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: database unavailable at ")
        assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_console_script_with_the_default_sqlite_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env["CHATBOT_DATA_DIR"] = str(tmp_path / "fresh" / "data")  # does not exist yet
    script = Path(sys.executable).with_name("chatbot")
    subprocess.run([str(script), "db", "upgrade"], env=env, check=True, capture_output=True)
    out = subprocess.run([str(script), "stats", "--json"], env=env, check=True, capture_output=True, text=True)
    assert json.loads(out.stdout)["conversations"] == 0
    assert (tmp_path / "fresh" / "data" / "chatbot.db").is_file()
