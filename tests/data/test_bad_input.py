"""Every kind of bad input: a clear error naming file and position, and the store left as it was.

Each case puts a good file next to the bad one, so a non-transactional import would have written the
good records before failing. ``--skip-bad`` then imports the good ones and reports the bad one.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chatbot.store.models import Conversation, Message
from tests.data.helpers import FIXTURES
from training.importers import ImportFormatError, get_importer
from training.ingest import ingest

GOOD_JSONL = (FIXTURES / "conversations.jsonl").read_text(encoding="utf-8")
GOOD_SGD = (FIXTURES / "sgd" / "dev" / "dialogues_001.json").read_text(encoding="utf-8")
GOOD_CROSSWOZ = (FIXTURES / "crosswoz" / "val.json").read_text(encoding="utf-8")


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        path = directory / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return make


def _huge_line(directory: Path) -> None:
    with (directory / "b.jsonl").open("w", encoding="utf-8") as fh:
        fh.write('{"id": "big", "messages": [{"role": "customer", "text": "')
        chunk = "x" * (1 << 20)
        for _ in range(100):
            fh.write(chunk)
        fh.write('"}]}\n')


def _truncated_gzip(directory: Path) -> None:
    data = gzip.compress(json.dumps(json.loads(GOOD_SGD) * 50).encode())
    (directory / "dialogues_002.json.gz").write_bytes(data[: len(data) // 2])


def _zipped(directory: Path, *, truncate: bool = False, members: int = 1) -> None:
    """A CrossWOZ-style ``.json.zip``: cut in half, or with more than one JSON member."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(members):
            archive.writestr(f"part{i}.json", GOOD_CROSSWOZ)
    data = buffer.getvalue()
    (directory / "b.json.zip").write_bytes(data[: len(data) // 2] if truncate else data)


# (id, format, maker of the bad file, what the message must say)
CASES = [
    ("empty", "jsonl", _write("b.jsonl", b""), ["b.jsonl", "empty"]),
    ("blank-lines-only", "jsonl", _write("b.jsonl", "\n  \n"), ["b.jsonl", "empty"]),
    ("binary", "jsonl", _write("b.jsonl", bytes(range(256)) * 4), ["b.jsonl", "line 1", "binary"]),
    ("non-utf8", "jsonl", _write("b.jsonl", GOOD_JSONL.encode() + "caf\xe9\n".encode("latin-1")), ["b.jsonl", "line 4", "UTF-8"]),
    ("malformed-jsonl", "jsonl", _write("b.jsonl", '{"id": "x", "messages": []}\n{"id": "y", "messages": [\n'),
     ["b.jsonl", "line 2", "malformed JSON"]),
    ("missing-field", "jsonl", _write("b.jsonl", '{"id": "x"}\n'), ["b.jsonl", "line 1", "missing field 'messages'"]),
    ("bad-role", "jsonl", _write("b.jsonl", '{"id": "x", "messages": [{"role": "robot", "text": "hi"}]}\n'),
     ["b.jsonl", "line 1, message 0", "unknown role 'robot'"]),
    ("huge-line", "jsonl", _huge_line, ["b.jsonl", "line 1", "longer than"]),
    ("truncated-gzip", "sgd", _truncated_gzip, ["dialogues_002.json.gz", "gzip"]),
    ("malformed-json", "sgd", _write("dialogues_002.json", '[{"dialogue_id": "z", "turns": []},\n {"dialogue_id": }]'),
     ["dialogues_002.json", "record 1, line 2", "malformed JSON"]),
    ("wrong-format", "sgd", _write("dialogues_002.json", (FIXTURES / "taskmaster" / "data_00.json").read_text()),
     ["dialogues_002.json", "record 0", "missing field 'dialogue_id'", "Schema-Guided"]),
    ("not-an-array", "sgd", _write("dialogues_002.json", '{"dialogue_id": "z"}'), ["dialogues_002.json", "expected a JSON array"]),
    ("malformed-csv", "csv", _write("b.csv", 'conversation_id,role,text\nk,customer,"unterminated\n'), ["b.csv", "malformed CSV"]),
    ("csv-wrong-header", "csv", _write("b.csv", "id,speaker,utterance\n1,a,b\n"), ["b.csv", "line 1", "missing column"]),
    ("csv-bad-time", "csv", _write("b.csv", "conversation_id,role,text,created_at\nk,customer,hi,yesterday\n"),
     ["b.csv", "line 2", "ISO-8601"]),
    ("malformed-yaml", "chatterbot", _write("b.yml", "conversations:\n- - [unclosed\n"), ["b.yml", "line", "malformed YAML"]),
    ("yaml-wrong-shape", "chatterbot", _write("b.yml", "- just a list\n"), ["b.yml", "conversations"]),
    ("crosswoz-malformed", "crosswoz", _write("b.json", '{"1": {"messages": [}'), ["b.json", "line 1", "malformed JSON"]),
    ("crosswoz-not-object", "crosswoz", _write("b.json", '[{"messages": []}]'), ["b.json", "JSON object of dialogues"]),
    ("crosswoz-bad-role", "crosswoz", _write("b.json", '{"7": {"messages": [{"role": "bot", "content": "hi"}]}}'),
     ["b.json", "dialogue '7', turn 0", "unknown role 'bot'"]),
    ("crosswoz-bad-act", "crosswoz",
     _write("b.json", '{"7": {"messages": [{"role": "sys", "content": "hi", "dialog_act": [["Inform", "x"]]}]}}'),
     ["b.json", "dialogue '7', turn 0", "malformed dialog act"]),
    ("crosswoz-wrong-format", "crosswoz", _write("b.json", '{"7": {"turns": []}}'),
     ["b.json", "dialogue '7'", "missing field 'messages'", "CrossWOZ"]),
    ("crosswoz-binary", "crosswoz", _write("b.json", bytes(range(256)) * 4), ["b.json", "binary"]),
    ("crosswoz-empty", "crosswoz", _write("b.json", b""), ["b.json", "empty"]),
    ("crosswoz-corrupt-zip", "crosswoz", lambda d: _zipped(d, truncate=True), ["b.json.zip", "zip"]),
    ("crosswoz-zip-two-files", "crosswoz", lambda d: _zipped(d, members=2), ["b.json.zip", "one .json file", "found 2"]),
]

GOOD = {"jsonl": ("a.jsonl", GOOD_JSONL), "sgd": ("dialogues_001.json", GOOD_SGD),
        "crosswoz": ("a.json", GOOD_CROSSWOZ),
        "csv": ("a.csv", (FIXTURES / "conversations.csv").read_text(encoding="utf-8")),
        "chatterbot": ("a.yml", (FIXTURES / "chatterbot" / "english" / "greetings.yml").read_text(encoding="utf-8"))}


def _counts(store) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with store.transaction(read_only=True) as session:
        return (session.scalar(select(func.count()).select_from(Conversation)),
                session.scalar(select(func.count()).select_from(Message)))


def _prepare(tmp_path: Path, fmt: str, make_bad: Callable[[Path], None]) -> Path:
    directory = tmp_path / "in" / "dev"
    directory.mkdir(parents=True)
    name, text = GOOD[fmt]
    (directory / name).write_text(text, encoding="utf-8")
    make_bad(directory)
    return directory


@pytest.mark.parametrize(("fmt", "make_bad", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_whole_import_and_names_the_place(store, tmp_path: Path, fmt: str,  # type: ignore[no-untyped-def]
                                                          make_bad: Callable[[Path], None], expected: list[str]) -> None:
    with store.transaction() as session:  # something already in the store must survive untouched
        ingest(session, get_importer("taskmaster")(FIXTURES / "taskmaster", None))
    before = _counts(store)
    directory = _prepare(tmp_path, fmt, make_bad)
    with pytest.raises(ImportFormatError) as info, store.transaction() as session:
        ingest(session, get_importer(fmt)(directory, None))
    for fragment in expected:
        assert fragment in str(info.value)
    assert _counts(store) == before


@pytest.mark.parametrize(("fmt", "make_bad", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_skip_bad_imports_the_good_records(sqlite_url: str, tmp_path: Path, fmt: str,
                                           make_bad: Callable[[Path], None], expected: list[str]) -> None:
    from chatbot.store import ConversationStore

    directory = _prepare(tmp_path, fmt, make_bad)
    good_only = tmp_path / "good" / "dev"
    good_only.mkdir(parents=True)
    name, text = GOOD[fmt]
    (good_only / name).write_text(text, encoding="utf-8")
    expected_good = [i for i in get_importer(fmt)(good_only, None)]
    with ConversationStore(sqlite_url) as store, store.transaction() as session:
        report = ingest(session, get_importer(fmt)(directory, None), skip_bad=True)
    assert report.errors and all(expected[0] in e for e in report.errors)
    assert report.conversations >= len(expected_good)
    assert report.skipped >= len(report.errors)
