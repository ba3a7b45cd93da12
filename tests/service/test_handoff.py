"""Handoff rules on their own: asking for a person, confidence and margin, low ratings."""

from __future__ import annotations

import pytest

from chatbot.service.handoff import (
    NOTICES,
    HandoffReason,
    HandoffRules,
    asks_for_human,
    decide,
    low_confidence,
    notice,
    repeats,
)
from chatbot.text.tokenize import SUPPORTED_LANGUAGES

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


def test_a_low_mean_log_prob_per_token_hands_off_whatever_the_score():
    rules = HandoffRules(min_score=-9.0, min_margin=0.0, max_low_ratings=2, min_token_logprob=-1.5)
    assert decide("hi", [("a", -0.3)], 0, rules, token_logprob=-1.6) is HandoffReason.LOW_CONFIDENCE
    assert decide("hi", [("a", -0.7)], 0, rules, token_logprob=-1.4) is None  # a short reply: low score, sure words
    assert decide("hi", [("a", -0.7)], 0, rules) is None  # unknown per-token figure: only the score counts
    assert decide("talk to a human", [("a", -0.3)], 0, rules, token_logprob=-3.0) is HandoffReason.ASKED


def test_low_confidence_says_which_rule_the_reply_breaks():
    rules = HandoffRules(min_score=-2.0, min_margin=0.1, max_low_ratings=2, min_token_logprob=-1.5)
    assert "CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB -1.5" in low_confidence([("a", -0.3)], rules, token_logprob=-1.6)
    assert "CHATBOT_HANDOFF_MIN_SCORE -2.0" in low_confidence([("a", -2.5)], rules, token_logprob=-1.0)
    assert "CHATBOT_HANDOFF_MIN_MARGIN 0.1" in low_confidence([("a", -0.50), ("b", -0.55)], rules)
    assert low_confidence([("a", -0.50), ("b", -0.70)], rules, token_logprob=-1.0) is None


def test_repeated_low_ratings_hand_off():
    assert decide("hi", [("a", -0.1)], 1, RULES) is None
    assert decide("hi", [("a", -0.1)], 2, RULES) is HandoffReason.LOW_RATINGS


def test_every_served_language_has_every_notice_and_others_get_english():
    for language in SUPPORTED_LANGUAGES:
        assert set(NOTICES[language]) == set(HandoffReason), language
        assert len(set(NOTICES[language].values())) >= 4  # the reasons read differently
    assert notice(HandoffReason.ASKED, "zh") != notice(HandoffReason.ASKED, "en")
    assert notice(HandoffReason.ASKED, "ja") == notice(HandoffReason.ASKED, None) == NOTICES["en"][HandoffReason.ASKED]


ASKED_TIME = "What time would you like to book the table for?"


@pytest.mark.parametrize(("reply", "context", "expected"), [
    (ASKED_TIME, [("customer", "a table for two"), ("bot", ASKED_TIME), ("customer", "7 pm")], True),
    ("what time would you like to book the table for", [("bot", ASKED_TIME), ("customer", "yes")], True),
    ("What time would you like to book the table?", [("bot", ASKED_TIME), ("customer", "7 pm")], True),  # all but "for"
    ("What time would you like the reservation?", [("bot", ASKED_TIME), ("customer", "7 pm")], False),
    ("I found 1 movie. How about Up?", [("bot", "I found 1 movie. How about Cars?"), ("customer", "other")], False),
    # anything the customer was told in the turns the reply comes from, an agent's words included
    (ASKED_TIME, [("bot", ASKED_TIME), ("customer", "7 pm"), ("bot", "Which city?"), ("customer", "SF")], True),
    ("Which city are you in?", [("bot", ASKED_TIME), ("agent", "Which city are you in?"), ("customer", "hmm")], True),
    ("7 pm", [("customer", "7 pm"), ("bot", ASKED_TIME), ("customer", "7 pm")], False),  # the customer's words
    ("请问您想订哪家餐厅？", [("bot", "请问您想订哪家餐厅?"), ("customer", "七点")], True),
    (ASKED_TIME, [("customer", "a table for two")], False),  # nothing said yet
    ("?", [("bot", "!"), ("customer", "?")], False),  # no words to compare
    ("You're welcome!", [("bot", "You're welcome."), ("customer", "thanks again")], False),  # courtesies recur
    ("不客气。", [("bot", "不客气。"), ("customer", "好的，谢谢。")], False),
    ("推荐您去北京贵都大酒店。", [("bot", "推荐您去北京贵都大酒店。"), ("customer", "还有别的吗？")], True),
])
def test_a_reply_repeats_what_the_customer_was_told(reply, context, expected):
    assert repeats(reply, context) is expected
