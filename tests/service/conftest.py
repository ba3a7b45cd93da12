"""Service fixtures: a ChatService on the real store (SQLite and PostgreSQL) with a running worker.

``ScriptedReplies`` stands in for the model behind the worker's ``Generator`` interface only where a
test needs exact scores (handoff thresholds) or must hold a decode in flight (the takeover race);
tests that only need "a reply" from a real model use ``tiny_checkpoint``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chatbot.service.batching import GenerationWorker
from chatbot.service.chat import ChatService
from chatbot.service.models import ModelRef
from chatbot.settings import load_settings

from .scripted import ScriptedReplies


@pytest.fixture
def replies() -> ScriptedReplies:
    return ScriptedReplies()


@pytest.fixture
def make_service(store, tmp_path):  # type: ignore[no-untyped-def]
    """``make_service(generator, **settings)`` -> a started ChatService; all stopped after the test."""
    made: list[ChatService] = []

    def make(generator: Any, **overrides: Any) -> ChatService:
        settings = load_settings(data_dir=tmp_path / "data", database_url=store.url, **overrides)
        worker = GenerationWorker(lambda ref: generator, lambda: ModelRef(None, "scripted"),
                                  max_batch=settings.batch_max_size, max_wait_ms=settings.batch_max_wait_ms,
                                  queue_max=settings.queue_max_size).start()
        service = ChatService(store, settings, worker)
        made.append(service)
        return service

    yield make
    for service in made:
        service.worker.stop()


@pytest.fixture
def service(make_service, replies) -> Iterator[ChatService]:  # type: ignore[no-untyped-def]
    return make_service(replies)
