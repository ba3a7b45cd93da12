"""Shadow testing with real tiny models: the shadowed candidate answers sampled customer messages in a
low-priority background decoder, its reply is stored beside the active one and never reaches the customer,
and a full or busy shadow queue drops work instead of holding anyone up."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from chatbot.service.models import ModelRef, load_generator
from chatbot.service.shadow import LOWEST_PRIORITY, ShadowService, ShadowWorker
from chatbot.store import conversations as repo
from chatbot.store import registry
from chatbot.store.db import AlreadyExists
from chatbot.store.models import Message, ShadowReply


def _admin(service):  # type: ignore[no-untyped-def]
    try:
        service.add_user("root", "password123", "admin")
    except AlreadyExists:  # a second service on the same store
        pass
    return service.login("root", "password123")


def _versions(service) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with service.store.transaction(read_only=True) as s:
        return {v.name: ModelRef(v.id, v.path) for v in registry.list_versions(s)}


def _shadow_replies(service) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    with service.store.transaction(read_only=True) as s:
        return [tuple(r) for r in s.execute(select(ShadowReply.message_id, ShadowReply.model_version_id,
                                                   ShadowReply.text).order_by(ShadowReply.id))]


@pytest.fixture
def shadowing(make_service):  # type: ignore[no-untyped-def]
    """``shadowing(load, **settings)`` -> (service, shadow worker) with m2 shadowing the active m1; ``load(ref,
    settings)`` replaces the shadow loader. Stopped after."""
    made: list[ShadowWorker] = []

    def make(load: Any = None, **overrides: Any):  # type: ignore[no-untyped-def]
        service = make_service(None, **{"shadow_share": 1.0, **overrides})
        ShadowService(service.store).set_shadow(_admin(service), _versions(service)["m2"].version_id)
        worker = ShadowWorker(service.store, service.settings, busy=lambda: service.worker.queued > 0,
                              load=(lambda ref: load(ref, service.settings)) if load else None, poll_s=0.05).start()
        service.shadow = worker
        made.append(worker)
        return service, worker

    yield make
    for worker in made:
        worker.stop()


def test_sampled_message_gets_a_stored_shadow_reply_the_customer_never_sees(shadowing) -> None:
    service, shadow = shadowing()  # decoder process (the default), as served
    m1, m2 = _versions(service)["m1"], _versions(service)["m2"]
    cid, _ = service.start_conversation("en")
    sent = service.send(cid, "where is my parcel please")
    assert sent.reply is not None and sent.reply.model_version_id == m1.version_id
    assert shadow.wait_idle(120)
    assert shadow.decoded == 1 and shadow.dropped == 0

    with service.store.transaction(read_only=True) as s:
        context = repo.visible_context(s, cid, service.settings.context_turns, before_seq=sent.reply.seq)
    expected = load_generator(m2, service.settings).generate([context], language="en")[0].text
    active = load_generator(m1, service.settings).generate([context], language="en")[0].text
    assert expected != active  # two different models: the test can tell whose reply is whose
    assert _shadow_replies(service) == [(sent.reply.id, m2.version_id, expected)]

    _status, visible = service.customer_messages(cid)
    assert [(m.role, m.text) for m in visible] == [("customer", "where is my parcel please"), ("bot", active)]
    with service.store.transaction(read_only=True) as s:  # no message of any kind carries the shadow text
        assert expected not in s.scalars(select(Message.text)).all()
    # the candidate decodes in a decoder process of its own at the lowest CPU priority
    pids = shadow._model[1].pids
    assert len(pids) == 1 and os.getpriority(os.PRIO_PROCESS, pids[0]) == LOWEST_PRIORITY


def test_nothing_is_shadowed_at_share_zero_or_when_the_shadowed_version_serves(shadowing) -> None:
    service, shadow = shadowing(shadow_share=0.0, decode_process=False)
    cid, _ = service.start_conversation("en")
    service.send(cid, "hello")
    assert shadow.offered == 0 and _shadow_replies(service) == []

    service, shadow = shadowing(decode_process=False)
    with service.store.transaction() as s:  # m2 promoted: it answers customers itself, nothing to shadow
        registry.promote(s, _versions(service)["m2"].version_id)
    deadline = time.monotonic() + 10
    while service.worker.model_key != _versions(service)["m2"] and time.monotonic() < deadline:
        cid, _ = service.start_conversation("en")
        service.send(cid, "hello")
        time.sleep(0.05)
    shadow.wait_idle(30)
    before = len(_shadow_replies(service))
    cid, _ = service.start_conversation("en")
    service.send(cid, "thanks")
    assert shadow.wait_idle(30)
    assert len(_shadow_replies(service)) == before  # shadowed_at was cleared by the promotion


class Held:
    """A real model whose decodes wait for ``release``: holds one shadow decode in flight."""

    def __init__(self, generator: Any) -> None:
        self.generator, self.release, self.started = generator, threading.Event(), threading.Event()

    def generate(self, contexts: Any, language: str | None = None) -> Any:
        self.started.set()
        assert self.release.wait(60)
        return self.generator.generate(contexts, language=language)


def test_a_full_shadow_queue_drops_work_and_never_delays_a_customer(shadowing) -> None:
    held: list[Held] = []

    def load(ref: ModelRef, settings: Any) -> Held:
        held.append(Held(load_generator(ref, settings)))
        return held[-1]

    service, shadow = shadowing(load=load, decode_process=False, shadow_queue_size=1)
    conversations = [service.start_conversation("en")[0] for _ in range(3)]
    first = service.send(conversations[0], "where is my order")
    deadline = time.monotonic() + 30
    while not (held and held[0].started.is_set()):  # the shadow decode of the first message is in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    second = service.send(conversations[1], "my refund please")  # queued (room for one)
    third = service.send(conversations[2], "the parcel arrived late")  # dropped: the queue is full
    assert time.monotonic() - started < 10  # customers were answered while the shadow decode was stuck
    assert third.reply is not None and (shadow.offered, shadow.dropped) == (3, 1)

    held[0].release.set()
    assert shadow.wait_idle(60)
    assert [r[0] for r in _shadow_replies(service)] == [first.reply.id, second.reply.id]


def test_busy_decoder_drops_the_sample(shadowing) -> None:
    busy = threading.Event()
    service, shadow = shadowing(decode_process=False)
    shadow.busy = busy.is_set
    busy.set()  # customers are waiting for the decoder
    cid, _ = service.start_conversation("en")
    assert service.send(cid, "hello").reply is not None
    assert shadow.wait_idle(10) and (shadow.offered, shadow.dropped, shadow.decoded) == (1, 1, 0)
    assert _shadow_replies(service) == []
