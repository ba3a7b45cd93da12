"""Repository functions and the store (with the test shortcuts), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timezone

import pytest
from sqlalchemy import func, select

from chatbot.store import AlreadyExists, IllegalTransition, InvalidValue, NotFound
from chatbot.store import conversations as repo
from chatbot.store.conversations import ALLOWED_TRANSITIONS
from chatbot.store.models import CONVERSATION_STATUSES, AuditLog, Message, ReplyCandidate
from tests.shortcuts import ShortcutStore


def test_messages_are_numbered_and_history_is_oldest_first(store: ShortcutStore) -> None:
    conv = store.start_conversation(language="de", channel="web")
    other = store.start_conversation()
    for i in range(30):
        store.append_message(conv.id, "customer" if i % 2 == 0 else "bot", f"turn {i}")
    store.append_message(other.id, "customer", "elsewhere")

    turns = store.last_turns(conv.id, 20)
    assert [t.seq for t in turns] == list(range(11, 31))
    assert [t.text for t in turns] == [f"turn {i}" for i in range(10, 30)]
    assert [t.seq for t in store.last_turns(other.id, 20)] == [1]
    assert store.last_turns(conv.id, 0) == []
    assert store.get_conversation(conv.id).last_seq == 30
    assert store.get_conversation(conv.id).language == "de"


def test_bot_message_keeps_generation_details_and_candidates(store: ShortcutStore) -> None:
    conv = store.start_conversation()
    store.append_message(conv.id, "customer", "where is my order?")
    bot = store.append_message(
        conv.id, "bot", "It ships tomorrow.",
        decoding={"num_beams": 5, "repetition_penalty": 1.2}, confidence=0.83,
        attention=[[0.1, 0.9]], candidates=[("It ships tomorrow.", -0.4), ("Tomorrow.", -1.3)],
        meta={"slots": [{"slot": "date", "start": 9, "end": 17}]},
    )
    assert bot.review_state == "sent"
    assert bot.created_at.tzinfo is not None and bot.created_at.utcoffset() == timezone.utc.utcoffset(None)
    with store.transaction(read_only=True) as session:
        stored = session.get(Message, bot.id)
        assert stored is not None
        assert stored.decoding == {"num_beams": 5, "repetition_penalty": 1.2}
        assert stored.confidence == pytest.approx(0.83)
        assert stored.attention == [[0.1, 0.9]]
        assert stored.meta == {"slots": [{"slot": "date", "start": 9, "end": 17}]}
        assert [(c.rank, c.text, c.score) for c in stored.candidates] == [
            (0, "It ships tomorrow.", pytest.approx(-0.4)), (1, "Tomorrow.", pytest.approx(-1.3))
        ]
        assert stored.created_at.tzinfo is not None


def test_store_message_writes_what_append_message_reads_back(store: ShortcutStore) -> None:
    """The chat path's Core INSERTs store the same row and candidates as the ORM path, and refuse alike."""
    conv = store.start_conversation()
    attention = {"source_tokens": ["where", "?"], "target_tokens": ["here"], "weights": [[0.75, 0.25]]}
    with store.transaction() as session:
        mine = repo.store_message(session, conv.id, "customer", "where is it? <b>now</b>")
        reply = repo.store_message(session, conv.id, "bot", "It is here.", confidence=0.5, attention=attention,
                                   decoding={"num_beams": 3}, candidates=[("It is here.", -0.2), ("Here.", -0.9)],
                                   only_in=("bot",))
    assert (mine.seq, mine.role, mine.review_state, reply.seq, reply.review_state) == (1, "customer", None, 2, "sent")
    assert reply.created_at.tzinfo is not None
    with store.transaction(read_only=True) as session:
        stored = session.get(Message, reply.id)
        assert stored is not None and stored.text == "It is here." and stored.seq == 2
        assert stored.attention == attention and stored.decoding == {"num_beams": 3}
        assert [(c.rank, c.text, c.score) for c in stored.candidates] == [
            (0, "It is here.", pytest.approx(-0.2)), (1, "Here.", pytest.approx(-0.9))]
        assert session.get(Message, mine.id).text == "where is it? <b>now</b>"  # stored as text, escaped on display
    store.set_status(conv.id, "human")
    with store.transaction() as session, pytest.raises(IllegalTransition):
        repo.store_message(session, conv.id, "bot", "too late", only_in=("bot",))
    with store.transaction() as session, pytest.raises(NotFound):
        repo.store_message(session, 10**9, "customer", "nobody here")
    assert store.get_conversation(conv.id).last_seq == 2  # refused messages take no sequence number


