"""Taught answers: which question an agent taught an answer for is closest to a customer's message."""

from __future__ import annotations

import json

import pytest

from chatbot.text.taught import TAUGHT_FILE, TaughtAnswers, TaughtEntry, answer_key, load_taught, save_taught

GIFT = "Gift cards are valid for one year from purchase."
PAY = "We accept Visa, Mastercard and PayPal."
HOURS = "We are open from 9 am to 5 pm, Monday to Friday."
BACKGROUND = ["How do I book a table?", "How can I get to the airport?", "Can I change my booking?",
              "What time is the movie?", "Do you have rooms?", "When does the bus leave?"]


def memory() -> TaughtAnswers:
    entries = [TaughtEntry("Do gift cards expire?", GIFT, conversation_id=1),
               TaughtEntry("How long is a gift card valid?", GIFT, conversation_id=2),
               TaughtEntry("Do you take credit cards?", PAY, conversation_id=3),
               TaughtEntry("Which payment methods do you accept?", PAY, conversation_id=4),
               TaughtEntry("When do you open?", HOURS, conversation_id=5),
               TaughtEntry("故宫的门票多少钱？", "故宫的门票是免费的。", "zh", conversation_id=6)]
    return TaughtAnswers.build(entries, BACKGROUND)


def test_the_closest_taught_question_decides_across_plurals_and_word_order():
    taught = memory()
    [best, second, *_] = taught.nearest("When do gift cards stop working?", limit=3)
    assert best.answer == GIFT and best.question == "Do gift cards expire?"
    assert best.similarity > second.similarity > 0
    assert taught.nearest("Can I use my credit card?")[0].answer == PAY
    assert taught.nearest("Is it open on Monday? When do you open?")[0].answer == HOURS
    # one match per answer, each with its closest question; answers sharing no n-gram with it are no match
    matches = taught.nearest("gift card", limit=10)
    assert len({m.answer for m in matches}) == len(matches) >= 2 and all(m.similarity > 0 for m in matches)
    assert "故宫的门票是免费的。" not in {m.answer for m in matches}


def test_chinese_is_matched_by_its_characters_and_not_by_english():
    taught = memory()
    [match] = taught.nearest("请问故宫门票多少钱", limit=1)
    assert match.answer == "故宫的门票是免费的。" and match.similarity > 0.3
    assert all(m.answer != "故宫的门票是免费的。" for m in taught.nearest("When do you open?", min_similarity=0.01))


def test_unrelated_messages_reach_no_taught_answer_over_the_threshold():
    taught = memory()
    assert taught.nearest("I need a hotel in London for three nights.", min_similarity=0.2) == []
    assert taught.nearest("", limit=3) == [] and taught.nearest("   ") == []
    assert TaughtAnswers.build([]).nearest("anything") == []


def test_support_says_which_question_taught_a_reply_as_the_model_spells_it():
    taught = memory()
    matches = taught.matches("Will my gift card run out?")
    match = matches.get(answer_key("gift cards are valid for one year from purchase ."))
    assert match is not None and match.answer == GIFT and match.question in {"Do gift cards expire?",
                                                                              "How long is a gift card valid?"}
    assert answer_key("It ships today.") not in matches
    assert answer_key("WE ACCEPT VISA , MASTERCARD AND PAYPAL") in taught.matches("Do you take credit cards?")
    assert answer_key("We accept Visa.") not in taught.matches("Do you take credit cards?")
    assert answer_key("Open 9-5!") == answer_key("open 9 5")


def test_a_later_answer_to_the_same_question_replaces_the_earlier_one():
    taught = TaughtAnswers.build([TaughtEntry("When do you open?", "We open at 9 am."),
                                  TaughtEntry("when do you open", HOURS)])
    assert len(taught) == 1 and taught.nearest("When do you open?")[0].answer == HOURS


def test_it_round_trips_through_its_file_and_a_damaged_file_is_an_error(tmp_path):
    taught = memory()
    path = save_taught(taught, tmp_path)
    assert path.name == TAUGHT_FILE and path.stat().st_mode & 0o077 == 0
    loaded = load_taught(tmp_path)
    assert loaded is not None and loaded.entries == taught.entries
    question = "When do gift cards stop working?"
    assert loaded.nearest(question, 3) == pytest.approx(taught.nearest(question, 3))
    assert load_taught(tmp_path / "nothing-here") is None
    for damaged in ("{not json", json.dumps({"format": 99, "entries": []}), json.dumps({"format": 1})):
        path.write_text(damaged, encoding="utf-8")
        with pytest.raises(ValueError, match="damaged taught-answers file"):
            load_taught(tmp_path)


def test_erasure_removes_a_conversation_and_the_pieces_of_words_only_it_had():
    taught = memory()
    kept = taught.without({1, 6})
    assert [e.conversation_id for e in kept.entries] == [2, 3, 4, 5]
    assert not any("xpi" in g for g in kept.idf) and not any("故" in g for g in kept.idf)
    assert any("gift" in g for g in kept.idf)  # still in "How long is a gift card valid?"
    assert kept.nearest("Is my gift card still valid?")[0].question == "How long is a gift card valid?"


def test_the_customers_side_of_the_window_is_compared_so_a_question_inside_another_task_is_far():
    from chatbot.text.taught import customer_side

    taught = TaughtAnswers.build([TaughtEntry("Give me your phone number.", "Call us at 555-0199."),
                                  TaughtEntry("Do you take credit cards?", PAY)], BACKGROUND)
    restaurant = [("customer", "Find me an Italian restaurant in San Jose."),
                  ("bot", "How about Il Fornaio? It is in San Jose."),
                  ("customer", "Sounds good. Could you give me their phone number?")]
    greeted = [("customer", "Hi there."), ("bot", "Hello, how can I help?"),
               ("customer", "Could you give me your phone number?")]
    assert customer_side(restaurant) == ("Find me an Italian restaurant in San Jose. Sounds good. Could you give "
                                         "me their phone number?")
    assert customer_side([("bot", "Hello")]) == ""
    alone = taught.nearest(restaurant[-1][1], 1)[0].similarity
    inside = taught.nearest(customer_side(restaurant), 1)[0].similarity
    after_hello = taught.nearest(customer_side(greeted), 1)[0].similarity
    assert inside < alone and inside < after_hello
