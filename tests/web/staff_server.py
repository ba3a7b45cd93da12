"""A real ``create_app`` server on SQLite or PostgreSQL for the security tests (issue 19).

Like ``conftest.live_server`` but on any database URL and with settings given by the test (throttling
limits, cookie flags); the model is the scripted stand-in, everything else is the real thing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class StaffServer:
    url: str
    port: int
    service: Any
    replies: Any
    app: Any = None  # the FastAPI app (its route table and OpenAPI schema)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app: Any, *, start_timeout_s: float = 30, log_level: str = "warning") -> Iterator[int]:
    """Serve ``app`` with a real uvicorn on a free port in a daemon thread; yields the port, stops on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def staff_server(tmp_path: Any, database_url: str, replies: Any = None, **overrides: Any) -> Iterator[StaffServer]:
    from service.scripted import ScriptedReplies

    from chatbot.service.batching import GenerationWorker
    from chatbot.service.chat import ChatService
    from chatbot.service.models import ModelRef
    from chatbot.settings import load_settings
    from chatbot.store.manager import ConversationStore
    from web.app import create_app

    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url, grounding=False,
                             handoff_min_score=-1e9, handoff_min_token_logprob=-1e9, handoff_repeats=False, access_log=False, **overrides)
    store = ConversationStore(settings)
    store.ensure_schema()
    replies = replies if replies is not None else ScriptedReplies()
    worker = GenerationWorker(lambda ref: replies, lambda: ModelRef(None, "scripted"), max_wait_ms=2)
    service = ChatService(store, settings, worker)
    service.add_user("ana", "password123", "agent")
    service.add_user("bob", "password123", "agent")
    service.add_user("root", "password123", "admin")
    app = create_app(settings, service)
    with serve_in_thread(app) as port:
        yield StaffServer(f"http://127.0.0.1:{port}", port, service, replies, app)
