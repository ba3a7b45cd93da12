"""Issue 19, items 2 and 11, against a real server on SQLite and PostgreSQL: when the active version's files
break after it was promoted, the app still starts, serves the version that served before it, and says so in
``/api/v1/healthz`` (a version name, never a path) and on ``/admin`` (with the reason)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from service.test_serving_safety import truncated_copy
from service.tiny import TINY_DECODING
from staff_server import serve_in_thread

pytestmark = pytest.mark.slow


@contextmanager
def _serve(app) -> Iterator[str]:
    with serve_in_thread(app, start_timeout_s=60) as port:
        yield f"http://127.0.0.1:{port}"


def test_a_broken_active_version_does_not_take_the_app_down(tmp_path, db_url, tiny_models):
    from chatbot.service.chat import ChatService
    from chatbot.settings import load_settings
    from chatbot.store import registry
    from chatbot.store.manager import ConversationStore
    from web.app import build_service, create_app

    settings = load_settings(data_dir=tmp_path / "data", database_url=db_url, decode_process=False,
                             access_log=False, **TINY_DECODING)
    broken_dir = truncated_copy(tiny_models.second, tmp_path / "m3")
    with ConversationStore(settings) as store, store.transaction() as s:
        registry.promote(s, registry.register(s, "m1", str(tiny_models.first)).id)
        registry.promote(s, registry.register(s, "m3", str(broken_dir)).id)  # broke after it was promoted
    service: ChatService = build_service(settings)
    service.add_user("root", "password123", "admin")
    with _serve(create_app(settings, service)) as url:
        health = httpx.get(f"{url}/api/v1/healthz", timeout=15).json()
        assert (health["status"], health["model"]) == ("degraded", "m1")
        assert health["problem"] == "model m3 could not be loaded; serving m1 instead"
        assert str(tmp_path) not in json.dumps(health)  # names only, no paths

        started = httpx.post(f"{url}/api/v1/conversations", json={"language": "en"}, timeout=15).json()
        sent = httpx.post(f"{url}/api/v1/conversations/{started['id']}/messages", json={"text": "hello"},
                          headers={"Authorization": f"Bearer {started['token']}"}, timeout=30)
        assert sent.status_code == 200 and sent.json()["reply"] is not None  # answered by m1
        with httpx.Client(base_url=url, timeout=15, headers={"Origin": url}) as admin:
            assert admin.post("/api/v1/login", json={"username": "root", "password": "password123"}).status_code == 200
            started_event = admin.post("/admin/gradio_api/call/serving", json={"data": []})
            assert started_event.status_code == 200, started_event.text
            stream = admin.get(f"/admin/gradio_api/call/serving/{started_event.json()['event_id']}").text
        assert "model m3 could not be loaded; serving m1 instead" in stream and "Reason:" in stream
