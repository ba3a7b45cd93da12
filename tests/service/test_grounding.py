"""Grounding in the chat service, on the real store (SQLite and PostgreSQL) with scripted n-best candidates:
a grounded candidate within the margin replaces an ungrounded best one; none within the margin sends the
reply to an agent (auto: handoff with the details as the reason; draft: a flagged draft); company facts
and earlier turns ground details; facts are admin-only writes."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from chatbot.service.auth import Forbidden
from chatbot.service.facts import FactsService
from chatbot.service.grounding import choose
from chatbot.store.db import InvalidValue
from chatbot.store.models import AuditLog, Message

CHARGED = "My card was charged twice"
INVENTED = "Please confirm the following details: You want to book a table for 2 people at 12 pm on March 12th."
SORRY = "I am sorry about the double charge; a colleague will check it."


def _login(service, name="ana", role="agent"):
    service.add_user(name, "password123", role)
    return service.login(name, "password123")


def _bot(service, cid):
    with service.store.transaction(read_only=True) as s:
        return s.scalars(select(Message).where(Message.conversation_id == cid, Message.role == "bot")
                         .options(selectinload(Message.candidates)).order_by(Message.seq.desc())).first()


def test_a_grounded_candidate_within_the_margin_is_sent_instead(make_service, replies):
    replies.scripts[CHARGED] = [(INVENTED, -0.50), (SORRY, -0.60), ("other", -0.90)]
    service = make_service(replies, grounding_margin=0.15)
    cid, _ = service.start_conversation("en")
    result = service.send(cid, CHARGED)
    assert result.status == "bot" and result.reply is not None and result.reply.text == SORRY
    bot = _bot(service, cid)
    assert bot.review_state == "sent" and bot.text == SORRY
    assert [c.text for c in bot.candidates] == [INVENTED, SORRY, "other"]  # the model's order is kept
    assert bot.meta["grounding"] == {"picked": 1, "margin": 0.15, "ungrounded": [],
                                     "candidates": [["2", "12 pm", "March 12th"], [], []]}


def test_a_taught_answer_keeps_which_question_taught_it_for_the_agents(make_service, replies):
    """Reply.taught (chatbot.text.taught) is stored in the message's meta when that reply is the one sent,
    and not when the grounding check sends another candidate."""
    taught = {"question": "Do gift cards expire?", "similarity": 0.41, "bonus": 0.082}
    gift = "Gift cards are valid for one year from purchase."
    replies.scripts["When do gift cards stop working?"] = [(gift, -0.23), ("We accept Visa.", -0.19)]
    replies.taught["When do gift cards stop working?"] = taught
    replies.scripts[CHARGED] = [(INVENTED, -0.50), (SORRY, -0.60)]
    replies.taught[CHARGED] = taught
    service = make_service(replies, grounding_margin=0.15)
    cid, _ = service.start_conversation("en")
    assert service.send(cid, "When do gift cards stop working?").reply.text == gift
    bot = _bot(service, cid)
    assert bot.meta["taught"] == taught and [c.text for c in bot.candidates] == [gift, "We accept Visa."]
    other, _ = service.start_conversation("en")
    assert service.send(other, CHARGED).reply.text == SORRY
    assert "taught" not in _bot(service, other).meta


def test_no_grounded_candidate_within_the_margin_hands_off_with_the_details(make_service, replies):
    replies.scripts[CHARGED] = [(INVENTED, -0.50), (SORRY, -0.60)]
    service = make_service(replies, grounding_margin=0.05)
    cid, _ = service.start_conversation("en")
    result = service.send(cid, CHARGED)
    assert result.status == "pending" and result.reply is None and result.handoff == "ungrounded_details"
    assert "12 pm" not in result.notice.text  # the customer reads a plain notice
    _, visible = service.customer_messages(cid)
    assert [m.role for m in visible] == ["customer", "system"]  # the invented reply never went out
    agent = _login(service)
    assert [c.status for c in service.queue(agent) if c.id == cid] == ["pending"]
    _, transcript = service.transcript(agent, cid)
    draft = next(m for m in transcript if m.role == "bot")
    notice = next(m for m in transcript if m.role == "system")
    assert draft.review_state == "draft" and draft.text == INVENTED
    assert draft.meta["grounding"]["picked"] is None
    assert draft.meta["grounding"]["ungrounded"] == ["2", "12 pm", "March 12th"]
    assert notice.meta == {"handoff": "ungrounded_details", "reason": "ungrounded details: 2, 12 pm, March 12th"}


def test_draft_mode_keeps_the_ungrounded_reply_as_a_flagged_draft(make_service, replies):
    replies.scripts[CHARGED] = [(INVENTED, -0.50)]
    service = make_service(replies, review_mode="draft")
    cid, _ = service.start_conversation("en")
    result = service.send(cid, CHARGED)
    assert result.status == "bot" and result.awaiting_review and result.handoff is None
    agent = _login(service)
    draft = next(m for m in service.transcript(agent, cid)[1] if m.role == "bot")
    assert draft.review_state == "draft" and draft.meta["grounding"]["ungrounded"] == ["2", "12 pm", "March 12th"]
    service.review(agent, draft.id, "edit", "Sorry about that, I have asked a colleague to check the charge.")
    assert service.customer_messages(cid)[1][-1].text.startswith("Sorry about that")


def test_company_facts_ground_details_from_the_next_reply_on(make_service, replies):
    hours = "We are open from 9 am to 6 pm, call 400-123-4567."
    replies.scripts["when are you open?"] = [(hours, -0.30), ("Let me check that for you.", -0.40)]
    service = make_service(replies)
    admin = _login(service, "root", "admin")
    cid, _ = service.start_conversation("en")
    assert service.send(cid, "when are you open?").reply.text == "Let me check that for you."
    FactsService(service).add(admin, "Opening hours", "Monday to Friday 09:00-18:00. Hotline (400) 123 4567.")
    assert service.send(cid, "when are you open?").reply.text == hours
    assert _bot(service, cid).meta["grounding"]["picked"] == 0


def test_earlier_turns_and_agent_messages_ground_details(make_service, replies):
    confirm = "Your table at Blue Bottle for two at 7 pm is booked."
    replies.scripts["please book it"] = [(confirm, -0.30), ("Done.", -0.35)]
    service = make_service(replies, grounding_margin=0.0)
    agent = _login(service)
    cid, _ = service.start_conversation("en")
    service.send(cid, "a table for 2 people please")
    service.take_over(agent, cid)
    service.agent_reply(agent, cid, "Blue Bottle has a table at 7pm.")
    service.hand_back(agent, cid)
    for turn in range(8):  # further back than the model's context window
        service.send(cid, f"filler {turn}")
    assert service.send(cid, "please book it").reply.text == confirm


def test_chinese_numbers_times_and_amounts(make_service, replies):
    charged = "我的卡被扣了两次钱"
    invented = "好的，已为您预订3月12日下午3点的两位，共100元。"
    sorry = "抱歉给您带来不便，我们会尽快核实这笔扣款。"
    replies.scripts[charged] = [(invented, -0.40), (sorry, -0.50)]
    service = make_service(replies)
    cid, _ = service.start_conversation("zh")
    assert service.send(cid, charged).reply.text == sorry
    assert _bot(service, cid).meta["grounding"]["candidates"][0] == ["3月12日", "下午3点", "100元"]


def test_low_confidence_wins_over_grounding_and_grounding_can_be_switched_off(make_service, replies):
    replies.scripts[CHARGED] = [(INVENTED, -0.50), (SORRY, -0.55)]
    unsure = make_service(replies, handoff_min_score=-0.4)
    cid, _ = unsure.start_conversation("en")
    result = unsure.send(cid, CHARGED)
    assert result.handoff == "low_confidence"
    assert _bot(unsure, cid).text == SORRY  # the draft an agent sees is the grounded candidate
    off = make_service(replies, grounding=False)
    cid, _ = off.start_conversation("en")
    assert off.send(cid, CHARGED).reply.text == INVENTED
    assert _bot(off, cid).meta is None


def test_facts_are_written_by_admins_and_audited(make_service, replies):
    service = make_service(replies)
    agent, admin = _login(service), _login(service, "root", "admin")
    facts = FactsService(service)
    with pytest.raises(Forbidden):
        facts.add(agent, "Hours", "9-5")
    fact = facts.add(admin, "Hours", "9 am to 5 pm", "en")
    with pytest.raises(Forbidden):
        facts.update(agent, fact.id, "Hours", "never", "en")
    with pytest.raises(Forbidden):
        facts.delete(agent, fact.id)
    with pytest.raises(InvalidValue):
        facts.add(admin, "  ", "text")
    updated = facts.update(admin, fact.id, "Hours", "9 am to 6 pm", "en")
    assert [(f.id, f.title, f.text) for f in facts.list(agent)] == [(fact.id, "Hours", "9 am to 6 pm")]
    assert updated.updated_at >= fact.updated_at
    facts.delete(admin, fact.id)
    assert facts.list(admin) == []
    with service.store.transaction(read_only=True) as s:
        actions = [(a.action, a.actor_id) for a in s.scalars(select(AuditLog).where(AuditLog.action.like("fact.%")))]
    assert actions == [("fact.create", admin.user_id), ("fact.update", admin.user_id), ("fact.delete", admin.user_id)]


@pytest.mark.parametrize(("candidates", "missing", "margin", "picked"), [
    ([("a", -0.5), ("b", -0.6)], [[], []], 0.0, 0),
    ([("a", -0.5), ("b", -0.6)], [["x"], []], 0.1, 1),
    ([("a", -0.5), ("b", -0.6)], [["x"], []], 0.099, None),
    ([("a", -0.5), ("", -0.5), ("c", -0.55)], [["x"], [], []], 0.1, 2),  # an empty reply says nothing
    ([("a", -0.5), ("b", -0.7), ("c", -0.6)], [["x"], [], []], 0.3, 2),  # highest score, not first listed
    ([], [], 1.0, None),
])
def test_choose(candidates, missing, margin, picked):
    assert choose(candidates, missing, margin) == picked


def test_a_failing_check_fails_closed(make_service, replies, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("chatbot.service.grounding.ungrounded", broken)
    service = make_service(replies)
    cid, _ = service.start_conversation("en")
    result = service.send(cid, "hello")
    assert result.status == "pending" and result.handoff == "ungrounded_details"
    agent = _login(service)
    notice = next(m for m in service.transcript(agent, cid)[1] if m.role == "system")
    assert notice.meta["reason"] == "the grounding check failed (RuntimeError)"
    assert _bot(service, cid).meta["grounding"]["error"] == "RuntimeError"
