"""Service fixtures: a ChatService on the real store (SQLite and PostgreSQL) with a running worker.

``service`` and ``make_real_service`` serve with a real tiny checkpoint from the model registry (two
versions, the first active). ``ScriptedReplies`` stands in for the model behind the worker's
``Generator`` interface only where a test needs exact scores (handoff thresholds) or must hold a decode
in flight (the takeover race, a full queue): ``make_service(replies)``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from chatbot.service.batching import GenerationWorker
from chatbot.service.chat import ChatService
from chatbot.service.models import ModelRef, active_model, loader
from chatbot.settings import load_settings
from chatbot.store import registry

from . import tiny
from .scripted import ScriptedReplies
from .tiny import TINY_DECODING

tiny_models = tiny.tiny_models  # a fixture, shared with tests/web


@pytest.fixture
def replies() -> ScriptedReplies:
    return ScriptedReplies()


@pytest.fixture
def make_service(store, tmp_path, tiny_models):  # type: ignore[no-untyped-def]
    """``make_service(generator, **settings)`` -> a started ChatService; ``generator=None`` serves the
    registry's active version (the tiny ``m1``; ``m2`` is registered as a candidate). All stopped after."""
    made: list[ChatService] = []
    torch.set_num_threads(1)

    def make(generator: Any, **overrides: Any) -> ChatService:
        if generator is None:
            overrides = {**TINY_DECODING, **overrides}
        settings = load_settings(data_dir=tmp_path / "data", database_url=store.url, **overrides)
        if generator is None:
            with store.transaction() as s:
                if registry.active_version(s) is None:
                    first = registry.register(s, "m1", str(tiny_models.first))
                    registry.register(s, "m2", str(tiny_models.second))
                    registry.promote(s, first.id)
            load, key = loader(settings), (lambda: active_model(store, settings))
        else:
            load, key = (lambda ref: generator), (lambda: ModelRef(None, "scripted"))
        worker = GenerationWorker.from_settings(load, key, settings, reload_poll_s=0.05).start()
        service = ChatService(store, settings, worker)
        made.append(service)
        return service

    yield make
    for service in made:
        service.worker.stop()


@pytest.fixture
def service(make_service) -> ChatService:  # type: ignore[no-untyped-def]
    """Real tiny model, auto review mode, no low-confidence handoff (random weights are never confident)."""
    return make_service(None)


@pytest.fixture
def scripted_service(make_service, replies) -> ChatService:  # type: ignore[no-untyped-def]
    return make_service(replies)
