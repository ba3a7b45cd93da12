"""Import -> store -> export pairs, forget and purge, on SQLite and PostgreSQL (``store`` fixture)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from chatbot.store.models import AuditLog, Conversation, Message, ReplyCandidate, Review, User
from chatbot.store.registry import register
from chatbot.store.retention import forget_customer, purge_older_than
from tests.data.helpers import FIXTURES, shared
from training.export import ExportOptions, export_pairs, manifest_path
from training.importers import get_importer
from training.ingest import ingest


def _import(store, fmt: str, path: Path, **kwargs):  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        return ingest(session, get_importer(fmt)(path, None), **kwargs)


def _count(store, model) -> int:  # type: ignore[no-untyped-def]
    with store.transaction(read_only=True) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_import_is_idempotent_and_masks_cards(store) -> None:  # type: ignore[no-untyped-def]
    first = _import(store, "jsonl", FIXTURES / "conversations.jsonl")
    assert (first.conversations, first.messages, first.skipped, first.duplicates) == (2, 4, 1, 0)
    second = _import(store, "jsonl", FIXTURES / "conversations.jsonl")
    assert (second.conversations, second.messages, second.duplicates) == (0, 0, 2)
    assert _count(store, Conversation) == 2 and _count(store, Message) == 4
    with store.transaction(read_only=True) as session:
        texts = list(session.scalars(select(Message.text)))
        conversation = session.scalar(select(Conversation).where(Conversation.external_id == "c-1"))
        assert conversation.last_seq == 2
        seqs = list(session.scalars(select(Message.seq).where(Message.conversation_id == conversation.id).order_by(Message.seq)))
        assert seqs == [1, 2]
        customer = session.get(User, conversation.customer_id)
        assert customer.username == "jsonl:cust-1" and customer.role == "customer"
    assert not any("4111" in t for t in texts)  # the full card number never reaches the store
    assert any("<CARD>" in t for t in texts)


def test_same_external_id_in_two_sources_are_different_conversations(store) -> None:  # type: ignore[no-untyped-def]
    _import(store, "sgd", FIXTURES / "sgd" / "dev")
    report = _import(store, "taskmaster", FIXTURES / "taskmaster")
    assert report.conversations == 2 and _count(store, Conversation) == 4


def test_sgd_dev_exact_counts_and_second_import_adds_nothing(store) -> None:  # type: ignore[no-untyped-def]
    path = shared("sgd/dev")
    report = _import(store, "sgd", path)
    assert (report.conversations, report.messages, report.skipped) == (2098, 38768, 0)
    again = _import(store, "sgd", path)
    assert (again.conversations, again.messages, again.duplicates) == (0, 0, 2098)
    assert _count(store, Conversation) == 2098 and _count(store, Message) == 38768
    with store.transaction(read_only=True) as session:
        meta = session.scalars(select(Message.meta).where(Message.role == "agent", Message.meta.is_not(None))).first()
    assert "slots" in meta


def test_taskmaster_exact_counts(store) -> None:  # type: ignore[no-untyped-def]
    report = _import(store, "taskmaster", shared("taskmaster4"))
    assert (report.conversations, report.messages, report.skipped) == (3500, 13129, 0)


def _conversation_with_reviews(session) -> int:  # type: ignore[no-untyped-def]
    """customer, approved bot, customer, edited bot, customer, rejected bot, customer, unreviewed bot, agent."""
    from chatbot.store import conversations as repo

    user = repo.get_or_create_customer(session, "web:ann", display_name="Ann Lee")
    conversation = repo.start_conversation(session, customer_id=user.id, source="live", external_id="live-1")
    add = lambda role, text, **kw: repo.append_message(session, conversation.id, role, text, **kw)
    add("customer", "Hi, I'm Ann Lee, email ann@example.com")
    approved = add("bot", "Hello Ann, how can I help?", candidates=[("Hello Ann, how can I help?", -0.1)])
    add("customer", "Where is my parcel?")
    edited = add("bot", "It is lost.")
    add("customer", "Can you check again?")
    rejected = add("bot", "No.")
    add("customer", "Hello?")
    add("bot", "Unchecked reply.")
    add("agent", "It arrives tomorrow, Ann.")
    for message, action, state, corrected in [(approved, "approve", "approved", None),
                                               (edited, "edit", "edited", "It is on its way; it arrives Monday."),
                                               (rejected, "reject", "rejected", None)]:
        session.add(Review(message_id=message.id, action=action, original_text=message.text, corrected_text=corrected))
        message.review_state = state
    session.flush()
    return user.id


def test_export_pairs_learns_only_from_checked_replies(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        _conversation_with_reviews(session)
    _import(store, "abcd", FIXTURES / "abcd.json")
    out = tmp_path / "pairs.jsonl"
    with store.transaction(read_only=True) as session:
        manifest = export_pairs(session, out, ExportOptions(source="live", max_context_turns=3))
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(p["kind"], p["response"]) for p in pairs] == [
        ("approved", "Hello <NAME>, how can I help?"),
        ("corrected", "It is on its way; it arrives Monday."),
        ("agent", "It arrives tomorrow, <NAME>."),
    ]
    assert [p["weight"] for p in pairs] == [1.0, 2.0, 1.0]
    last = pairs[-1]["context"]
    assert len(last) == 3 and "No." not in [c["text"] for c in last]  # rejected reply never in context
    assert pairs[0]["context"][0]["text"] == "Hi, I'm <NAME>, email <EMAIL>"
    assert manifest["pairs"] == 3 and manifest["sources"] == {"live": 3}
    assert len(manifest["customer_hashes"]) == 1
    assert json.loads(manifest_path(out).read_text())["conversation_ids_sha256"] == manifest["conversation_ids_sha256"]


def test_export_keeps_the_company_details_agents_teach_and_redacts_the_customers(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from chatbot.store import conversations as repo
    from chatbot.store.facts import add_fact

    with store.transaction() as session:
        conversation = repo.start_conversation(session, source="live", external_id="live-phone")
        repo.append_message(session, conversation.id, "customer", "What is your number? Mine is 555-0142.")
        bot = repo.append_message(session, conversation.id, "bot", "I cannot help with that.")
        session.add(Review(message_id=bot.id, action="edit", original_text=bot.text,
                           corrected_text="Call our support team at 555-0199, or visit us at 12 Oak Street."))
        bot.review_state = "edited"
    out = tmp_path / "pairs.jsonl"

    def exported() -> dict:
        with store.transaction(read_only=True) as session:
            export_pairs(session, out, ExportOptions(source="live"))
        return json.loads(out.read_text(encoding="utf-8").splitlines()[0])

    before = exported()  # nothing published: the agent's details are redacted like anyone's
    assert "555-0199" not in before["response"] and "<PHONE>" in before["response"]
    with store.transaction() as session:
        add_fact(session, "Contact", "Phone 555-0199. Our store: 12 Oak Street, next to the station.")
    pair = exported()
    assert pair["kind"] == "corrected"
    assert pair["response"] == "Call our support team at 555-0199, or visit us at 12 Oak Street."
    assert pair["context"][0]["text"] == "What is your number? Mine is <PHONE>."  # the customer's stays out


def test_export_filters_and_no_redact(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _import(store, "abcd", FIXTURES / "abcd.json")
    _import(store, "csv", FIXTURES / "conversations.csv")
    out = tmp_path / "p.jsonl"
    with store.transaction(read_only=True) as session:
        zh = export_pairs(session, out, ExportOptions(language="zh"))
        assert zh["languages"] == {"zh": 1} and zh["sources"] == {"csv": 1}
        raw = export_pairs(session, out, ExportOptions(source="abcd", redact=False))
        text = out.read_text(encoding="utf-8")
        assert "cminh730@email.com" in text and raw["settings"]["redact"] is False
        export_pairs(session, out, ExportOptions(source="abcd"))
        text = out.read_text(encoding="utf-8")
        assert "cminh730" not in text and "625-2661" not in text and "Crystal" not in text
        future = export_pairs(session, out, ExportOptions(since=datetime.now(timezone.utc) + timedelta(days=1)))
        assert future["pairs"] == 0 and out.read_text() == ""


def test_export_keeps_sgd_slot_values_for_entity_copy_recall(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.sources import read_export

    _import(store, "sgd", FIXTURES / "sgd" / "dev")
    out = tmp_path / "sgd.jsonl"
    with store.transaction(read_only=True) as session:
        export_pairs(session, out, ExportOptions(source="sgd"))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    first = next(r for r in rows if r["response"].startswith("Sino in San Jose"))
    assert first["slot_values"] == ["Sino", "San Jose"]
    assert all(v in r["response"] for r in rows for v in r["slot_values"])
    pair = next(p for p in read_export(out) if p.reply.startswith("Sino in San Jose"))
    assert pair.slot_values == ("Sino", "San Jose")


def test_forget_deletes_everything_and_lists_models(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        user_id = _conversation_with_reviews(session)
    _import(store, "jsonl", FIXTURES / "conversations.jsonl")  # another customer's data stays
    out = tmp_path / "pairs.jsonl"
    with store.transaction() as session:
        manifest = export_pairs(session, out, ExportOptions())
        trained = register(session, "m-with-ann", str(tmp_path), manifest={"export": manifest})
        register(session, "m-without", str(tmp_path), manifest={"export": {**manifest, "customer_hashes": []}})
        trained_id = trained.id
    before = (_count(store, Conversation), _count(store, Message))
    with store.transaction() as session:
        report = forget_customer(session, "web:ann")
    assert (report.conversations, report.messages, report.candidates, report.reviews, report.users) == (1, 9, 1, 3, 1)
    assert [v["id"] for v in report.model_versions] == [trained_id]
    assert (_count(store, Conversation), _count(store, Message)) == (before[0] - 1, before[1] - 9)
    assert _count(store, Review) == 0 and _count(store, ReplyCandidate) == 0
    with store.transaction(read_only=True) as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "privacy.forget")).one()
        assert entry.target == f"user:{user_id}"
        assert "ann" not in json.dumps(entry.details).lower()
    from chatbot.store.db import NotFound

    with pytest.raises(NotFound), store.transaction() as session:
        forget_customer(session, "web:ann")


def test_purge_applies_retention(store) -> None:  # type: ignore[no-untyped-def]
    _import(store, "jsonl", FIXTURES / "conversations.jsonl")
    _import(store, "taskmaster", FIXTURES / "taskmaster")
    old = datetime.now(timezone.utc) - timedelta(days=400)
    with store.transaction() as session:
        session.execute(update(Conversation).where(Conversation.source == "taskmaster").values(updated_at=old))
    with store.transaction() as session:
        report = purge_older_than(session, datetime.now(timezone.utc) - timedelta(days=365))
    # the two aged taskmaster conversations, and c-1 whose imported messages date from 2024-05-01
    assert (report.conversations, report.messages) == (3, 7)
    with store.transaction(read_only=True) as session:
        assert list(session.scalars(select(Conversation.external_id))) == ["c-2"]
        assert session.scalars(select(AuditLog.details).where(AuditLog.action == "privacy.purge")).one()["messages"] == 7
