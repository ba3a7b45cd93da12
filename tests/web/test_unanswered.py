"""Issue 19, item 9, over real HTTP on SQLite and PostgreSQL: a message stored while its sender was told 503
is neither stored twice on retry (``Idempotency-Key``) nor left unanswered (the recovery sweep answers it,
or hands the conversation to a person), and a 503 never shows the database's URL or host."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from service.scripted import ScriptedReplies
from staff_server import free_port, serve_in_thread, staff_server

pytestmark = pytest.mark.slow


@dataclass
class FlakyReplies(ScriptedReplies):
    """The scripted model, failing (a decoder fault) while ``failing`` is set."""

    failing: threading.Event = field(default_factory=threading.Event)

    def generate(self, contexts, language=None):  # type: ignore[no-untyped-def]
        if self.failing.is_set():
            raise RuntimeError("decoder process died")
        return super().generate(contexts, language)


def _start(url: str) -> tuple[int, dict[str, str]]:
    body = httpx.post(f"{url}/api/v1/conversations", json={}, timeout=15).json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


def _messages(url: str, cid: int, auth: dict[str, str]) -> dict:
    return httpx.get(f"{url}/api/v1/conversations/{cid}/messages", headers=auth, timeout=15).json()


def test_a_retry_with_the_same_key_stores_nothing_twice(tmp_path, db_url):
    replies = FlakyReplies()
    with staff_server(tmp_path, db_url, replies=replies) as live:
        cid, auth = _start(live.url)
        url = f"{live.url}/api/v1/conversations/{cid}/messages"
        first = httpx.post(url, json={"text": "where is my parcel?"}, headers={**auth, "Idempotency-Key": "k-1"},
                           timeout=15)
        assert first.status_code == 200
        again = httpx.post(url, json={"text": "where is my parcel?"}, headers={**auth, "Idempotency-Key": "k-1"},
                           timeout=15)
        assert again.status_code == 200 and again.json() == first.json()  # the original result, ids and all

        replies.failing.set()  # stored, then the decoder fails: the sender is told 503 (Retry-After)
        failed = httpx.post(url, json={"text": "and my refund?", "client_message_id": "k-2"}, headers=auth,
                            timeout=15)
        assert failed.status_code == 503 and failed.headers["Retry-After"]
        replies.failing.clear()
        retried = httpx.post(url, json={"text": "and my refund?", "client_message_id": "k-2"}, headers=auth,
                             timeout=15)
        assert retried.status_code == 200 and retried.json()["reply"]["text"] == "re: and my refund?"
        twice = httpx.post(url, json={"text": "and my refund?"}, headers={**auth, "Idempotency-Key": "k-2"}, timeout=15)
        assert twice.json()["reply"]["id"] == retried.json()["reply"]["id"]
        texts = [(m["role"], m["text"]) for m in _messages(live.url, cid, auth)["messages"]]
        assert texts == [("customer", "where is my parcel?"), ("bot", "re: where is my parcel?"),
                         ("customer", "and my refund?"), ("bot", "re: and my refund?")]

        reused = httpx.post(url, json={"text": "something else"}, headers={**auth, "Idempotency-Key": "k-1"},
                            timeout=15)
        assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["error"]
        bad = httpx.post(url, json={"text": "x"}, headers={**auth, "Idempotency-Key": "a b"}, timeout=15)
        assert bad.status_code == 422
        assert len(_messages(live.url, cid, auth)["messages"]) == 4


def test_concurrent_retries_store_one_message(tmp_path, db_url):
    with staff_server(tmp_path, db_url) as live:
        cid, auth = _start(live.url)
        url = f"{live.url}/api/v1/conversations/{cid}/messages"
        results: list[httpx.Response] = []

        def post() -> None:
            results.append(httpx.post(url, json={"text": "hello"}, headers={**auth, "Idempotency-Key": "same"},
                                      timeout=30))

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200] * 6
        assert len({r.json()["message"]["id"] for r in results}) == 1
        roles = [m["role"] for m in _messages(live.url, cid, auth)["messages"]]
        assert roles == ["customer", "bot"]


def test_the_sweep_answers_what_a_fault_left_unanswered(tmp_path, db_url):
    replies = FlakyReplies()
    with staff_server(tmp_path, db_url, replies=replies, unanswered_grace_s=0.5, unanswered_sweep_s=0.3) as live:
        cid, auth = _start(live.url)
        replies.failing.set()
        sent = httpx.post(f"{live.url}/api/v1/conversations/{cid}/messages", json={"text": "is anyone there?"},
                          headers=auth, timeout=15)
        assert sent.status_code == 503  # stored, no answer: the sender is not retrying
        replies.failing.clear()
        deadline = time.monotonic() + 15
        while [m["role"] for m in _messages(live.url, cid, auth)["messages"]] != ["customer", "bot"]:
            assert time.monotonic() < deadline, _messages(live.url, cid, auth)
            time.sleep(0.2)
        time.sleep(1.0)  # later sweeps leave it alone: answered once
        assert len(_messages(live.url, cid, auth)["messages"]) == 2


def test_the_sweep_hands_to_a_person_when_the_bot_cannot_answer(tmp_path, db_url):
    replies = FlakyReplies()
    replies.failing.set()
    with staff_server(tmp_path, db_url, replies=replies, unanswered_grace_s=0.5, unanswered_sweep_s=0.3) as live:
        cid, auth = _start(live.url)
        assert httpx.post(f"{live.url}/api/v1/conversations/{cid}/messages", json={"text": "hello?"},
                          headers=auth, timeout=15).status_code == 503
        deadline = time.monotonic() + 15
        while _messages(live.url, cid, auth)["status"] != "pending":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        shown = _messages(live.url, cid, auth)["messages"]
        assert [m["role"] for m in shown] == ["customer", "system"] and "person" in shown[1]["text"]


def test_a_restart_answers_what_the_last_run_left(tmp_path, db_url):
    from chatbot.settings import load_settings
    from tests.shortcuts import ShortcutStore

    store = ShortcutStore(load_settings(data_dir=tmp_path / "data", database_url=db_url))
    store.ensure_schema()
    # What a crash between the two writes leaves: the customer's message, stored, and nothing after it.
    conversation = store.start_conversation(language="en", channel="api")
    store.append_message(conversation.id, "customer", "did you get my order?")
    store.close()
    time.sleep(0.6)
    with staff_server(tmp_path, db_url, unanswered_grace_s=0.5, unanswered_sweep_s=60) as live:
        deadline = time.monotonic() + 15
        while True:
            _, rows = live.service.customer_messages(conversation.id)
            if [m.role for m in rows] == ["customer", "bot"]:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)


def test_a_503_does_not_show_the_database_to_anonymous_clients(tmp_path):
    from service.scripted import ScriptedReplies

    from chatbot.service.batching import GenerationWorker
    from chatbot.service.chat import ChatService
    from chatbot.service.models import ModelRef
    from chatbot.settings import load_settings
    from chatbot.store.manager import ConversationStore
    from web.app import create_app

    dead_port = free_port()  # nothing listens there: the database is "down"
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{dead_port}/chatbot_prod"
    settings = load_settings(data_dir=tmp_path / "data", database_url=url, db_connect_timeout_s=1,
                             unanswered_sweep_s=60)
    replies = ScriptedReplies()
    worker = GenerationWorker(lambda ref: replies, lambda: ModelRef(None, "scripted"), max_wait_ms=2)
    app = create_app(settings, ChatService(ConversationStore(settings), settings, worker))
    with serve_in_thread(app, log_level="critical") as port:
        for method, path in (("POST", "/api/v1/conversations"), ("GET", "/api/v1/healthz"),
                             ("POST", "/api/v1/conversations/1/messages")):
            response = httpx.request(method, f"http://127.0.0.1:{port}{path}", json={"text": "hi"},
                                     headers={"Authorization": "Bearer x"}, timeout=30)
            assert response.status_code == 503, (path, response.text)
            for secret in (str(dead_port), "127.0.0.1", "chatbot_prod", "postgres", "hunter2"):
                assert secret not in response.text, (path, response.text)
            assert "temporarily unavailable" in response.json()["error"]
