"""Names and national ids (issue 18, item 7): what reached training pairs before, and what must stay as it is.

Before: "my name is priya patel", "Michael Brown" and a US SSN passed ``redact`` untouched.
"""

from __future__ import annotations

import pytest

from chatbot.text.redact import (
    cn_resident_id_valid,
    find_pii,
    redact,
    uk_nino_valid,
    us_ssn_valid,
    verhoeff_valid,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("my name is priya patel", "my name is <NAME>"),
    ("hi, my name is priya patel and my order is late", "hi, my name is <NAME> and my order is late"),
    ("Michael Brown", "<NAME>"),
    ("Please ask Michael Brown to call me back.", "Please ask <NAME> to call me back."),
    ("Crystal Minh", "<NAME>"),  # ABCD: the whole answer to "may I have your name?"
    ("What is your membership level Crystal?", "What is your membership level <NAME>?"),
    ("I'm Sarah, I ordered a lamp", "I'm <NAME>, I ordered a lamp"),
    ("This is Tom Baker from billing", "This is <NAME> from billing"),
    ("name: alex turner", "name: <NAME>"),
    ("Call me Ishmael.", "Call me <NAME>."),
    ("Thanks Mark!", "Thanks <NAME>!"),  # an ambiguous first name after a greeting
    ("Dear Sarah, thanks", "Dear <NAME>, thanks"),
    ("Please send $50 to Amir.", "Please send $50 to <NAME>."),
    ("I'd like to pay Mark Brown back", "I'd like to pay <NAME> back"),  # ambiguous first name + known surname
    ("Tom McCarthy", "<NAME>"),
])
def test_names(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "Thanks, that is all.",
    "Hello, I need a table for two.",
    "March 3rd works for me.",
    "I want to fly from San Jose to San Mateo.",
    "Find me a hotel in Austin, then a flight to Charlotte.",
    "Will you book it for next Friday?",
    "Mark the date: I fly on Friday.",
    "May I change my order?",
    "Grace Cathedral is on my list.",
    "I need a car at Charles de Gaulle Airport.",
    "my name is spelled wrong on the ticket",
    "This is San Jose calling.",
    "What's the diner's user rating?",
    "Can you be my Johnny-on-the-spot?",
])
def test_ordinary_capitalised_words_places_and_phrases_stay(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(("language", "text", "expected"), [
    ("en", "my ssn is 123-45-6789.", "my ssn is <PII>."),
    ("en", "SSN 123 45 6789", "SSN <PII>"),
    ("en", "social security number: 123456789", "social security number: <PII>"),
    ("en", "my NI number is AB 12 34 56 C", "my NI number is <PII>"),
    ("en", "NINO AB123456C", "NINO <PII>"),
    ("zh", "我的身份证号是11010519491231002X，谢谢", "我的身份证号是<PII>，谢谢"),
    ("en", "ID card 110105194912311014 please", "ID card <PII> please"),
    ("en", "my aadhaar is 2345 6789 0124", "my aadhaar is <PII>"),
    ("en", "Aadhaar number: 234567890124", "Aadhaar number: <PII>"),
    ("en", "SIN 130 692 544", "SIN <PII>"),
])
def test_national_ids(language: str, text: str, expected: str) -> None:
    assert redact(text, language) == expected


@pytest.mark.parametrize(("language", "text"), [
    ("en", "the code 666-12-3456 is not an SSN"),  # area 666 is never issued
    ("en", "ticket 000-12-3456"),
    ("en", "my order 123456789 is late"),  # nine digits with no cue: an order number, not an SSN
    ("en", "tracking 2345 6789 0123"),  # wrong Verhoeff check digit
    ("zh", "编号110105194912310021"),  # wrong check character
    ("zh", "编号110105194913310023"),  # month 13
    ("en", "GB 12 34 56 A is not issued"),
    ("zh", "帮我叫个车，去北京南站"),  # "call a car for me", not "my name is"
])
def test_id_lookalikes_stay(language: str, text: str) -> None:
    assert find_pii(text, language) == []


def test_check_digits() -> None:
    assert verhoeff_valid("2363") and not verhoeff_valid("2364")
    assert cn_resident_id_valid("11010519491231002X") and not cn_resident_id_valid("11010519491231002Y")
    assert uk_nino_valid("AB 12 34 56 C") and not uk_nino_valid("QQ 12 34 56 C") and not uk_nino_valid("AB123456E")
    assert us_ssn_valid("123456789") and not us_ssn_valid("900123456") and not us_ssn_valid("123006789")
