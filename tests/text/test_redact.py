"""PII redaction: placeholders per type, English and Chinese, known values, no false alarms."""

from __future__ import annotations

import pytest

from chatbot.text.redact import find_pii, luhn_valid, mask_card_numbers, parse_marked, redact, score


@pytest.mark.parametrize(("language", "text", "expected"), [
    ("en", "mail jane.doe@example.com now", "mail <EMAIL> now"),
    ("en", "call (415) 555-0134 or +44 20 7946 0958", "call <PHONE> or <PHONE>"),
    ("en", "card 4111 1111 1111 1111 exp 12/25", "card <CARD> exp 12/25"),
    ("en", "see https://example.com/x?y=1", "see <URL>"),
    ("en", "I live at 42 Wallaby Way, Sydney", "I live at <ADDRESS>, Sydney"),
    ("en", "My name is Maria Garcia.", "My name is <NAME>."),
    ("en", "Order ID: 3348917502", "Order ID: <ACCOUNT>"),
    ("en", "san mateo, ny 75227", "san mateo, ny <ZIP>"),
    ("zh", "我的手机号是13812345678，邮箱是zhang.wei@example.cn", "我的手机号是<PHONE>，邮箱是<EMAIL>"),
    ("zh", "我叫张伟，卡号6222 0212 3456 7894", "我叫<NAME>，卡号<CARD>"),
    ("zh", "送到北京市朝阳区建国路88号", "送到<ADDRESS>"),
])
def test_placeholders(language: str, text: str, expected: str) -> None:
    assert redact(text, language) == expected


@pytest.mark.parametrize("text", [
    "I want a table for 2 people at 11:30 am on March 3rd.",
    "The jeans cost $94 and I bought them on 2019-11-06.",
    "Your refund of 49.99 will arrive in 5-7 business days.",
    "the visa ending 1111 was declined",
    "4111 1111 1111 1112 is not a valid card",  # fails the Luhn check
    "我在2023年买了3件商品。",
])
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert find_pii(text, "zh" if "我" in text else "en") == []


def test_known_values_from_the_conversation() -> None:
    known = {"customer_name": "crystal minh", "username": "cminh730", "phone": "(977) 625-2661"}
    text = "Crystal Minh here, user cminh730, call 977.625.2661. Thanks Crystal!"
    assert redact(text, known=known) == "<NAME> here, user <ACCOUNT>, call <PHONE>. Thanks <NAME>!"
    # a plain list of values works too; the label is guessed from the value
    assert redact("write to a@b.co or bob", known=["a@b.co", "bob"]) == "write to <EMAIL> or <PII>"


def test_published_details_are_kept_and_nothing_else() -> None:
    text = "Call us at 555-0199 or mail help@shop.example; yours is 555-0142."
    facts = ["Contact\nPhone 555-0199, email help@shop.example"]
    assert redact(text, keep=facts) == "Call us at 555-0199 or mail help@shop.example; yours is <PHONE>."
    assert redact(text) == "Call us at <PHONE> or mail <EMAIL>; yours is <PHONE>."


def test_card_mask_and_luhn() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert mask_card_numbers("pay 4111-1111-1111-1111 now") == "pay <CARD> now"
    assert mask_card_numbers("order 1234567890123") == "order 1234567890123"


def test_spans_and_scoring() -> None:
    text, gold = parse_marked("call [PHONE|555-0134] or mail [EMAIL|a@b.com]")
    assert text == "call 555-0134 or mail a@b.com"
    predicted = find_pii(text)
    assert [(text[s.start:s.end], s.label) for s in predicted] == [("555-0134", "PHONE"), ("a@b.com", "EMAIL")]
    figures = score([(gold, predicted), (gold, [])])
    assert figures["PHONE"]["recall"] == 0.5 and figures["EMAIL"]["precision"] == 1.0
