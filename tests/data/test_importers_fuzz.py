"""Fuzzing every importer (issue 19): random bytes, truncated and mangled corpora, JSON of the wrong shape.

Whatever the file holds, an import either succeeds or fails with ``ImportFormatError`` (file and position
named) and leaves the store exactly as it was: never another exception, never half the records. With
``--skip-bad`` it never fails on a record, and what it reports is what it stored. ``chatbot import`` turns
the same failures into ``error: ...`` and exit status 1.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from chatbot.store.models import Conversation, Message
from tests.data.helpers import FIXTURES
from tests.fuzzing import fuzz_settings
from training.importers import FORMATS, ImportFormatError, get_importer
from training.ingest import ingest

# One good file per format (its name keeps the suffix the importer looks for).
GOOD = {"jsonl": FIXTURES / "conversations.jsonl", "csv": FIXTURES / "conversations.csv",
        "sgd": FIXTURES / "sgd" / "dev" / "dialogues_001.json", "taskmaster": FIXTURES / "taskmaster" / "data_00.json",
        "abcd": FIXTURES / "abcd.json", "crosswoz": FIXTURES / "crosswoz" / "val.json",
        "chatterbot": FIXTURES / "chatterbot" / "english" / "greetings.yml"}
# Text with every code point (NUL and lone surrogates included: JSON carries both as \u escapes).
ANY_TEXT = st.text(alphabet=st.characters(codec=None, categories=None), max_size=20)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=15)


@st.composite
def corpus_files(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(format, file name, content): damaged versions of a good file, or noise."""
    fmt = draw(st.sampled_from(FORMATS))
    good = GOOD[fmt].read_bytes()
    kind = draw(st.sampled_from(["truncated", "mangled", "spliced", "bytes", "json", "json-like-good"]))
    if kind == "truncated":
        data = good[: draw(st.integers(0, len(good)))]
    elif kind == "mangled":  # a few bytes overwritten with anything
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        data = bytes(data)
    elif kind == "spliced":  # a slice of the file cut out or doubled
        a = draw(st.integers(0, len(good)))
        b = draw(st.integers(a, len(good)))
        data = good[:a] + (good[a:b] if draw(st.booleans()) else b"") + good[b:] if draw(st.booleans()) else good[:a] + good[b:]
    elif kind == "bytes":
        data = draw(st.binary(max_size=400))
    elif kind == "json":
        data = json.dumps(draw(JSON_VALUES)).encode()
    else:  # the good file's own structure with values swapped for others of the wrong type
        try:
            value = json.loads(good)
        except ValueError:
            value = None
        data = json.dumps(_swap(value, draw)).encode() if value is not None else draw(st.binary(max_size=200))
    return fmt, GOOD[fmt].name, data


def _swap(value: object, draw: st.DrawFn) -> object:
    if isinstance(value, dict):
        return {k: _swap(v, draw) for k, v in value.items() if draw(st.integers(0, 9))}  # now and then a key goes
    if isinstance(value, list):
        return [_swap(v, draw) for v in value]
    return draw(JSON_VALUES) if draw(st.integers(0, 5)) == 0 else value


def _counts(store) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with store.transaction(read_only=True) as session:
        return (session.scalar(select(func.count()).select_from(Conversation)),
                session.scalar(select(func.count()).select_from(Message)))


def _in_dir(name: str, data: bytes) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="fuzz-import-"))
    (directory / name).write_bytes(data)
    return directory / name


def test_an_import_fails_whole_with_a_clear_error_or_succeeds(db_url):
    from chatbot.store import ConversationStore

    outcomes: dict[str, int] = {}
    with ConversationStore(db_url) as store:
        store.ensure_schema()

        @fuzz_settings(250 if db_url.startswith("sqlite") else 120)
        @given(case=corpus_files(), skip_bad=st.booleans())
        def check(case: tuple[str, str, bytes], skip_bad: bool) -> None:
            fmt, name, data = case
            path = _in_dir(name, data)
            before = _counts(store)
            try:
                with store.transaction() as session:
                    report = ingest(session, get_importer(fmt)(path, None), skip_bad=skip_bad,
                                    max_chars=store.max_message_chars)
            except ImportFormatError as exc:
                assert str(exc).startswith(str(path)), str(exc)  # names the file (and the position after it)
                assert exc.problem.strip()
                assert _counts(store) == before  # nothing half-imported
                outcomes["refused"] = outcomes.get("refused", 0) + 1
            else:
                after = _counts(store)
                assert after[0] - before[0] == report.conversations  # stored what it reports, no more
                assert after[1] - before[1] == report.messages
                assert not skip_bad or report.skipped >= len(report.errors)
                outcomes["imported"] = outcomes.get("imported", 0) + 1
            finally:
                shutil.rmtree(path.parent)

        check()
    assert outcomes.get("refused", 0) > 10 and outcomes.get("imported", 0) > 5, outcomes


@pytest.mark.slow
def test_chatbot_import_reports_damage_as_an_error_and_stores_nothing(sqlite_url, tmp_path):
    from typer.testing import CliRunner

    from chatbot.cli import app
    from chatbot.store import ConversationStore

    env = {"CHATBOT_DATABASE_URL": sqlite_url, "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(app, ["import", "taskmaster", str(GOOD["taskmaster"])], env=env).exit_code == 0
    with ConversationStore(sqlite_url) as store:
        baseline = _counts(store)

    @fuzz_settings(20)
    @given(case=corpus_files())
    def check(case: tuple[str, str, bytes]) -> None:
        fmt, name, data = case
        path = _in_dir(name, data)
        try:
            with ConversationStore(sqlite_url) as store:
                before = _counts(store)
            result = runner.invoke(app, ["import", fmt, str(path)], env=env)
            with ConversationStore(sqlite_url) as store:
                after = _counts(store)
            assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
            if result.exit_code == 1:
                last = result.stderr.strip().splitlines()[-1]
                assert last.startswith("error:") and "nothing was imported" in last, result.stderr
                assert "Traceback" not in result.output
                assert after == before
        finally:
            shutil.rmtree(path.parent)

    check()
    with ConversationStore(sqlite_url) as store:
        assert _counts(store) >= baseline
