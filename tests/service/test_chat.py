"""ChatService on the real store (SQLite and PostgreSQL) with the real tiny model: replies, handoff, draft
mode, reviews, takeover. Exact-score thresholds and held decodes (race, full queue) use the scripted model."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from chatbot.service.auth import AuthError, Forbidden
from chatbot.service.batching import Busy
from chatbot.store import registry
from chatbot.store.db import IllegalTransition, InvalidMessage
from chatbot.store.models import AuditLog, Conversation, Message, Review


def _agent(service, name="ana", role="agent"):
    service.add_user(name, "password123", role)
    return service.login(name, "password123")


def test_customer_gets_a_stored_reply_with_candidates(service):
    cid, token = service.start_conversation("en")
    service.authorize_customer(cid, token)
    with pytest.raises(AuthError):
        service.authorize_customer(cid, "wrong")
    other, _ = service.start_conversation("en")
    with pytest.raises(AuthError):  # the API's path: checked in the transaction that would store it
        service.send(other, "hello where is my order", token=token)
    with pytest.raises(AuthError):  # before the text is looked at
        service.send(other, "", token=token)
    assert service.customer_messages(other)[1] == []
    result = service.send(cid, "hello where is my order", token=token)
    assert result.status == "bot" and result.reply is not None
    _, messages = service.customer_messages(cid)
    assert [(m.role, m.text) for m in messages] == [("customer", "hello where is my order"),
                                                   ("bot", result.reply.text)]
    with service.store.transaction(read_only=True) as s:
        bot = s.scalars(select(Message).where(Message.role == "bot")).one()
        active = registry.active_version(s)
        assert bot.review_state == "sent" and bot.model_version_id == active.id and active.name == "m1"
        assert 0.0 <= bot.confidence <= 1.0
        assert bot.decoding["num_beams"] == 2 and bot.decoding["max_new_tokens"] == 6
        ranks = [(c.rank, c.text, c.score) for c in bot.candidates]
        assert [r for r, _, _ in ranks] == [0, 1] and ranks[0][1] == bot.text
        assert ranks[0][2] >= ranks[1][2]  # best first
        assert {"hello", "order"} <= set(bot.attention["source_tokens"])
        assert len(bot.attention["weights"]) == len(bot.attention["target_tokens"])


def test_bad_messages_are_refused_and_nothing_is_stored(service):
    cid, _ = service.start_conversation()
    for text in ("", "   ", "x" * (service.settings.max_message_chars + 1)):
        with pytest.raises(InvalidMessage):
            service.send(cid, text)
    assert service.customer_messages(cid)[1] == []


def test_asking_for_a_person_hands_off_without_generating(service):
    cid, _ = service.start_conversation()
    result = service.send(cid, "I want to talk to a human please")
    assert result.status == "pending" and result.handoff == "asked_for_human"
    assert "person" in result.notice.text
    assert service.send(cid, "hello?").reply is None  # pending: the bot stays quiet
    assert service.worker.batched_requests == 0
    assert [m.role for m in service.customer_messages(cid)[1]] == ["customer", "system", "customer"]


def test_the_hand_off_notice_is_in_the_conversations_language(make_service, replies):
    service = make_service(replies, handoff_min_token_logprob=-1.0)
    zh, _ = service.start_conversation("zh")
    asked = service.send(zh, "请转人工")
    assert asked.handoff == "asked_for_human" and asked.notice.text == "好的，我们的工作人员马上就来为您服务。"
    replies.token_logprob = -1.2
    unsure, _ = service.start_conversation("zh")
    assert service.send(unsure, "晚安").notice.text == "为了给您准确的答复，我们的工作人员马上就来为您服务。"
    de, _ = service.start_conversation("de")
    assert service.send(de, "Gute Nacht").notice.text.startswith("Damit Sie die richtige Antwort bekommen")
    en, _ = service.start_conversation()
    assert service.send(en, "hmm").notice.text.startswith("I want to get this right")


def _language(service, conversation_id: int) -> str:
    with service.store.transaction(read_only=True) as s:
        return s.get(Conversation, conversation_id).language


def test_a_conversation_takes_the_language_its_customer_writes_in(scripted_service, replies):
    """A page's language menu left at English, then Chinese typed: the replies are decoded in Chinese, and
    the conversation is stored as Chinese (what its notices, the agent console and training read)."""
    service = scripted_service
    menu_left_at_english, _ = service.start_conversation()
    assert service.send(menu_left_at_english, "你好，我想找一家酒店").reply is not None
    assert replies.languages[-1] == "zh" and _language(service, menu_left_at_english) == "zh"
    service.send(menu_left_at_english, "ok thanks")  # only the first message decides
    assert replies.languages[-1] == "zh" and _language(service, menu_left_at_english) == "zh"

    picked_chinese, _ = service.start_conversation("zh")
    service.send(picked_chinese, "A1234 12345")  # an order number is no language: the choice stands
    assert _language(service, picked_chinese) == "zh"
    picked_chinese_wrote_english, _ = service.start_conversation("zh")
    service.send(picked_chinese_wrote_english, "Where is my order?")
    assert replies.languages[-1] == "en" and _language(service, picked_chinese_wrote_english) == "en"

    french, _ = service.start_conversation("fr")
    service.send(french, "Bonjour, où est ma commande ?")  # the same script: the choice stands
    assert replies.languages[-1] == "fr" and _language(service, french) == "fr"
    english, _ = service.start_conversation()
    service.send(english, "hello")
    service.send(english, "你好")
    assert replies.languages[-1] == "en" and _language(service, english) == "en"

    asks_in_chinese, _ = service.start_conversation()
    asked = service.send(asks_in_chinese, "请转人工")  # the hand-off notice follows the customer's language
    assert asked.handoff == "asked_for_human" and asked.notice.text == "好的，我们的工作人员马上就来为您服务。"


def test_a_bot_going_round_in_circles_hands_off(make_service, replies):
    """The customer gave the time and confirmed, and the bot would ask for it a third time: a person takes over
    (in auto mode; in draft mode the reviewing agent sees the repeat)."""
    asked = "What time would you like to book the table for?"
    for text in ("a table for two at 7 pm at Blue Bottle", "yes that's right", "7 pm"):
        replies.scripts[text] = [(asked, -0.2), ("Which city?", -0.9)]
    service = make_service(replies)
    cid, _ = service.start_conversation()
    assert service.send(cid, "a table for two at 7 pm at Blue Bottle").reply.text == asked
    stuck = service.send(cid, "yes that's right")
    assert stuck.status == "pending" and stuck.handoff == "repeating" and stuck.reply is None
    assert stuck.notice.text.startswith("I don't seem to be getting this right")
    who = _agent(service)
    _, transcript = service.transcript(who, cid)
    assert [(m.role, m.review_state) for m in transcript if m.role == "bot"] == [("bot", "sent"), ("bot", "draft")]

    replies.scripts["two at 8"] = [(asked, -0.2)]
    replies.scripts["at 8 pm"] = [(asked, -0.2), ("Which city are you in?", -0.3), ("Which city?", -0.9)]
    cid, _ = service.start_conversation()
    service.send(cid, "two at 8")
    other = service.send(cid, "at 8 pm")  # a candidate within the margin says something else: that one
    assert other.handoff is None and other.reply.text == "Which city are you in?"
    with service.store.transaction(read_only=True) as s:
        assert s.get(Message, other.reply.id).meta["repeat"] == {"avoided": True, "picked": 1}

    draft_mode = make_service(replies, review_mode="draft")
    reviewer = _agent(draft_mode, "bo")
    cid, _ = draft_mode.start_conversation()
    draft_mode.send(cid, "a table for two at 7 pm at Blue Bottle")
    first = next(m for m in draft_mode.transcript(reviewer, cid)[1] if m.role == "bot")
    draft_mode.review(reviewer, first.id, "approve")  # the customer has read it now
    again = draft_mode.send(cid, "7 pm")
    assert again.handoff is None and again.awaiting_review and again.status == "bot"


def test_low_confidence_hands_off_and_keeps_the_draft(make_service, replies):
    service = make_service(replies, handoff_min_score=-0.4)  # the scripted best score is -0.5
    cid, _ = service.start_conversation()
    result = service.send(cid, "hmm")
    assert result.status == "pending" and result.handoff == "low_confidence" and result.reply is None
    roles = [m.role for m in service.customer_messages(cid)[1]]
    assert roles == ["customer", "system"]  # the unsure reply is not shown
    who = _agent(service)
    _, transcript = service.transcript(who, cid)
    assert [m.review_state for m in transcript if m.role == "bot"] == ["draft"]


def test_a_reply_unsure_word_by_word_hands_off(make_service, replies):
    sure = make_service(replies, handoff_min_token_logprob=-1.0)  # the scripted reply's is -0.8
    cid, _ = sure.start_conversation()
    assert sure.send(cid, "hmm").reply is not None
    replies.token_logprob = -1.2
    cid, _ = sure.start_conversation()
    result = sure.send(cid, "hmm")
    assert result.status == "pending" and result.handoff == "low_confidence" and result.reply is None


def test_small_margin_hands_off(make_service, replies):
    replies.runner_up = -0.55
    service = make_service(replies, handoff_min_margin=0.1)
    cid, _ = service.start_conversation()
    assert service.send(cid, "hmm").handoff == "low_confidence"


def test_repeated_dislikes_hand_off(scripted_service):
    service = scripted_service  # replies that differ ("re: one", "re: two"): a repeat would hand off on its own
    cid, _ = service.start_conversation()
    first = service.send(cid, "one").reply
    second = service.send(cid, "two").reply
    assert service.rate_reply(cid, first.id, liked=False) == "bot"
    assert service.rate_reply(cid, second.id, liked=True) == "bot"
    third = service.send(cid, "three").reply
    assert service.rate_reply(cid, third.id, liked=False) == "pending"


def test_draft_mode_waits_for_an_agent_and_records_reviews(make_service):
    service = make_service(None, review_mode="draft")
    who = _agent(service)
    cid, _ = service.start_conversation()
    result = service.send(cid, "refund please")
    assert result.awaiting_review and result.reply is None
    assert [m.role for m in service.customer_messages(cid)[1]] == ["customer"]
    draft = next(m for m in service.transcript(who, cid)[1] if m.role == "bot")
    assert draft.review_state == "draft" and len(draft.candidates) == 2
    service.review(who, draft.id, "edit", "I have started your refund.")
    visible = service.customer_messages(cid)[1]
    assert visible[-1].text == "I have started your refund."
    with pytest.raises(IllegalTransition):
        service.review(who, draft.id, "approve")

    second = service.send(cid, "thanks")
    draft2 = [m for m in service.transcript(who, cid)[1] if m.role == "bot"][-1]
    service.review(who, draft2.id, "reject")
    assert len(service.customer_messages(cid)[1]) == 3  # the rejected draft never goes out
    assert second.reply is None
    with service.store.transaction(read_only=True) as s:
        reviews = [(r.action, r.original_text, r.corrected_text, r.agent_id) for r in s.scalars(select(Review))]
        audited = {a.action for a in s.scalars(select(AuditLog))}
    assert reviews == [("edit", draft.text, "I have started your refund.", who.user_id),
                       ("reject", draft2.text, None, who.user_id)]
    assert {"review.edit", "review.reject", "user.login"} <= audited


def test_auto_mode_review_keeps_what_the_customer_saw(service):
    who = _agent(service)
    cid, _ = service.start_conversation()
    sent = service.send(cid, "hello").reply
    service.review(who, sent.id, "edit", "Hello! How can I help?")
    assert service.customer_messages(cid)[1][-1].text == sent.text
    with service.store.transaction(read_only=True) as s:
        review = s.scalars(select(Review)).one()
    assert (review.original_text, review.corrected_text) == (sent.text, "Hello! How can I help?")


def test_takeover_hand_back_and_agent_rules(service):
    ana, bob = _agent(service), _agent(service, "bob")
    cid, _ = service.start_conversation()
    service.send(cid, "hi")
    service.take_over(ana, cid)
    assert service.send(cid, "still there?").reply is None
    service.agent_reply(ana, cid, "Ana here, how can I help?")
    with pytest.raises(IllegalTransition):
        service.take_over(bob, cid)
    with pytest.raises(Forbidden):
        service.agent_reply(bob, cid, "me too")
    service.hand_back(ana, cid)
    assert service.send(cid, "ok").reply is not None
    roles = [m.role for m in service.customer_messages(cid)[1]]
    assert roles == ["customer", "bot", "system", "customer", "agent", "system", "customer", "bot"]


def test_no_bot_reply_after_a_takeover_during_decoding(scripted_service, replies):
    """The race: the reply is being decoded when the agent takes over; it must be dropped."""
    service = scripted_service
    who = _agent(service)
    cid, _ = service.start_conversation()
    replies.gate.clear()
    replies.started.clear()
    outcome = {}
    sender = threading.Thread(target=lambda: outcome.setdefault("r", service.send(cid, "hello")))
    sender.start()
    assert replies.started.wait(10)
    service.take_over(who, cid)
    replies.gate.set()
    sender.join(10)
    assert outcome["r"].reply is None and outcome["r"].status == "human"
    with service.store.transaction(read_only=True) as s:
        assert s.scalars(select(Message).where(Message.role == "bot")).all() == []


def test_full_queue_answers_busy(make_service, replies):
    service = make_service(replies, queue_max_size=1, batch_max_size=1, decoders=1)
    replies.gate.clear()
    replies.started.clear()
    conversations = [service.start_conversation()[0] for _ in range(3)]
    threads = [threading.Thread(target=service.send, args=(conversations[0], "a"))]
    threads[0].start()
    assert replies.started.wait(10)  # the worker holds one request
    service.worker.submit([("customer", "fills the queue")])  # and one waits in the queue
    with pytest.raises(Busy, match="busy"):
        service.send(conversations[2], "c")
    replies.gate.set()
    threads[0].join(10)
    assert service.customer_messages(conversations[2])[1][0].text == "c"  # the message itself is kept


def test_roles_are_enforced(service):
    agent = _agent(service)
    admin = _agent(service, "root", "admin")
    cid, _ = service.start_conversation()
    with pytest.raises(Forbidden):
        service.erase_conversation_customer(agent, cid)
    report = service.erase_conversation_customer(admin, cid)
    assert report["conversations"] == 1
    with pytest.raises(AuthError):
        service.login("ana", "wrong password")
    with pytest.raises(AuthError):
        service.login("nobody", "password123")
