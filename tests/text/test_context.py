"""Context encoding: last N turns with speaker tokens, truncated from the left to the token budget."""

from __future__ import annotations

import pytest

from chatbot.text.context import encode_context
from chatbot.text.vocab import Vocab

TURNS = [
    ("customer", "Hi, my order is late."),
    ("agent", "Sorry! What is the order number?"),
    ("customer", "It is A1234."),
    ("bot", "Thanks, checking A1234 now."),
]


def test_flattens_turns_with_speaker_tokens() -> None:
    tokens = encode_context(TURNS[:2], "en")
    assert tokens == [
        "<lang:en>",
        "<customer>", "Hi", ",", "my", "order", "is", "late", ".",
        "<agent>", "Sorry", "!", "What", "is", "the", "order", "number", "?",
    ]  # fmt: skip


def test_keeps_only_the_last_turns() -> None:
    tokens = encode_context(TURNS, "en", max_turns=2)
    assert tokens == ["<lang:en>", "<customer>", "It", "is", "A1234", ".", "<agent>", "Thanks", ",", "checking", "A1234", "now", "."]


def test_truncates_from_the_left_and_reopens_the_cut_turn() -> None:
    full = encode_context(TURNS, "en")
    tokens = encode_context(TURNS, "en", max_tokens=6)
    assert tokens == ["<lang:en>", "<agent>", "checking", "A1234", "now", "."]  # the cut bot turn keeps its speaker
    tokens = encode_context(TURNS, "en", max_tokens=10)  # cuts into the customer's turn before
    assert len(tokens) == 10
    assert tokens[:2] == ["<lang:en>", "<customer>"] and tokens[2:] == full[-8:]


def test_truncation_at_a_turn_boundary_adds_nothing() -> None:
    full = encode_context(TURNS, "en")
    last_turn = full[full.index("<agent>", full.index("A1234")) :]  # the bot's turn
    tokens = encode_context(TURNS, "en", max_tokens=1 + len(last_turn))
    assert tokens == ["<lang:en>", *last_turn]


def test_chinese_and_ids() -> None:
    assert encode_context([("customer", "我的订单在哪里")], "zh")[:3] == ["<lang:zh>", "<customer>", "我"]
    vocab = Vocab.build([["Hi", ","]], min_freq=1)
    ids = encode_context(TURNS[:1], "en", vocab)
    assert ids[:4] == [vocab.index("<lang:en>"), vocab.index("<customer>"), vocab.index("Hi"), vocab.index(",")]
    assert ids[4] == vocab.unk_id


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        encode_context([("admin", "hi")], "en")
    with pytest.raises(ValueError, match="max_turns"):
        encode_context(TURNS, "en", max_turns=0)
