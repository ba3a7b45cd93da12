"""The text policy (chatbot.store.textpolicy) and refused input: a clear error and nothing written."""

from __future__ import annotations

import pytest

from chatbot.store import IllegalTransition, InvalidMessage, NotFound
from chatbot.store.textpolicy import clean_text
from tests.shortcuts import ShortcutStore


@pytest.fixture
def conv_id(store: ShortcutStore) -> int:
    return store.start_conversation().id


def _assert_nothing_written(store: ShortcutStore, conv_id: int) -> None:
    assert store.last_turns(conv_id, 5) == []
    assert store.get_conversation(conv_id).last_seq == 0
    assert store.stats()["messages"] == 0


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00", " \x00\x00 "])
def test_empty_text_is_refused(store: ShortcutStore, conv_id: int, text: str) -> None:
    with pytest.raises(InvalidMessage, match="empty"):
        store.append_message(conv_id, "customer", text)
    _assert_nothing_written(store, conv_id)


def test_one_megabyte_text_is_refused_whole(store: ShortcutStore, conv_id: int) -> None:
    with pytest.raises(InvalidMessage, match="1,048,576 characters long; the limit is 20,000"):
        store.append_message(conv_id, "customer", "x" * 1_048_576)
    _assert_nothing_written(store, conv_id)


def test_the_limit_is_inclusive_and_comes_from_settings(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    from chatbot.settings import load_settings

    with ShortcutStore(load_settings(data_dir=tmp_path, database_url=db_url, max_message_chars=50)) as store:
        conv = store.start_conversation()
        assert store.append_message(conv.id, "customer", "y" * 50).text == "y" * 50
        with pytest.raises(InvalidMessage, match="51 characters"):
            store.append_message(conv.id, "customer", "y" * 51)
    big = "z" * 20_000  # the default limit: stored whole, read back whole
    with ShortcutStore(db_url) as default_store:
        default_store.append_message(conv.id, "agent", big)
        assert default_store.last_turns(conv.id, 1)[0].text == big


def test_nul_bytes_are_removed_and_surrogates_replaced(store: ShortcutStore, conv_id: int) -> None:
    stored = store.append_message(conv_id, "customer", "a\x00b \ud83d\ude00 lone \ud800 end\udfff")
    assert stored.text == "ab \U0001F600 lone \ufffd end\ufffd"
    assert store.last_turns(conv_id, 1)[0].text == stored.text  # the database round-trips it exactly


def test_card_numbers_are_never_stored(store: ShortcutStore, conv_id: int) -> None:
    store.append_message(conv_id, "customer", "my card is 4111-1111-1111-1111, order 12345")
    bot = store.append_message(conv_id, "bot", "noted", candidates=[("card 4111 1111 1111 1111?", -2.0)])
    assert store.last_turns(conv_id, 1)[0].text == "noted"
    assert store.last_turns(conv_id, 2)[0].text == "my card is <CARD>, order 12345"
    assert bot.candidates[0].text == "card <CARD>?"


def test_whitespace_around_text_is_kept() -> None:
    assert clean_text("  hello \n") == "  hello \n"
    with pytest.raises(InvalidMessage, match="string"):
        clean_text(b"bytes")


def test_unknown_conversation(store: ShortcutStore) -> None:
    missing = 987_654
    with pytest.raises(NotFound, match=str(missing)):
        store.append_message(missing, "customer", "hello")
    with pytest.raises(NotFound):
        store.last_turns(missing, 20)
    with pytest.raises(NotFound):
        store.get_conversation(missing)
    with pytest.raises(NotFound):
        store.set_status(missing, "pending")
    with pytest.raises(NotFound):
        store.close_conversation(missing, csat=3)
    assert store.stats()["messages"] == 0


def test_illegal_transition_changes_nothing(store: ShortcutStore, conv_id: int) -> None:
    store.close_conversation(conv_id, csat=2)
    with pytest.raises(IllegalTransition, match="closed; it cannot become human"):
        store.set_status(conv_id, "human")
    conv = store.get_conversation(conv_id)
    assert (conv.status, conv.csat, conv.assigned_agent_id) == ("closed", 2, None)