def test_visible_context_is_what_the_customer_saw_last_turns_oldest_first(store: ShortcutStore) -> None:
    """The model answers from what the customer actually read: drafts, rejected replies and system notices
    are left out, and only the last ``turns`` turns count (``before_seq`` for replaying an old reply)."""
    conv = store.start_conversation()
    with store.transaction() as session:
        repo.store_message(session, conv.id, "customer", "hello")
        repo.store_message(session, conv.id, "bot", "a draft nobody saw", review_state="draft")
        repo.store_message(session, conv.id, "bot", "rejected", review_state="rejected")
        repo.store_message(session, conv.id, "bot", "hi, how can I help?")
        repo.store_message(session, conv.id, "system", "A person will join shortly.")
        repo.store_message(session, conv.id, "agent", "I am here")
        later = repo.store_message(session, conv.id, "customer", "where is my order?")
        repo.store_message(session, conv.id, "bot", "approved later", review_state="approved")
    with store.transaction(read_only=True) as session:
        assert repo.visible_context(session, conv.id, 10) == [
            ("customer", "hello"), ("bot", "hi, how can I help?"), ("agent", "I am here"),
            ("customer", "where is my order?"), ("bot", "approved later")]
        assert repo.visible_context(session, conv.id, 2) == [("customer", "where is my order?"),
                                                             ("bot", "approved later")]
        assert repo.visible_context(session, conv.id, 10, before_seq=later.seq) == [
            ("customer", "hello"), ("bot", "hi, how can I help?"), ("agent", "I am here")]
        assert repo.visible_context(session, 10**9, 5) == []


def test_draft_reply_and_review_fields_belong_to_bot_messages(store: ShortcutStore) -> None:
    conv = store.start_conversation()
    assert store.append_message(conv.id, "bot", "draft reply", review_state="draft").review_state == "draft"
    assert store.append_message(conv.id, "customer", "hello").review_state is None
    with pytest.raises(InvalidValue):
        store.append_message(conv.id, "customer", "hello", review_state="draft")
    with pytest.raises(InvalidValue):
        store.append_message(conv.id, "bot", "x", review_state="maybe")
    with pytest.raises(InvalidValue):
        store.append_message(conv.id, "robot", "x")


@pytest.mark.parametrize("old", CONVERSATION_STATUSES)
@pytest.mark.parametrize("new", CONVERSATION_STATUSES)
def test_status_transition_table(session_factory, old: str, new: str) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        conv = repo.start_conversation(session)
        if old != "bot":
            repo.set_status(session, conv.id, old)
        allowed = old != "closed" and (new == old or new in ALLOWED_TRANSITIONS[old])
        if allowed:
            assert repo.set_status(session, conv.id, new).status == new
        else:
            with pytest.raises(IllegalTransition):
                repo.set_status(session, conv.id, new)
            assert repo.get_conversation(session, conv.id).status == old
        session.rollback()


def test_handover_assigns_agent_blocks_bot_and_is_audited(store: ShortcutStore) -> None:
    agent = store.create_user("alice", role="agent", display_name="Alice")
    conv = store.start_conversation()
    store.append_message(conv.id, "bot", "hello")
    human = store.set_status(conv.id, "human", agent_id=agent.id)
    assert human.assigned_agent_id == agent.id
    with pytest.raises(IllegalTransition, match="human"):
        store.append_message(conv.id, "bot", "may I help?")
    store.append_message(conv.id, "agent", "Alice here.")
    store.append_message(conv.id, "customer", "thanks")
    assert [m.seq for m in store.last_turns(conv.id, 10)] == [1, 2, 3]
    assert store.set_status(conv.id, "bot").assigned_agent_id is None
    with store.transaction(read_only=True) as session:
        entries = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [(e.actor_id, e.details) for e in entries] == [
            (agent.id, {"from": "bot", "to": "human"}), (None, {"from": "human", "to": "bot"})
        ]


def test_only_in_refuses_a_message_in_any_other_status_and_writes_nothing(store: ShortcutStore) -> None:
    conv = store.start_conversation(language="fr")
    with store.transaction() as s:
        token_hash = "ab" * 32
        repo.get_conversation(s, conv.id).token_hash = token_hash
        assert repo.conversation_state(s, conv.id) == ("bot", "fr", token_hash)
        assert repo.conversation_state(s, conv.id + 1000) is None
        repo.set_status(s, conv.id, "pending")
    with pytest.raises(IllegalTransition, match="pending; it takes no bot messages"):
        with store.transaction() as s:
            repo.append_message(s, conv.id, "bot", "hello", only_in=("bot",))
    with store.transaction() as s:
        assert repo.append_message(s, conv.id, "bot", "hello").seq == 1  # pending takes bot drafts otherwise
        assert repo.append_message(s, conv.id, "customer", "hi", only_in=("pending", "human")).seq == 2
        assert repo.conversation_state(s, conv.id).status == "pending"
    with pytest.raises(NotFound):
        with store.transaction() as s:
            repo.append_message(s, conv.id + 1000, "bot", "hello", only_in=("bot",))
    assert [m.text for m in store.last_turns(conv.id, 10)] == ["hello", "hi"]


