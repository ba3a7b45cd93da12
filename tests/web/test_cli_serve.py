"""``chatbot users add`` and ``chatbot serve``: real commands, and two real replicas on one PostgreSQL.

The replicas are separate ``chatbot serve`` processes on their own ports sharing one fresh database and
one data directory (hence one session key): a conversation started on one continues on the other, and
an agent signed in on one acts on the other.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chatbot.cli import app
from chatbot.store import registry
from chatbot.store.manager import ConversationStore

pytestmark = pytest.mark.slow
SERVE = [sys.executable, "-c", "from chatbot.cli import main; main()", "serve"]
# The tiny model with short beams, one torch thread per replica, no low-confidence or grounding handoff.
REPLICA_SETTINGS = {"CHATBOT_QUANTIZE_INT8": "false", "CHATBOT_NUM_BEAMS": "2", "CHATBOT_NUM_RETURN_SEQUENCES": "2",
                    "CHATBOT_MAX_NEW_TOKENS": "6", "CHATBOT_HANDOFF_MIN_SCORE": "-1e9",
                    "CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB": "-1e9", "CHATBOT_HANDOFF_REPEATS": "false",
                    "CHATBOT_TORCH_THREADS": "1",
                    "CHATBOT_GROUNDING": "false"}


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    return {**clean, **REPLICA_SETTINGS, "CHATBOT_DATABASE_URL": database_url, "CHATBOT_DATA_DIR": str(data_dir)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_users_add(sqlite_url, tmp_path):
    runner = CliRunner()
    env = _env(sqlite_url, tmp_path / "data")
    ok = runner.invoke(app, ["users", "add", "ana", "--role", "agent", "--password", "password123", "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"id": json.loads(ok.stdout)["id"], "username": "ana", "role": "agent"}
    prompted = runner.invoke(app, ["users", "add", "root", "--role", "admin"], env=env,
                             input="long enough pw\nlong enough pw\n")
    assert prompted.exit_code == 0 and "created admin 'root'" in prompted.stdout
    assert "long enough pw" not in prompted.stdout  # hidden input is not echoed

    for args, message in ((["ana", "--role", "agent", "--password", "password123"], "ana"),
                          (["bob", "--role", "owner", "--password", "password123"], "agent or admin"),
                          (["bob", "--role", "agent", "--password", "short"], "at least 8")):
        refused = runner.invoke(app, ["users", "add", *args], env=env)
        assert refused.exit_code == 1 and refused.stderr.startswith("error:") and message in refused.stderr

    from chatbot.service.chat import ChatService
    from chatbot.settings import load_settings

    store = ConversationStore(sqlite_url)
    try:
        service = ChatService(store, load_settings(data_dir=tmp_path / "data"), worker=None)
        assert service.login("root", "long enough pw").role == "admin"
        assert service.login("ana", "password123").role == "agent"
    finally:
        store.close()


def test_users_password_role_and_remove_end_sessions(db_url, tmp_path):
    """The operator's account commands (issue 19, item 4): each one ends the account's open sessions on the
    server, on SQLite and PostgreSQL; unknown names and roles are one clear error line."""
    from chatbot.service.auth import AuthError
    from chatbot.service.chat import ChatService
    from chatbot.settings import load_settings

    runner = CliRunner()
    env = _env(db_url, tmp_path / "data")
    for name, role in (("ana", "agent"), ("root", "admin"), ("bob", "agent")):
        added = runner.invoke(app, ["users", "add", name, "--role", role, "--password", "password123"], env=env)
        assert added.exit_code == 0, added.output
    store = ConversationStore(db_url)
    try:
        staff = ChatService(store, load_settings(data_dir=tmp_path / "data"), worker=None).staff
        cookies = {name: staff.sign_in(name, "password123").cookie for name in ("ana", "root", "bob")}
        assert staff.principal(cookies["root"]).role == "admin"

        changed = runner.invoke(app, ["users", "password", "ana", "--json"], env=env,
                                input="a new password 9\na new password 9\n")
        assert changed.exit_code == 0, changed.output
        assert json.loads(changed.stdout[changed.stdout.index("{"):]) == {"username": "ana", "sessions_ended": 1}
        assert "a new password 9" not in changed.stdout
        with pytest.raises(AuthError):
            staff.principal(cookies["ana"])
        assert staff.login("ana", "a new password 9").username == "ana"
        with pytest.raises(AuthError):
            staff.login("ana", "password123")

        demoted = runner.invoke(app, ["users", "role", "root", "agent"], env=env)
        assert demoted.exit_code == 0 and "'root' is now agent; 1 session(s) ended" in demoted.stdout
        with pytest.raises(AuthError):
            staff.principal(cookies["root"])
        assert staff.login("root", "password123").role == "agent"

        assert staff.principal(cookies["bob"]).username == "bob"
        kept = runner.invoke(app, ["users", "remove", "bob"], env=env, input="n\n")
        assert kept.exit_code != 0 and staff.principal(cookies["bob"]).username == "bob"  # not confirmed
        removed = runner.invoke(app, ["users", "remove", "bob", "--yes"], env=env)
        assert removed.exit_code == 0 and "removed 'bob'" in removed.stdout
        with pytest.raises(AuthError):
            staff.principal(cookies["bob"])
        with pytest.raises(AuthError):
            staff.login("bob", "password123")

        for args, message in ((["password", "nobody", "--password", "password123"], "nobody"),
                              (["role", "ana", "owner"], "owner"),
                              (["remove", "nobody", "--yes"], "nobody")):
            refused = runner.invoke(app, ["users", *args], env=env)
            assert refused.exit_code == 1 and refused.stderr.startswith("error:") and message in refused.stderr, \
                refused.output
        assert staff.login("ana", "a new password 9").role == "agent"  # a refused call changed nothing
    finally:
        store.close()


def test_serve_help_and_a_clear_error_when_the_database_is_unreachable(tmp_path):
    shown = CliRunner().invoke(app, ["serve", "--help"])
    assert shown.exit_code == 0 and "/agent" in shown.stdout and "--port" in shown.stdout
    bad = subprocess.run([*SERVE, "--port", str(_free_port())], check=False, capture_output=True, text=True,
                         timeout=120,
                         env=_env("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", tmp_path / "data"))
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("error: cannot start:")


class Replica:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen([*SERVE, "--port", str(self.port)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=log.open("w"))

    def wait_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"replica exited: {self.log.read_text()[-2000:]}"
            try:
                response = httpx.get(self.url + "/api/v1/healthz", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"replica on {self.port} did not come up: {self.log.read_text()[-2000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@pytest.fixture
def replicas(postgresql_url, tmp_path, tiny_models) -> Iterator[tuple[Replica, Replica]]:
    store = ConversationStore(postgresql_url)
    store.ensure_schema()
    with store.transaction() as s:
        registry.promote(s, registry.register(s, "m1", str(tiny_models.first)).id)
    store.close()
    env = _env(postgresql_url, tmp_path / "data")
    assert CliRunner().invoke(app, ["users", "add", "ana", "--role", "agent", "--password", "password123"],
                              env=env).exit_code == 0
    pair = (Replica(env, tmp_path / "a.log"), Replica(env, tmp_path / "b.log"))
    try:
        yield pair
    finally:
        codes = [replica.stop() for replica in pair]
        # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status
        assert codes == [-signal.SIGTERM] * 2
        assert all("Application shutdown complete" in replica.log.read_text() for replica in pair)


def test_a_conversation_continues_on_another_replica(replicas):
    a, b = replicas
    for replica in (a, b):
        health = replica.wait_ready()
        assert (health["model"], health["status"], health["problem"]) == ("m1", "ok", None)  # a name, never a path
    with httpx.Client(base_url=a.url, timeout=30) as on_a, httpx.Client(base_url=b.url, timeout=30) as on_b:
        started = on_a.post("/api/v1/conversations", json={"language": "en"}).json()
        url = f"/api/v1/conversations/{started['id']}/messages"
        auth = {"Authorization": f"Bearer {started['token']}"}
        first = on_a.post(url, json={"text": "hello where is my order"}, headers=auth)
        second = on_b.post(url, json={"text": "my parcel arrived late"}, headers=auth)
        assert first.status_code == second.status_code == 200
        assert first.json()["reply"] is not None and second.json()["reply"] is not None
        listed = [(m["role"], m["text"]) for m in on_b.get(url, headers=auth).json()["messages"]]
        assert listed == [("customer", "hello where is my order"), ("bot", first.json()["reply"]["text"]),
                          ("customer", "my parcel arrived late"), ("bot", second.json()["reply"]["text"])]
        assert on_a.get(url, headers=auth).json()["messages"] == on_b.get(url, headers=auth).json()["messages"]

        # an agent signs in on A; B accepts the session (shared key) and the takeover holds on A
        assert on_a.post("/api/v1/login", json={"username": "ana", "password": "password123"}).status_code == 200
        on_b.cookies.update(on_a.cookies)
        assert started["id"] in [c["id"] for c in on_b.get("/api/v1/queue").json()]
        taken = on_b.post(f"/api/v1/agent/conversations/{started['id']}/take-over")
        assert taken.status_code == 200 and taken.json()["status"] == "human"
        quiet = on_a.post(url, json={"text": "hello?"}, headers=auth).json()
        assert quiet["status"] == "human" and quiet["reply"] is None
