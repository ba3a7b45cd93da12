"""`chatbot import/export pairs/forget/purge` end to end through the real CLI on an SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from chatbot.cli import app
from tests.data.helpers import FIXTURES

runner = CliRunner()


def _run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"CHATBOT_DATABASE_URL": url})


def test_import_json_counts_twice(sqlite_url: str) -> None:
    first = _run(sqlite_url, "import", "sgd", str(FIXTURES / "sgd" / "dev"), "--json")
    assert first.exit_code == 0, first.output
    assert {k: json.loads(first.stdout)[k] for k in ("conversations", "messages", "skipped")} == \
        {"conversations": 2, "messages": 6, "skipped": 1}
    second = json.loads(_run(sqlite_url, "import", "sgd", str(FIXTURES / "sgd" / "dev"), "--json").stdout)
    assert (second["conversations"], second["messages"], second["duplicates"]) == (0, 0, 2)


def test_bad_input_exits_1_with_place(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "messages": []}\nnot json\n', encoding="utf-8")
    result = _run(sqlite_url, "import", "jsonl", str(bad))
    assert result.exit_code == 1
    assert "bad.jsonl (line 2" in result.stderr and "nothing was imported" in result.stderr
    skipped = _run(sqlite_url, "import", "jsonl", str(bad), "--skip-bad", "--json")
    assert skipped.exit_code == 0 and json.loads(skipped.stdout)["skipped"] == 1
    assert "skipped: " in skipped.stderr


def test_export_forget_purge(sqlite_url: str, tmp_path: Path) -> None:
    assert _run(sqlite_url, "import", "abcd", str(FIXTURES / "abcd.json")).exit_code == 0
    out = tmp_path / "pairs.jsonl"
    exported = _run(sqlite_url, "export", "pairs", str(out), "--max-context-turns", "2", "--json")
    assert exported.exit_code == 0, exported.output
    manifest = json.loads(exported.stdout)
    assert manifest["pairs"] == sum(1 for _ in out.open()) > 0
    assert (tmp_path / "pairs.manifest.json").exists()
    assert all(len(json.loads(line)["context"]) <= 2 for line in out.open())
    forgot = _run(sqlite_url, "forget", "--customer", "abcd:cminh730", "--json")
    assert forgot.exit_code == 0, forgot.output
    assert json.loads(forgot.stdout)["conversations"] == 1
    missing = _run(sqlite_url, "forget", "--customer", "abcd:cminh730")
    assert missing.exit_code == 1 and "no customer" in missing.stderr
    purged = _run(sqlite_url, "purge", "--older-than", "365d", "--json")
    assert purged.exit_code == 0 and json.loads(purged.stdout)["conversations"] == 0
    assert _run(sqlite_url, "purge", "--older-than", "soon").exit_code == 1


def test_help_for_every_command() -> None:
    for command in (["import"], ["export", "pairs"], ["forget"], ["purge"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
