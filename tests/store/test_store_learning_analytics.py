"""Correction analytics and shadow-test figures on SQLite and PostgreSQL: conversations with known reviews
give exact rates, groupings, edit distances and shadow statistics; shadowing rules hold in the registry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from chatbot.service.analytics import AnalyticsService
from chatbot.service.auth import Forbidden
from chatbot.service.chat import ChatService
from chatbot.service.shadow import ShadowService
from chatbot.service.similarity import chrf, edit_distance
from chatbot.settings import load_settings
from chatbot.store import conversations as repo
from chatbot.store import jobs, registry
from chatbot.store import shadow as shadow_repo
from chatbot.store.db import IllegalTransition
from chatbot.store.models import Review


@pytest.fixture
def svc(store, tmp_path) -> ChatService:  # type: ignore[no-untyped-def]
    """A service without a model: replies are written straight into the store with a known version."""
    return ChatService(store, load_settings(data_dir=tmp_path / "data", database_url=store.url), None)


@pytest.fixture
def people(svc):  # type: ignore[no-untyped-def]
    svc.add_user("ana", "password123", "agent")
    svc.add_user("root", "password123", "admin")
    return svc.login("ana", "password123"), svc.login("root", "password123")


def _versions(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        m1 = registry.register(s, "m1", "/models/m1")
        m2 = registry.register(s, "m2", "/models/m2")
        m3 = registry.register(s, "m3", "/models/m3")
        registry.promote(s, m1.id)
        return {"m1": m1.id, "m2": m2.id, "m3": m3.id}


def _reply(store, version_id: int, customer: str, bot: str) -> int:  # type: ignore[no-untyped-def]
    """A conversation with one customer message and one sent bot reply; the reply's id."""
    with store.transaction() as s:
        conversation = repo.start_conversation(s, language="en")
        repo.store_message(s, conversation.id, "customer", customer)
        return repo.store_message(s, conversation.id, "bot", bot, model_version_id=version_id).id


def test_review_rates_most_corrected_and_edit_distance(store, svc, people) -> None:
    agent, admin = people
    ids = _versions(store)
    m1, m2 = ids["m1"], ids["m2"]
    reviewed = [
        (m1, "hi", "Hello! How can I help?", "approve", None),
        (m1, "hello", "Hello! How can I help?", "approve", None),
        (m1, "hours?", "We close at 5.", "edit", "We close at 6."),
        (m1, "opening hours", "We close at 5.", "reject", None),
        (m2, "when do you close", "We close at 5.", "edit", "We close at 7 pm."),
        (m2, "refund", "abc", "edit", "abd"),
    ]
    review_ids = []
    for version, customer, bot, action, corrected in reviewed:
        message_id = _reply(store, version, customer, bot)
        svc.review(agent, message_id, action, corrected)
        with store.transaction() as s:
            review_ids.append(s.scalar(select(Review.id).where(Review.message_id == message_id)))
    _reply(store, m1, "unreviewed", "Anything else?")
    # the first approval was yesterday: a day of its own
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    with store.transaction() as s:
        s.execute(update(Review).where(Review.id == review_ids[0]).values(created_at=yesterday))

    views = AnalyticsService(svc)
    today = datetime.now(timezone.utc).date().isoformat()
    rates = [(r.day, r.version, r.reviews, r.approve_rate, r.edit_rate, r.reject_rate) for r in views.review_rates(admin)]
    assert rates == [
        (yesterday.date().isoformat(), f"m1 ({m1})", 1, 1.0, 0.0, 0.0),
        (today, f"m1 ({m1})", 3, 1 / 3, 1 / 3, 1 / 3),
        (today, f"m2 ({m2})", 2, 0.0, 1.0, 0.0),
    ]

    corrected = views.most_corrected(admin)
    assert [tuple(c) for c in corrected] == [
        ("We close at 5.", 3, 2, 1, "We close at 7 pm."),  # max() of the two edits: an example, not all
        ("abc", 1, 1, 0, "abd"),
    ]

    distances = {d.version: (d.edits, d.mean_distance) for d in views.edit_distances(admin)}
    assert distances[f"m1 ({m1})"] == (1, pytest.approx(1 / 14))  # "5" -> "6" in 14 characters
    expected_m2 = (edit_distance("We close at 5.", "We close at 7 pm.") + 1 / 3) / 2
    assert distances[f"m2 ({m2})"] == (2, pytest.approx(expected_m2))

    for admin_only in (views.review_rates, views.most_corrected, views.edit_distances, views.last_nightly_learned):
        with pytest.raises(Forbidden):
            admin_only(agent)


def test_edit_distance_is_normalised_levenshtein() -> None:
    assert edit_distance("same", "same") == 0.0
    assert edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert edit_distance("", "abc") == 1.0
    assert edit_distance("abc", "xyz") == 1.0


def test_last_nightly_learned_reads_the_held_out_corrections(store, svc, people) -> None:
    _, admin = people
    views = AnalyticsService(svc)
    assert views.last_nightly_learned(admin) is None
    rows = [{"customer": "what are your hours", "agent": "9 to 5", "reply": "9 to 5", "active_reply": "hello",
             "candidate_chrf": 100.0, "active_chrf": 3.5},
            {"customer": "do you open sundays", "agent": "No, closed on Sundays.", "reply": "hello",
             "active_reply": "hello there", "candidate_chrf": 2.0, "active_chrf": 4.0}]
    with store.transaction() as s:
        old, _ = jobs.acquire(s, "nightly", 600)
        jobs.finish(s, old.id, "succeeded", report={"decision": "promoted", "candidate_id": 2,
                                                    "metrics": {"candidate": {"corrections": rows}}})
        skipped, _ = jobs.acquire(s, "nightly", 600)  # newer, but nothing was trained: passed over
        jobs.finish(s, skipped.id, "succeeded", report={"decision": "skipped"})
    learned = views.last_nightly_learned(admin)
    assert (learned.job_id, learned.decision, learned.candidate_id, learned.learned) == (old.id, "promoted", 2, 1)
    assert [(c.customer, c.learned) for c in learned.corrections] == [("what are your hours", True),
                                                                     ("do you open sundays", False)]


