"""Issue 19, "Prove: secrets": after a scripted session against a real ``chatbot serve`` (tiny model, SQLite and
PostgreSQL) no password, session cookie, conversation token, signing key or unredacted card number appears in
the server's output (stdout and stderr, access log on), the files ``chatbot export pairs`` writes, the error
answers clients got, the audit log, or anywhere else in the database.

The session: users added with the CLI, a failed login, staff logins (JSON and form), customers writing a card
number and an e-mail address over the REST API and the customer page, an agent taking over, replying and
reviewing, bad requests that get error answers, an export of training pairs, and logouts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from staff_server import free_port
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

PASSWORD = "Correct-Horse-7351"
WRONG_PASSWORD = "Wrong-Battery-9917"
SECRET_KEY = "signing-key-c0ffee-31337-do-not-log"
CARD = "4111 1111 1111 1111"
CARD_FORMS = (CARD, "4111111111111111", "4111-1111-1111-1111")
EMAIL = "jane.doe@example.com"
SETTINGS = {"CHATBOT_QUANTIZE_INT8": "false", "CHATBOT_NUM_BEAMS": "2", "CHATBOT_NUM_RETURN_SEQUENCES": "2",
            "CHATBOT_MAX_NEW_TOKENS": "6", "CHATBOT_HANDOFF_MIN_SCORE": "-1e9",
            "CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB": "-1e9", "CHATBOT_HANDOFF_REPEATS": "false",
            "CHATBOT_TORCH_THREADS": "1",
            "CHATBOT_GROUNDING": "false", "CHATBOT_SECRET_KEY": SECRET_KEY, "CHATBOT_ACCESS_LOG": "true"}


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    return {**clean, **SETTINGS, "CHATBOT_DATABASE_URL": database_url, "CHATBOT_DATA_DIR": str(data_dir)}


class Server:
    """``chatbot serve`` in a subprocess, its stdout and stderr kept in one file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-c", "from chatbot.cli import main; main()", "serve",
                                      "--port", str(self.port)], env=env, stdout=log.open("w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, f"server exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"server did not come up: {log.read_text()[-2000:]}"
            try:
                if httpx.get(self.url + "/api/v1/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def served(db_url, tmp_path, tiny_models) -> Iterator[tuple[Server, dict[str, str]]]:
    from chatbot.cli import app
    from chatbot.store import registry
    from chatbot.store.manager import ConversationStore

    store = ConversationStore(db_url)
    store.ensure_schema()
    with store.transaction() as s:
        registry.promote(s, registry.register(s, "m1", str(tiny_models.first)).id)
    store.close()
    env = _env(db_url, tmp_path / "data")
    for name, role in (("ana", "agent"), ("root", "admin")):
        added = CliRunner().invoke(app, ["users", "add", name, "--role", role, "--password", PASSWORD], env=env)
        assert added.exit_code == 0, added.output
        assert PASSWORD not in added.output
    server = Server(env, tmp_path / "serve.log")
    try:
        yield server, env
    finally:
        server.stop()


def _gradio_send(client: httpx.Client, words: str) -> dict:
    """The customer page's send event, as the browser makes it: its answer holds the page's saved state."""
    started = client.post("/gradio_api/call/send", json={"data": [words, {"id": None, "token": None}, "en"]})
    assert started.status_code == 200, started.text
    stream = client.get(f"/gradio_api/call/send/{started.json()['event_id']}")
    data = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: ")]
    assert data and isinstance(data[-1], list), stream.text
    return data[-1][3]  # (chat, ids, status, saved, box): saved is {"id", "token"}


def test_no_secret_in_logs_exports_error_answers_or_the_store(served, db_url, tmp_path):
    server, env = served
    secrets: dict[str, str] = {"password": PASSWORD, "wrong password": WRONG_PASSWORD, "signing key": SECRET_KEY}
    answers: list[str] = []  # every error answer a client got

    def keep(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            answers.append(f"{response.request.method} {response.request.url.path} {response.status_code} "
                           f"{dict(response.headers)} {response.text}")
        return response

    own = {"Origin": server.url}
    with httpx.Client(base_url=server.url, timeout=60, headers=own) as agent, \
            httpx.Client(base_url=server.url, timeout=60) as customer:
        # a failed login (the attempted password is a secret too), then real ones
        assert keep(agent.post("/api/v1/login", json={"username": "ana", "password": WRONG_PASSWORD})).status_code == 401
        assert keep(agent.post("/login", data={"username": "root", "password": WRONG_PASSWORD})).status_code == 401
        assert agent.post("/api/v1/login", json={"username": "ana", "password": PASSWORD}).status_code == 200
        secrets["agent cookie"] = agent.cookies["chatbot_session"]
        with httpx.Client(base_url=server.url, timeout=60, headers=own) as admin:
            form = admin.post("/login", data={"username": "root", "password": PASSWORD, "next": "/admin/"})
            assert form.status_code == 303
            secrets["admin cookie"] = admin.cookies["chatbot_session"]
            assert admin.get("/admin/").status_code == 200
            assert admin.post("/logout").status_code == 303

        # customers write a card number and an e-mail address, over the API and the page
        started = customer.post("/api/v1/conversations", json={"language": "en"}).json()
        cid, secrets["conversation token"] = started["id"], started["token"]
        auth = {"Authorization": f"Bearer {started['token']}"}
        for words in (f"my card is {CARD}, mail me at {EMAIL}", f"again: {CARD_FORMS[1]} or {CARD_FORMS[2]}"):
            sent = customer.post(f"/api/v1/conversations/{cid}/messages", json={"text": words}, headers=auth)
            assert sent.status_code == 200, sent.text
        saved = _gradio_send(customer, f"card {CARD} please refund")
        secrets["page conversation token"] = saved["token"]

        # error answers: wrong tokens, unknown ids, bad bodies quoting the card, a card in a header
        keep(customer.get(f"/api/v1/conversations/{cid}/messages",
                          headers={"Authorization": f"Bearer {secrets['page conversation token']}"}))
        keep(customer.post(f"/api/v1/conversations/{cid}/messages", json={"text": CARD},
                           headers={"Authorization": f"Bearer {CARD_FORMS[1]}"}))
        keep(customer.post("/api/v1/conversations", json={"language": CARD}))
        keep(customer.post(f"/api/v1/conversations/{cid}/messages", json={"text": CARD, "client_message_id": CARD * 9},
                           headers=auth))
        keep(customer.post(f"/api/v1/conversations/{cid}/messages", content=f'{{"text": "{CARD}"',
                           headers={**auth, "content-type": "application/json"}))
        keep(customer.post(f"/api/v1/conversations/{cid}/messages", json={"text": "x"},
                           headers={**auth, "Idempotency-Key": f"{CARD} {PASSWORD}"}))
        keep(customer.get(f"/api/v1/conversations/{2**40}/messages", headers=auth))
        keep(agent.get(f"/api/v1/agent/conversations/{cid}", cookies={"chatbot_session": secrets["admin cookie"]}))

        # the agent takes over, reviews the bot's replies, replies (with the card), hands back
        base = f"/api/v1/agent/conversations/{cid}"
        assert agent.post(f"{base}/take-over").status_code == 200
        transcript = agent.get(base).json()
        assert not any(form in json.dumps(transcript) for form in CARD_FORMS), "the store kept a card number"
        bots = [m["id"] for m in transcript["messages"] if m["role"] == "bot"]
        assert agent.post(f"/api/v1/agent/messages/{bots[0]}/review",
                          json={"action": "edit", "text": f"refunded to card {CARD}"}).status_code == 200
        assert agent.post(f"/api/v1/agent/messages/{bots[1]}/review", json={"action": "approve"}).status_code == 200
        assert agent.post(f"{base}/messages", json={"text": f"I see the card {CARD}; refund on its way"}).status_code == 200
        assert agent.post(f"{base}/hand-back").status_code == 200
        keep(agent.post(f"{base}/close", headers={"Origin": "http://evil.example"}))
        assert agent.post("/api/v1/logout").status_code == 200
        keep(agent.get("/api/v1/queue"))  # the logged-out cookie: 401

    # exports, with and without redaction of PII (card numbers are masked on the way into the store)
    from chatbot.cli import app

    exports = tmp_path / "exports"
    for name, flags in (("pairs.jsonl", []), ("raw.jsonl", ["--no-redact"])):
        done = CliRunner().invoke(app, ["export", "pairs", str(exports / name), *flags], env=env)
        assert done.exit_code == 0, done.output
        answers.append(done.output)
    files = {p.name: p.read_text() for p in exports.iterdir()}
    assert "refunded to card" in files["pairs.jsonl"]  # the export did hold the session's words

    from itsdangerous import URLSafeTimedSerializer

    signer = URLSafeTimedSerializer(SECRET_KEY, salt="chatbot-staff-session")
    for who in ("agent", "admin"):  # the random token inside each cookie: the store keeps only its hash
        secrets[f"{who} session token"] = signer.loads(secrets[f"{who} cookie"])

    server.stop()
    log = server.log.read_text()
    assert "POST /api/v1/login" in log and "GET /api/v1/queue" in log  # the access log was on

    store_text = _every_row(db_url)
    audit_text = _every_row(db_url, only="audit_log")
    assert "login" in audit_text  # logins are audited: the audit log is not empty

    places = {"server output": log, "error answers": "\n".join(answers), "audit log": audit_text,
              "database": store_text, **{f"export {n}": t for n, t in files.items()}}
    leaks = [f"{what} in {where}" for where, haystack in places.items()
             for what, value in {**secrets, **{f"card {i}": c for i, c in enumerate(CARD_FORMS)}}.items()
             if value in haystack]
    assert not leaks, "\n".join(leaks)
    assert EMAIL not in files["pairs.jsonl"]  # redacted by default in exports


def _every_row(url: str, only: str | None = None) -> str:
    """Every table's rows as text (or one table's)."""
    from chatbot.store.db import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            tables = [only] if only else sa_inspect(conn).get_table_names()
            return "\n".join(f"{t}: {row}" for t in tables
                             for row in conn.execute(text(f'SELECT * FROM "{t}"')).all())
    finally:
        engine.dispose()
