"""Each importer on a small fixture: speaker->role mapping, ids, metadata, skipped empty turns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.helpers import FIXTURES
from training.importers import BadRecord, ConversationRecord, get_importer


def read_all(fmt: str, path: Path | str, language: str | None = None) -> list[ConversationRecord]:
    items = list(get_importer(fmt)(Path(path), language))
    bad = [i.error for i in items if isinstance(i, BadRecord)]
    assert not bad, bad
    return items  # type: ignore[return-value]


def test_sgd_roles_ids_and_slot_spans() -> None:
    records = read_all("sgd", FIXTURES / "sgd" / "dev")
    assert [r.external_id for r in records] == ["dev/1_00000", "dev/1_00001"]
    first = records[0]
    assert [m.role for m in first.messages] == ["customer", "agent", "customer", "agent"]
    assert first.skipped_turns == 1  # the whitespace-only turn
    reply = first.messages[3]
    span = reply.meta["slots"][0]
    assert reply.text[span["start"]:span["exclusive_end"]] == "408-555-0123"
    assert span["slot"] == "phone_number"
    assert first.messages[0].meta == {}  # spans are kept for system turns only
    assert first.meta["services"] == ["Restaurants_2"]


def test_taskmaster_maps_user_and_assistant() -> None:
    records = read_all("taskmaster", FIXTURES / "taskmaster")
    assert [(r.external_id, [m.role for m in r.messages]) for r in records] == [
        ("dlg-1", ["customer", "agent", "customer"]), ("dlg-2", ["customer", "agent"])]
    assert records[1].skipped_turns == 1
    assert records[0].meta == {"vertical": "Coffee", "scenario": "simple"}


def test_abcd_actions_are_system_messages_and_personal_values_known() -> None:
    records = read_all("abcd", FIXTURES / "abcd.json")
    first = records[0]
    assert [m.role for m in first.messages][:3] == ["agent", "customer", "system"]
    assert first.meta["known_pii"]["email"] == "cminh730@email.com"
    assert first.meta["known_pii"]["order_id"] == "3348917502"
    assert first.customer_id == "cminh730"
    assert records[1].customer_id == "joyce wu"


def test_chatterbot_file_directory_and_installed_language() -> None:
    records = read_all("chatterbot", FIXTURES / "chatterbot" / "english")
    assert [[m.role for m in r.messages] for r in records] == [["customer", "agent"], ["customer", "agent", "customer"]]
    assert records[0].external_id == "english/greetings/0" and records[0].language == "en"
    chinese = read_all("chatterbot", "chatterbot:chinese")
    assert chinese and all(r.language == "zh" for r in chinese)


def test_chatterbot_training_spec_names_an_installed_language() -> None:
    from training.sources import load_file_pairs, parse_spec

    fmt, path = parse_spec("chatterbot:chinese")  # `chatbot train --data chatterbot:chinese`
    pairs = load_file_pairs(fmt, path, max_turns=3)
    assert pairs and all(p.language == "zh" for p in pairs)


def test_chatterbot_spec_names_one_file_of_an_installed_language() -> None:
    from training.sources import load_file_pairs, parse_spec

    fmt, path = parse_spec("chatterbot:english/greetings.yml")  # a recipe lists files (trivia.yml is malformed)
    pairs = load_file_pairs(fmt, path, max_turns=3)
    assert pairs and {p.conversation.split("/")[1] for p in pairs} == {"greetings"}


def test_crosswoz_roles_ids_language_and_informed_values(tmp_path: Path) -> None:
    import zipfile

    records = read_all("crosswoz", FIXTURES / "crosswoz" / "val.json")
    assert [r.external_id for r in records] == ["val/101", "val/102"]
    assert all(r.language == "zh" for r in records)
    first = records[0]
    assert [m.role for m in first.messages] == ["customer", "agent", "customer", "agent"]
    assert first.skipped_turns == 1  # the whitespace-only customer turn
    reply = first.messages[1]
    values = [reply.text[s["start"]:s["exclusive_end"]] for s in reply.meta["slots"]]
    assert values == ["北京如家酒店", "010-12345678"]  # an informed value not in the text gets no span
    assert reply.meta["slots"][0]["service"] == "酒店" and "slots" not in first.messages[0].meta
    # the authors' distribution form: one JSON file in a zip archive, read the same
    with zipfile.ZipFile(tmp_path / "val.json.zip", "w") as archive:
        archive.write(FIXTURES / "crosswoz" / "val.json", "val.json")
    zipped = read_all("crosswoz", tmp_path / "val.json.zip")
    assert [(r.external_id, [m.text for m in r.messages]) for r in zipped] == \
        [(r.external_id, [m.text for m in r.messages]) for r in records]


def test_dev_and_train_parts_split_a_corpus_by_dialogue(tmp_path: Path) -> None:
    import json

    from training.sources import HELDOUT_FRACTION, load_groups

    dialogues = {str(i): {"messages": [{"role": "usr", "content": f"你好{i}"}, {"role": "sys", "content": f"好的{i}"},
                                       {"role": "usr", "content": f"谢谢{i}"}, {"role": "sys", "content": f"再见{i}"}]}
                 for i in range(400)}
    path = tmp_path / "val.json"
    path.write_text(json.dumps(dialogues, ensure_ascii=False), encoding="utf-8")
    whole, train, dev = load_groups([f"crosswoz:{path}", f"crosswoz:{path}@train", f"crosswoz:{path}@dev"], 3)
    assert len(whole) == 800 and len(train) + len(dev) == 800
    assert {p.conversation for p in train}.isdisjoint({p.conversation for p in dev})
    assert abs(len({p.conversation for p in dev}) / 400 - HELDOUT_FRACTION) < 0.06
    again = load_groups([f"crosswoz:{path}@dev"], 3)[0]
    assert again == dev  # the same part every run


def test_chatterbot_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no language 'klingon'"):
        list(get_importer("chatterbot")(Path("chatterbot:klingon"), None))


def test_jsonl_fields_times_and_empty_turns() -> None:
    records = read_all("jsonl", FIXTURES / "conversations.jsonl")
    assert [r.external_id for r in records] == ["c-1", "c-2"]
    assert records[0].customer_id == "cust-1"
    assert records[0].messages[0].created_at.isoformat() == "2024-05-01T10:00:00+00:00"
    assert records[1].language == "zh" and records[1].skipped_turns == 1
    assert [m.role for m in records[1].messages] == ["customer", "bot"]


def test_csv_groups_rows_by_conversation() -> None:
    records = read_all("csv", FIXTURES / "conversations.csv")
    assert [(r.external_id, r.language, len(r.messages)) for r in records] == [("k-1", "en", 2), ("k-2", "zh", 2)]
    assert records[0].messages[0].text == "Hello, my order is late"
    assert records[0].messages[0].created_at.tzinfo is not None


def test_language_option_applies_where_data_has_none() -> None:
    assert {r.language for r in read_all("taskmaster", FIXTURES / "taskmaster", "de")} == {"de"}


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown import format"):
        get_importer("xml")
