"""`chatbot demo`: first-run setup on a fresh SQLite database, idempotence, port conflicts, a live server."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from chatbot.demo_data import DEMO_CONVERSATIONS, DEMO_SOURCE
from chatbot.service.chat import ChatService
from chatbot.settings import load_settings
from chatbot.store import registry
from chatbot.store.manager import ConversationStore
from chatbot.store.models import Conversation, Message, ModelVersion, User

from .conftest import subprocess_env


def _counts(settings) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with ConversationStore(settings) as store, store.transaction(read_only=True) as s:
        return {
            "versions": s.scalar(select(func.count()).select_from(ModelVersion)),
            "staff": s.scalar(select(func.count()).select_from(User).where(User.role.in_(("agent", "admin")))),
            "demo_conversations": s.scalar(select(func.count()).select_from(Conversation)
                                           .where(Conversation.source == DEMO_SOURCE)),
            "messages": s.scalar(select(func.count()).select_from(Message)),
        }


def test_demo_twice_sets_up_once_and_changes_nothing_the_second_time(cli, env):
    settings = load_settings(data_dir=env["CHATBOT_DATA_DIR"])
    first = cli("demo", "--no-serve")
    assert first.exit_code == 0, first.output
    logins = dict(re.findall(r"login:\s+(demo-\w+) / (\S+)", first.stdout))
    assert set(logins) == {"demo-agent", "demo-admin"}
    assert "registered and activated" in first.stdout
    after_first = _counts(settings)
    assert after_first["versions"] == 1 and after_first["staff"] == 2
    assert after_first["demo_conversations"] == len(DEMO_CONVERSATIONS)

    second = cli("demo", "--no-serve")
    assert second.exit_code == 0, second.output
    assert " / " not in second.stdout  # passwords are shown once, at creation
    assert "0 example conversations added" in second.stdout
    assert _counts(settings) == after_first

    with ConversationStore(settings) as store:
        service = ChatService(store, settings, worker=None)
        assert service.login("demo-agent", logins["demo-agent"]).role == "agent"
        assert service.login("demo-admin", logins["demo-admin"]).role == "admin"
        with store.transaction(read_only=True) as s:
            active = registry.active_version(s)
            assert active is not None and active.name.startswith("shipped-demo-")
            assert Path(active.path, "model.safetensors").is_file()
            statuses = dict(s.execute(select(Conversation.external_id, Conversation.status)
                                      .where(Conversation.source == DEMO_SOURCE)).all())
    assert statuses == {d.external_id: d.status for d in DEMO_CONVERSATIONS}
    assert service.queue(service.login("demo-agent", logins["demo-agent"]), ["pending"])  # something to pick up


def test_an_active_model_stays_active_and_settings_password_is_used(cli, env, tiny_model):
    env["CHATBOT_DEMO_PASSWORD"] = "correct horse battery"
    settings = load_settings(data_dir=env["CHATBOT_DATA_DIR"])
    with ConversationStore(settings) as store, store.transaction() as s:
        tiny_id = registry.promote(s, registry.register(s, "tiny", str(tiny_model)).id).id
    result = cli("demo", "--no-serve")
    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.stdout
    assert "password from settings.demo_password" in result.stdout
    with ConversationStore(settings) as store:
        with store.transaction(read_only=True) as s:
            assert registry.active_version(s).id == tiny_id
            assert len(registry.list_versions(s)) == 1
        assert ChatService(store, settings, worker=None).login("demo-admin", "correct horse battery").role == "admin"


def test_a_taken_port_is_a_clear_error_and_touches_nothing(cli, env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("demo", "--port", str(port))
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr and "--port" in result.stderr
    assert not Path(env["CHATBOT_DATA_DIR"], "chatbot.db").exists()


@pytest.mark.slow
def test_demo_serves_the_customer_chat_from_any_directory(env, tiny_model, tmp_path):
    settings = load_settings(data_dir=env["CHATBOT_DATA_DIR"])
    with ConversationStore(settings) as store, store.transaction() as s:  # a known model: replies are exact
        registry.promote(s, registry.register(s, "tiny", str(tiny_model)).id)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env["CHATBOT_HANDOFF_MIN_SCORE"] = env["CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB"] = "-1000"  # about serving, not hand-off
    env["CHATBOT_HANDOFF_REPEATS"] = "false"
    chatbot = str(Path(sys.executable).parent / "chatbot")
    proc = subprocess.Popen([chatbot, "demo", "--port", "0"], cwd=cwd, env=subprocess_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while len(urls) < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                pytest.fail(f"chatbot demo exited early: {proc.wait()} {proc.stderr.read()}")  # type: ignore[union-attr]
            if m := re.match(r"(customer chat|agent console|admin):\s+(\S+)", line):
                urls[m.group(1)] = m.group(2)
        base = urls["customer chat"].rstrip("/")
        assert urls["agent console"] == f"{base}/agent" and urls["admin"] == f"{base}/admin"
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(100):  # the socket listens before the app has started
                try:
                    health = http.get("/api/v1/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert health.status_code == 200
            assert http.get("/").status_code == 200
            assert http.get("/agent", follow_redirects=False).headers["location"].startswith("/login")
            started = http.post("/api/v1/conversations", json={"language": "en"}).json()
            auth = {"Authorization": f"Bearer {started['token']}"}
            sent = http.post(f"/api/v1/conversations/{started['id']}/messages", json={"text": "where is my order"},
                             headers=auth)
            assert sent.status_code == 200, sent.text
            assert sent.json()["reply"]["text"] == "it ships today."
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_shipped_version_follows_the_package_when_the_checkout_moved(cli, env):
    assert cli("demo", "--no-serve").exit_code == 0
    settings = load_settings(data_dir=env["CHATBOT_DATA_DIR"])
    with ConversationStore(settings) as store:
        with store.transaction() as s:
            registry.active_version(s).path = "/old/checkout/chatbot/shipped/demo"
        assert cli("demo", "--no-serve").exit_code == 0
        with store.transaction(read_only=True) as s:
            assert Path(registry.active_version(s).path, "model.safetensors").is_file()
