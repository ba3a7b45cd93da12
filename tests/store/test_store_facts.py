"""Company facts and the grounding sources, on SQLite and PostgreSQL: repository functions, refusals, audit,
and the 0002 migration up and down with data in place."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from chatbot.store import ConversationStore, InvalidValue, NotFound, facts
from chatbot.store import conversations as repo
from chatbot.store.db import current_revision, downgrade, head_revision, make_engine, upgrade
from chatbot.store.models import AuditLog, CompanyFact
from tests.shortcuts import ShortcutStore


def test_add_list_update_delete_and_audit(store: ConversationStore) -> None:
    with store.transaction() as s:
        admin = repo.create_user(s, "root", role="admin")
        hours = facts.add_fact(s, "  Opening hours ", "Mon-Fri 09:00-18:00\n", "en", actor_id=admin.id)
        phone = facts.add_fact(s, "Hotline", "客服电话 400-123-4567", "zh", actor_id=admin.id)
    assert (hours.title, hours.text, hours.language, hours.updated_by) == (
        "Opening hours", "Mon-Fri 09:00-18:00", "en", admin.id)
    with store.transaction(read_only=True) as s:
        assert [f.title for f in facts.list_facts(s)] == ["Hotline", "Opening hours"]  # by title
        assert [f.title for f in facts.list_facts(s, "zh")] == ["Hotline"]
        assert facts.fact_texts(s) == ["Opening hours\nMon-Fri 09:00-18:00", "Hotline\n客服电话 400-123-4567"]
    before = hours.updated_at
    with store.transaction() as s:
        changed = facts.update_fact(s, hours.id, "Opening hours", "Mon-Sat 10:00-19:00", "en", actor_id=admin.id)
        assert changed.updated_at >= before
    with store.transaction() as s:
        facts.delete_fact(s, phone.id, actor_id=admin.id)
    with store.transaction(read_only=True) as s:
        assert facts.fact_texts(s) == ["Opening hours\nMon-Sat 10:00-19:00"]
        audited = [(a.action, a.target, a.actor_id) for a in s.scalars(select(AuditLog).where(
            AuditLog.action.like("fact.%")).order_by(AuditLog.id))]
    assert audited == [("fact.create", f"fact:{hours.id}", admin.id), ("fact.create", f"fact:{phone.id}", admin.id),
                       ("fact.update", f"fact:{hours.id}", admin.id), ("fact.delete", f"fact:{phone.id}", admin.id)]


def test_bad_facts_are_refused_and_nothing_is_written(store: ConversationStore) -> None:
    refusals = [("", "text", "en", "title"), ("title", "   ", "en", "text"), ("t" * 201, "text", "en", "limit"),
                ("title", "text", "xx", "language"), ("title", "x" * 30, "en", "limit")]
    for title, body, language, message in refusals:
        with pytest.raises(InvalidValue, match=message), store.transaction() as s:
            facts.add_fact(s, title, body, language, max_chars=20)
    with store.transaction() as s:
        card = facts.add_fact(s, "Card", "test card 4111 1111 1111 1111\x00 ok")
    assert "4111" not in card.text and "\x00" not in card.text  # the message text policy applies
    with pytest.raises(NotFound), store.transaction() as s:
        facts.update_fact(s, 10**6, "a", "b", "en")
    with pytest.raises(NotFound), store.transaction() as s:
        facts.delete_fact(s, 10**6)
    with store.transaction(read_only=True) as s:
        assert [f.title for f in facts.list_facts(s)] == ["Card"]


def test_conversation_texts_are_what_the_customer_saw(store: ShortcutStore) -> None:
    conv = store.start_conversation()
    with store.transaction() as s:
        repo.store_message(s, conv.id, "customer", "book for 2 at 7 pm")
        repo.store_message(s, conv.id, "bot", "a draft nobody saw: March 12th", review_state="draft")
        repo.store_message(s, conv.id, "bot", "rejected", review_state="rejected")
        repo.store_message(s, conv.id, "system", "A person will join shortly.")
        repo.store_message(s, conv.id, "agent", "Ana here: Blue Bottle is free")
        repo.store_message(s, conv.id, "bot", "approved", review_state="approved")
    with store.transaction(read_only=True) as s:
        assert repo.conversation_texts(s, conv.id) == ["book for 2 at 7 pm", "Ana here: Blue Bottle is free", "approved"]
        assert repo.conversation_texts(s, conv.id, limit=2) == ["Ana here: Blue Bottle is free", "approved"]
        assert repo.conversation_texts(s, 10**9) == []


def test_company_facts_migration_up_and_down_keeps_other_data(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0001")
        assert "company_facts" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (username, role, created_at) VALUES ('root', 'admin', :now)"),
                         {"now": "2026-01-01 00:00:00"})
        upgrade(engine, "0002")
        assert current_revision(engine) == "0002"
        columns = {c["name"] for c in inspect(engine).get_columns("company_facts")}
        assert columns == {c.name for c in CompanyFact.__table__.columns}
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO company_facts (title, text, language, created_at, updated_at, updated_by) "
                              "VALUES ('Hours', '9-5', 'en', :now, :now, 1)"), {"now": "2026-01-01 00:00:00"})
            conn.execute(text("DELETE FROM users"))  # the fact outlives its author (ON DELETE SET NULL)
            assert conn.execute(text("SELECT title, updated_by FROM company_facts")).all() == [("Hours", None)]
        downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        assert "company_facts" not in inspect(engine).get_table_names()
        assert "users" in inspect(engine).get_table_names()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
