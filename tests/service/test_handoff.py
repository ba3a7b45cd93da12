"""Handoff rules on their own: asking for a person, confidence and margin, low ratings."""

from __future__ import annotations

import pytest

from chatbot.service.handoff import HandoffReason, HandoffRules, asks_for_human, decide

RULES = HandoffRules(min_score=-2.0, min_margin=0.1, max_low_ratings=2)


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a human",
        "can I speak with someone?",
        "AGENT!",
        "get me a live agent",
        "je voudrais parler à une conseillère",
        "Kann ich mit einem Mitarbeiter sprechen?",
        "quiero hablar con una persona",
        "请转人工",
    ],
)
def test_customer_asking_for_a_person(text):
    assert asks_for_human(text)
    assert decide(text, [("sure", -0.1)], 0, RULES) is HandoffReason.ASKED


@pytest.mark.parametrize("text", ["my human resources login fails", "where is my agent number", "hello"])
def test_ordinary_messages_do_not_hand_off(text):
    assert not asks_for_human(text)
    assert decide(text, [("sure", -0.5), ("no", -1.5)], 0, RULES) is None


def test_low_score_and_small_margin_hand_off():
    assert decide("hi", [("a", -2.5), ("b", -3.0)], 0, RULES) is HandoffReason.LOW_CONFIDENCE
    assert decide("hi", [("a", -0.50), ("b", -0.55)], 0, RULES) is HandoffReason.LOW_CONFIDENCE
    assert decide("hi", [("a", -0.50), ("b", -0.70)], 0, RULES) is None
    assert decide("hi", [], 0, RULES) is HandoffReason.LOW_CONFIDENCE
    assert decide("hi", None, 0, RULES) is None  # nothing generated yet: only the words count


def test_repeated_low_ratings_hand_off():
    assert decide("hi", [("a", -0.1)], 1, RULES) is None
    assert decide("hi", [("a", -0.1)], 2, RULES) is HandoffReason.LOW_RATINGS
