"""Faults while customers chat (issue 19): the database stops and restarts, a decoder process and then the
whole server are killed with ``kill -9`` mid-burst.

Customers keep sending; each message carries its own ``Idempotency-Key`` and is retried with it (same key,
same text) until it is acknowledged, as a client should. Afterwards, read back from the store: every
acknowledged message is stored exactly once, in its customer's order, and every customer message has an
answer (the bot's, or a hand-off to a person) - the unanswered sweep finishes what a fault interrupted.
Recovery is the app's own: the database fault heals without restarting the server.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from staff_server import staff_server
from throwaway_pg import throwaway_postgresql

pytestmark = pytest.mark.slow
TEXTS = ["hello where is my order", "my parcel arrived late", "refund please", "thanks"]


@dataclass
class Target:
    url: str  # changes when the server is replaced


@dataclass
class Customer:
    target: Target
    index: int
    cid: int = 0
    token: str = ""
    acked: list[str] = field(default_factory=list)  # keys, in the order the customer got them acknowledged
    statuses: dict[int | str, int] = field(default_factory=dict)  # what the attempts got, 503s included
    bad: list[str] = field(default_factory=list)  # answers that are never acceptable (500, a leaked detail)

    def _count(self, what: int | str) -> None:
        self.statuses[what] = self.statuses.get(what, 0) + 1

    def start(self) -> None:
        body = httpx.post(f"{self.target.url}/api/v1/conversations", json={"language": "en"}, timeout=30).json()
        self.cid, self.token = body["id"], body["token"]

    def send_until_acked(self, text: str, give_up_at: float) -> None:
        key = f"c{self.index}-{uuid.uuid4().hex[:10]}"
        while time.monotonic() < give_up_at:
            try:
                response = httpx.post(f"{self.target.url}/api/v1/conversations/{self.cid}/messages",
                                      json={"text": text}, timeout=30,
                                      headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key})
            except httpx.HTTPError as exc:
                self._count(type(exc).__name__)
                time.sleep(0.2)
                continue
            self._count(response.status_code)
            if response.status_code == 200:
                self.acked.append(key)
                return
            if response.status_code != 503 or "postgres" in response.text or "127.0.0.1" in response.text:
                self.bad.append(f"{response.status_code} {response.text[:300]}")
            time.sleep(0.2)
        self.bad.append(f"never acknowledged: {key}")

    def run(self, stop: threading.Event) -> None:
        i = 0
        while not stop.is_set():
            self.send_until_acked(TEXTS[(i + self.index) % len(TEXTS)], time.monotonic() + 120)
            i += 1
            time.sleep(0.05)


def _burst(customers: list[Customer]) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in customers]
    for t in threads:
        t.start()
    return stop, threads


def _finish(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for t in threads:
        t.join(150)
        assert not t.is_alive()


def _check_store(database_url: str, customers: list[Customer], timeout_s: float = 40) -> None:
    """Exactly once, in order, and (once the sweep has run) every customer message answered."""
    from sqlalchemy import select

    from chatbot.store.manager import ConversationStore
    from chatbot.store.models import Message

    assert not [b for c in customers for b in c.bad], [b for c in customers for b in c.bad]
    deadline = time.monotonic() + timeout_s
    store = ConversationStore(database_url)
    try:
        while True:
            with store.transaction(read_only=True) as s:
                rows = s.execute(select(Message.conversation_id, Message.role, Message.client_key)
                                 .order_by(Message.conversation_id, Message.seq)).all()
            unanswered = []
            for c in customers:
                mine = [(role, key) for cid, role, key in rows if cid == c.cid]
                assert [key for role, key in mine if role == "customer"] == c.acked, (c.index, mine, c.acked)
                unanswered += [c.cid for i, (role, _) in enumerate(mine)
                               if role == "customer" and (i + 1 == len(mine) or mine[i + 1][0] == "customer")]
            if not unanswered:
                return
            assert time.monotonic() < deadline, f"left unanswered: conversations {unanswered}"
            time.sleep(0.5)
    finally:
        store.close()


def test_postgresql_stopped_and_restarted_while_customers_chat(tmp_path):
    with throwaway_postgresql() as pg, staff_server(tmp_path, pg.url, unanswered_grace_s=1.0, unanswered_sweep_s=0.5,
                                                   db_connect_timeout_s=2) as live:
        target = Target(live.url)
        customers = [Customer(target, i) for i in range(6)]
        for c in customers:
            c.start()
        stop, threads = _burst(customers)
        time.sleep(1.5)
        before = sum(len(c.acked) for c in customers)
        pg.stop("immediate")  # a crash: connections cut, nothing flushed politely
        time.sleep(4)
        during = sum(len(c.acked) for c in customers)
        pg.start()
        time.sleep(4)
        _finish(stop, threads)

        refused = sum(n for c in customers for s, n in c.statuses.items() if s != 200)
        assert before > 0 and refused > 0, [c.statuses for c in customers]  # the fault really hit senders
        assert during - before <= len(customers)  # nothing acknowledged while the database was down
        assert sum(len(c.acked) for c in customers) > during  # and it recovered without a restart
        _check_store(pg.url, customers)
        assert httpx.get(f"{live.url}/api/v1/healthz", timeout=10).status_code == 200


class Serve:
    """``chatbot serve`` as a process of its own, to kill -9."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        from test_cli_serve import Replica

        self.replica = Replica(env, log)
        self.proc = self.replica.proc
        self.url = self.replica.url

    def decoders(self) -> list[int]:
        return children(self.proc.pid)


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``, whichever of its threads started them (each thread's task lists its own)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(child for child in found if _alive(child))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_a_decoder_then_of_the_server_mid_burst(tmp_path, postgresql_url, tiny_models):
    from test_cli_serve import _env

    from chatbot.store import registry
    from chatbot.store.manager import ConversationStore

    store = ConversationStore(postgresql_url)
    store.ensure_schema()
    with store.transaction() as s:
        registry.promote(s, registry.register(s, "m1", str(tiny_models.first)).id)
    store.close()
    env = {**_env(postgresql_url, tmp_path / "data"), "CHATBOT_DECODERS": "2", "CHATBOT_DECODE_PROCESS": "true",
           "CHATBOT_UNANSWERED_GRACE_S": "1", "CHATBOT_UNANSWERED_SWEEP_S": "0.5", "CHATBOT_MODEL_WARMUP": "false"}
    first = Serve(env, tmp_path / "first.log")
    second = None
    try:
        first.replica.wait_ready()
        target = Target(first.url)
        customers = [Customer(target, i) for i in range(6)]
        for c in customers:
            c.start()
        stop, threads = _burst(customers)
        time.sleep(2)

        # (c) a decoder process dies mid-burst: the pool starts another one and the service keeps answering
        decoders = first.decoders()
        assert len(decoders) >= 2, decoders
        os.kill(decoders[-1], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while decoders[-1] in first.decoders() or len(first.decoders()) < len(decoders):
            assert time.monotonic() < deadline, (decoders, first.decoders())
            time.sleep(0.2)
        acked = sum(len(c.acked) for c in customers)
        time.sleep(3)
        assert sum(len(c.acked) for c in customers) > acked  # answering again after the respawn
        assert first.proc.poll() is None

        # (b) the server itself is killed mid-burst; its decoders must not live on; a new one takes over
        decoders = first.decoders()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        deadline = time.monotonic() + 30
        while [pid for pid in decoders if _alive(pid)]:
            assert time.monotonic() < deadline, f"decoder processes outlived their server: {decoders}"
            time.sleep(0.2)
        time.sleep(1)
        second = Serve(env, tmp_path / "second.log")
        target.url = second.url
        second.replica.wait_ready()
        time.sleep(3)
        _finish(stop, threads)

        failed = sum(n for c in customers for s, n in c.statuses.items() if s != 200)
        assert failed > 0, [c.statuses for c in customers]  # the kills really hit senders
        _check_store(postgresql_url, customers)
    finally:
        for serve in (first, second):
            if serve is not None and serve.proc.poll() is None:
                serve.replica.stop()
