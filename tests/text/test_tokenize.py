"""Tokenizer round trips (English, Chinese, other languages), normalisation and language detection."""

from __future__ import annotations

import pytest

from chatbot.text.special import PLACEHOLDERS, SPEAKER_TOKENS, language_token
from chatbot.text.tokenize import (
    SUPPORTED_LANGUAGES,
    detect_language,
    detokenize,
    normalize,
    tokenize,
    written_language,
)

EN = [
    "I don't know, it's fine!",
    "We'll check; you'd get it (probably) by Friday.",
    "Your order #A1234 ($12.50) ships at 10:30 p.m.",
    'He said "thanks" and/or left...',
    "Email <EMAIL> or call <PHONE> about card <CARD>.",
    "Thanks 😊😊! The family 👨‍👩‍👧 loved it 👍🏽 🇩🇪",
    "My order 订单 is 12345, right?",
    "Write to john.doe@example.com or see https://shop.example.com/a?b=1.",
    "A well-known e-mail issue: 100% fixed.",
]
ZH = [
    "我的订单ABC123在哪里?谢谢😊",
    "请发送到<EMAIL>,我们会尽快回复。",
    "我想退货iPhone 15 Pro Max。",
    "👨‍👩‍👧一家人都很喜欢",
    "你好,我叫王小明,电话是<PHONE>",
]


@pytest.mark.parametrize("text", EN)
def test_english_round_trip(text: str) -> None:
    assert detokenize(tokenize(text, "en"), "en") == text


@pytest.mark.parametrize("text", ZH)
def test_chinese_round_trip(text: str) -> None:
    assert detokenize(tokenize(text, "zh"), "zh") == text


@pytest.mark.parametrize(
    "language, text",
    [("fr", "L'homme d'affaires, c'est ça?"), ("es", "¿Dónde está mi pedido?"), ("de", "Wo ist meine Bestellung?")],
)
def test_other_languages_round_trip(language: str, text: str) -> None:
    assert detokenize(tokenize(text, language), language) == text


def test_english_tokens() -> None:
    assert tokenize("I don't know, it's fine!", "en") == ["I", "do", "n't", "know", ",", "it", "'s", "fine", "!"]
    assert tokenize("Send <EMAIL>.", "en") == ["Send", "<EMAIL>", "."]


def test_chinese_is_segmented_without_spaces() -> None:
    tokens = tokenize("我的订单ABC123在哪里", "zh")
    assert "ABC123" in tokens and "订单" in tokens  # jieba words, Latin ids kept whole
    assert detokenize(tokens, "zh") == "我的订单ABC123在哪里"


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_special_tokens_are_never_split(language: str) -> None:
    specials = [*PLACEHOLDERS, *SPEAKER_TOKENS.values(), language_token(language), "<unk>"]
    text = "x".join(specials)  # glued to words on both sides
    tokens = tokenize(text, language)
    assert [t for t in tokens if t.startswith("<")] == specials


def test_emoji_sequences_stay_whole() -> None:
    assert "👨\u200d👩\u200d👧" in tokenize("family 👨‍👩‍👧 here", "en")
    assert "👍🏽" in tokenize("ok 👍🏽", "zh")


def test_normalize_keeps_case_and_folds_width_and_whitespace() -> None:
    # Case is kept so copied names and ids come out exactly as written.
    assert normalize("  Order\u00a0 ＡＢ12cd\n\tfor  Smith ") == "Order AB12cd for Smith"
    assert tokenize("Order AB12cd", "en") == ["Order", "AB12cd"]


def test_detokenize_drops_control_tokens() -> None:
    assert detokenize(["<bos>", "Hello", "!", "<eos>", "<pad>"], "en") == "Hello!"


def test_unsupported_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported language 'xx'"):
        tokenize("hello", "xx")


@pytest.mark.parametrize(
    "text, language",
    [
        ("我想退货 iPhone 15 Pro Max", "zh"),
        ("你好", "zh"),
        ("My name is 王小明", "en"),
        ("Where is my order?", "en"),
        ("", "en"),
        ("12345", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(("text", "chosen", "language"), [
    ("你好，我想找一家酒店", "en", "zh"),  # the menu left at English, Chinese typed
    ("你好", "fr", "zh"),
    ("Where is my order?", "zh", "en"),  # Chinese picked, English typed
    ("Bonjour, où est ma commande ?", "fr", "fr"),  # the same script: the choice stands
    ("Wo ist meine Bestellung?", "en", "en"),  # no way to tell German from English by script: nor does it try
    ("A1234 12345", "zh", "zh"),  # an order id is no language
    ("ok", "zh", "en"),
    ("12345", "zh", "zh"),  # a number is no language
    ("🙂", "en", "en"),
    ("我想订 Blue Bottle 的位子", "en", "zh"),  # a Latin name inside Chinese
    ("book 北京饭店 please", "en", "en"),  # a Chinese name inside English
    ("好的 ok", "zh", "zh"),
])
def test_written_language(text: str, chosen: str, language: str) -> None:
    assert written_language(text, chosen) == language
