"""The whole path with real (tiny, random-weight) checkpoints: registry -> worker -> ReplyGenerator -> store,
hot reload on promotion, and replay of past replies with another version or other decoding settings."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from chatbot.service.chat import ReplayService
from chatbot.service.generator import ReplyGenerator
from chatbot.store import registry
from chatbot.store.db import NotFound
from chatbot.store.models import Message, ReplyCandidate

pytestmark = pytest.mark.slow


def _versions(service) -> dict[str, int]:
    with service.store.transaction(read_only=True) as s:
        return {v.name: v.id for v in registry.list_versions(s)}


def _agent(service):
    service.add_user("ana", "password123", "agent")
    return service.login("ana", "password123")


def _counts(service) -> tuple[int, int]:
    with service.store.transaction(read_only=True) as s:
        return s.scalar(select(func.count(Message.id))), s.scalar(select(func.count(ReplyCandidate.id)))


def test_hot_reload_from_the_registry(service):
    versions = _versions(service)
    cid, _ = service.start_conversation("en")
    assert service.send(cid, "hello where is my order").reply.model_version_id == versions["m1"]
    with service.store.transaction() as s:
        registry.promote(s, versions["m2"])
    deadline = time.monotonic() + 10
    while getattr(service.worker.model_key, "version_id", None) != versions["m2"] and time.monotonic() < deadline:
        service.send(cid, "thanks")  # keep traffic flowing while the new model loads
    assert service.send(cid, "refund please").reply.model_version_id == versions["m2"]


def test_replay_shows_another_version_and_sends_nothing(service, tiny_models):
    versions = _versions(service)
    who = _agent(service)
    replays = ReplayService(service)
    cid, _ = service.start_conversation("en")
    service.send(cid, "hello")
    sent = service.send(cid, "where is my parcel").reply
    before_counts, before_visible = _counts(service), service.customer_messages(cid)

    same = replays.replay(who, sent.id)  # active model, serving settings: what the customer got
    assert same.text == sent.text
    assert same.candidates[0].text == sent.text

    other = replays.replay(who, sent.id, versions["m2"])
    context = [("customer", "hello"), ("bot", service.customer_messages(cid)[1][1].text),
               ("customer", "where is my parcel")]
    direct = ReplyGenerator.from_checkpoint(tiny_models.second, settings=service.settings).generate(
        [context], language="en")[0]
    assert (other.text, [c.text for c in other.candidates]) == (direct.text, [c.text for c in direct.candidates])

    greedy = replays.replay(who, sent.id, versions["m2"], num_beams=1)
    assert greedy.decoding["num_beams"] == 1 and len(greedy.candidates) == 1

    assert _counts(service) == before_counts  # nothing stored ...
    assert service.customer_messages(cid) == before_visible  # ... and nothing sent


def test_replay_refuses_what_is_not_a_bot_reply(service):
    who = _agent(service)
    cid, _ = service.start_conversation("en")
    mine = service.send(cid, "hello").message
    with pytest.raises(NotFound):
        ReplayService(service).replay(who, mine.id)
    with pytest.raises(NotFound):
        ReplayService(service).replay(who, 10_000)
