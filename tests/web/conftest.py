"""A real server for the web tests: ``create_app`` under uvicorn on a free 127.0.0.1 port, in a thread.

The model behind the generation worker is the scripted stand-in from the service tests, so replies are
predictable in the page; the registry holds two real tiny checkpoints (``m1`` active, ``m2`` a candidate)
that the admin page promotes and the agent console replays with, plus two nightly job reports.
Everything else (store, service, FastAPI, Gradio, HTTP) is the real thing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from service import tiny
from staff_server import serve_in_thread

from web.app import GRADIO_OFFLINE_ENV

tiny_models = tiny.tiny_models  # a fixture, shared with the service tests

os.environ.update(GRADIO_OFFLINE_ENV)


@dataclass
class LiveServer:
    url: str
    service: object
    replies: object = None  # the ScriptedReplies behind the worker (tests script candidates through it)


@pytest.fixture
def live_server(tmp_path, sqlite_url, tiny_models) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from service.scripted import ScriptedReplies
    from service.tiny import TINY_DECODING

    from chatbot.service.batching import GenerationWorker
    from chatbot.service.chat import ChatService
    from chatbot.service.models import ModelRef
    from chatbot.settings import load_settings
    from chatbot.store import jobs, registry
    from chatbot.store.manager import ConversationStore
    from web.app import create_app

    settings = load_settings(data_dir=tmp_path / "data", database_url=sqlite_url, max_message_chars=2000,
                             **{**TINY_DECODING, "grounding": True})  # scripted replies: grounding applies
    store = ConversationStore(settings)
    store.ensure_schema()
    with store.transaction() as s:  # what the admin page lists and the agent console replays with
        m1 = registry.register(s, "m1", str(tiny_models.first), metrics={"chrf": 31.5, "perplexity": 42.0})
        registry.register(s, "m2", str(tiny_models.second), metrics={"chrf": 33.25, "perplexity": 39.5})
        registry.promote(s, m1.id)
        good, _ = jobs.acquire(s, "nightly", 600)
        jobs.finish(s, good.id, "succeeded", report={"candidate": "m2", "gate": "passed"})
        bad, _ = jobs.acquire(s, "nightly", 600)
        jobs.finish(s, bad.id, "failed", error="no new reviewed conversations")
    replies = ScriptedReplies()
    worker = GenerationWorker(lambda ref: replies, lambda: ModelRef(None, "scripted"), max_wait_ms=2)
    service = ChatService(store, settings, worker)
    service.add_user("ana", "password123", "agent")
    service.add_user("root", "password123", "admin")
    app = create_app(settings, service)
    with serve_in_thread(app) as port:
        yield LiveServer(f"http://127.0.0.1:{port}", service, replies)