def test_shadow_rules_and_statistics(store, svc, people) -> None:
    agent, admin = people
    ids = _versions(store)
    m1, m2, m3 = ids["m1"], ids["m2"], ids["m3"]
    shadows = ShadowService(store)
    with pytest.raises(IllegalTransition, match="serves already"):
        shadows.set_shadow(admin, m1)
    with pytest.raises(Forbidden):
        shadows.set_shadow(agent, m2)
    assert "m2" in shadows.set_shadow(admin, m2)
    shadows.set_shadow(admin, m3)  # one at a time: m3 replaces m2
    with store.transaction() as s:
        assert shadow_repo.shadowed_version(s).id == m3
    shadows.set_shadow(admin, m2)

    cases = [  # active reply, agent action, agent's text, m2's shadow reply
        ("Hello! How can I help?", "approve", None, "Hello! How can I help?"),
        ("We open at 9.", "edit", "We open at 8 am.", "We open at 8 am."),
        ("Bye.", "reject", None, "See you."),
        ("Anything else?", None, None, "Something else?"),
    ]
    for active, action, corrected, shadow_text in cases:
        message_id = _reply(store, m1, "question", active)
        with store.transaction() as s:
            assert shadow_repo.store_shadow_reply(s, message_id, m2, shadow_text, -0.5)
            assert not shadow_repo.store_shadow_reply(s, message_id, m2, "again", -0.1)  # once per message
        if action:
            svc.review(agent, message_id, action, corrected)
    stats = {s.version_id: s for s in shadows.stats(admin)}
    assert set(stats) == {m2}
    m2_stats = stats[m2]
    assert (m2_stats.name, m2_stats.status, m2_stats.shadowing, m2_stats.shadowed, m2_stats.reviewed,
            m2_stats.corrected) == ("m2", "candidate", True, 4, 3, 2)
    assert m2_stats.approved_share == pytest.approx(1 / 3)
    assert m2_stats.candidate_chrf == pytest.approx(100.0)  # wrote exactly what the agents kept or wrote
    assert m2_stats.active_chrf == pytest.approx((100.0 + chrf("We open at 9.", "We open at 8 am.")) / 2)
    assert m2_stats.active_chrf < 90

    with store.transaction() as s:  # promoting the shadowed version ends its shadowing; the figures stay
        registry.promote(s, m2)
        assert shadow_repo.shadowed_version(s) is None
    assert [(s.version_id, s.shadowing, s.status) for s in shadows.stats(admin)] == [(m2, False, "active")]
    assert "off" in shadows.set_shadow(admin, None)
    with store.transaction() as s:
        registry.reject(s, m3, ["worse"])
    with pytest.raises(IllegalTransition, match="rejected"):
        shadows.set_shadow(admin, m3)


def test_models_shadow_command(store) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from chatbot.cli import app

    ids = _versions(store)

    def chatbot(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, ["models", "shadow", *args],
                                  env={"CHATBOT_DATABASE_URL": store.url, "CHATBOT_SHADOW_SHARE": "0.1"})

    on = chatbot(str(ids["m2"]))
    assert on.exit_code == 0 and f"model version {ids['m2']} (m2) shadows the active model on 10%" in on.output
    with store.transaction() as s:
        assert shadow_repo.shadowed_version(s).id == ids["m2"]
    refused = chatbot(str(ids["m1"]))  # the active one: a clear refusal, nothing changes
    assert refused.exit_code != 0 and "serves already" in refused.output
    assert chatbot().exit_code != 0  # neither a version nor --off
    off = chatbot("--off")
    assert off.exit_code == 0 and "shadow testing is off" in off.output
    with store.transaction() as s:
        assert shadow_repo.shadowed_version(s) is None


def test_erasing_a_customer_erases_the_shadow_replies_of_their_conversations(store) -> None:  # type: ignore[no-untyped-def]
    from chatbot.store.models import ShadowReply
    from chatbot.store.retention import forget_customer

    ids = _versions(store)
    with store.transaction() as s:
        customer = repo.create_user(s, "erin")
        conversation = repo.start_conversation(s, customer_id=customer.id, language="en")
        repo.store_message(s, conversation.id, "customer", "my name is Erin Example")
        reply = repo.store_message(s, conversation.id, "bot", "Hello!", model_version_id=ids["m1"])
        shadow_repo.store_shadow_reply(s, reply.id, ids["m2"], "Hello Erin Example!", -0.3)  # copied the name
        kept = _reply_in(s, ids)
    with store.transaction() as s:
        forget_customer(s, str(customer.id))
    with store.transaction() as s:
        assert s.scalars(select(ShadowReply.message_id)).all() == [kept]


def _reply_in(s, ids: dict[str, int]) -> int:  # type: ignore[no-untyped-def]
    """Another customer's shadowed reply, which erasure must leave alone."""
    other = repo.start_conversation(s, language="en")
    repo.store_message(s, other.id, "customer", "hi")
    message_id = repo.store_message(s, other.id, "bot", "Hi!", model_version_id=ids["m1"]).id
    shadow_repo.store_shadow_reply(s, message_id, ids["m2"], "Hello!", -0.2)
    return message_id