def test_closed_is_final_and_keeps_csat(store: ShortcutStore) -> None:
    conv = store.start_conversation()
    store.append_message(conv.id, "customer", "bye")
    closed = store.close_conversation(conv.id, csat=4)
    assert (closed.status, closed.csat) == ("closed", 4)
    assert closed.closed_at is not None
    for role in ("customer", "bot", "agent", "system"):
        with pytest.raises(IllegalTransition, match="closed"):
            store.append_message(conv.id, role, "hello again")
    with pytest.raises(IllegalTransition):
        store.set_status(conv.id, "bot")
    with pytest.raises(IllegalTransition):
        store.close_conversation(conv.id)
    with pytest.raises(IllegalTransition):
        store.set_csat(conv.id, 1)
    assert store.get_conversation(conv.id).last_seq == 1


def test_csat_after_closing_and_out_of_range(store: ShortcutStore) -> None:
    conv = store.start_conversation()
    store.close_conversation(conv.id)
    for bad in (0, 6, 3.5, True, "5"):
        with pytest.raises(InvalidValue):
            store.set_csat(conv.id, bad)  # type: ignore[arg-type]
    assert store.set_csat(conv.id, 5).csat == 5


def test_queue_puts_pending_first_longest_waiting_first(store: ShortcutStore) -> None:
    a, b, c, d, e = (store.start_conversation() for _ in range(5))
    store.set_status(a.id, "pending")
    store.set_status(b.id, "human")
    store.set_status(c.id, "pending")
    store.append_message(d.id, "customer", "still talking to the bot")
    store.close_conversation(e.id)
    assert [q.id for q in store.list_queue()] == [a.id, c.id, d.id, b.id]
    assert [q.id for q in store.list_queue(statuses=["pending"])] == [a.id, c.id]
    assert [q.id for q in store.list_queue(statuses=["closed"])] == [e.id]
    assert len(store.list_queue(limit=2)) == 2
    with pytest.raises(InvalidValue):
        store.list_queue(statuses=["waiting"])


def test_imports_are_idempotent_by_source_and_external_id(store: ShortcutStore) -> None:
    first = store.start_conversation(source="sgd", external_id="1_00001", meta={"services": ["Banks_1"]})
    with pytest.raises(AlreadyExists) as caught:
        store.start_conversation(source="sgd", external_id="1_00001")
    assert caught.value.existing_id == first.id
    store.start_conversation(source="taskmaster", external_id="1_00001")
    store.start_conversation()  # live conversations have no external id; many may exist
    store.start_conversation()
    with store.transaction(read_only=True) as session:
        found = repo.find_conversation(session, "sgd", "1_00001")
        assert found is not None and found.meta == {"services": ["Banks_1"]}
    assert store.stats()["conversations"] == 4


def test_users_and_customers(store: ShortcutStore) -> None:
    alice = store.create_user("alice", role="agent")
    with pytest.raises(AlreadyExists):
        store.create_user("alice")
    with pytest.raises(InvalidValue):
        store.create_user("bob", role="superuser")
    cust = store.get_or_create_customer("cust-1", display_name="Jo")
    assert store.get_or_create_customer("cust-1").id == cust.id
    assert (cust.role, alice.role) == ("customer", "agent")
    conv = store.start_conversation(customer_id=cust.id)
    assert store.get_conversation(conv.id).customer_id == cust.id


def test_stats_counts_by_status_and_role(store: ShortcutStore) -> None:
    a, b = store.start_conversation(), store.start_conversation()
    store.append_message(a.id, "customer", "hi")
    store.append_message(a.id, "bot", "hello", candidates=[("hello", -0.1)])
    store.append_message(b.id, "system", "conversation imported")
    store.set_status(b.id, "pending")
    assert store.stats() == {
        "conversations": 2,
        "messages": 3,
        "by_status": {"bot": 1, "pending": 1, "human": 0, "closed": 0},
        "by_role": {"customer": 1, "bot": 1, "agent": 0, "system": 1},
    }


def test_repository_functions_leave_the_transaction_to_the_caller(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        conv = repo.start_conversation(session)
        repo.append_message(session, conv.id, "bot", "hi", candidates=[("hi", -0.2)])
        session.rollback()
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        assert session.scalar(select(func.count()).select_from(ReplyCandidate)) == 0
        with pytest.raises(NotFound):
            repo.get_conversation(session, conv.id)
