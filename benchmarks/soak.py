"""Soak: N customers chat for M minutes with a real ``chatbot serve`` on PostgreSQL (issue 19).

What it proves, printed at the end with a verdict per line:

* **errors**: every request answered 2xx (a 5xx, a timeout or a refused connection is an error; each is
  retried with the same ``Idempotency-Key``, so a retry never hides a lost or doubled message);
* **exactly once, in order**: read back from the store after the run, every acknowledged customer message
  (found by its ``Idempotency-Key``, kept in ``messages.client_key``) is stored exactly once, in the order
  its customer sent it, each followed by the bot's reply, and nothing else was stored;
* **memory**: the resident set (RSS) of the server process and of each child (decoder processes, and
  multiprocessing's resource tracker), sampled every ``--sample-s`` seconds; after a warm-up (``--warmup``
  share of the run, at least ``--warmup-s``, at most half) it must stay flat:
  a least-squares slope under ``--max-growth-mb-per-min`` and a final value within 10 % of the warm-up one.

The database is a fresh one on ``--server`` (default the local PostgreSQL at 127.0.0.1:5432), created for
the run and dropped after it (``chatbot.store.scratch``). Each customer starts a conversation, sends a
message, reads the reply, thinks (exponential, ``--think-ms`` mean), and after ``--per-conversation``
messages closes it with a rating and starts another.

    python benchmarks/soak.py                          # 20 customers, 5 minutes, the shipped demo model
    python benchmarks/soak.py --customers 20 --minutes 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

QUESTIONS = ["where is my order?", "I want a refund please", "my parcel arrived late", "how do I reset my password?",
             "can I change my booking?", "thanks for the help", "I'd like to book a table for two tonight.",
             "Can you find me a flight to Seattle next Friday?"]
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident set of one process in MB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` started by any of its threads (a decoder started again after a crash is
    the child of a worker thread, listed only under that thread's task)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(found)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    retried_ok: int = 0
    acked: dict[int, list[str]] = field(default_factory=dict)  # conversation -> keys, in send order
    replies: int = 0
    not_bot: int = 0  # answers without a bot reply (a person took it): allowed, counted
    latencies: list[float] = field(default_factory=list)


class Client:
    """One customer's keep-alive connection (standard library: the load shares the server's cores)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict | None]:
        try:
            self.conn.request("POST", path, body=json.dumps(body),
                              headers={"Content-Type": "application/json", **headers})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        if response.getheader("connection", "").lower() == "close":
            self.conn.close()
        return response.status, json.loads(data) if data else None


def customer(port: int, index: int, stop_at: float, think_ms: float, per_conversation: int, tally: Tally) -> None:
    rng = random.Random(index)
    client = Client(port)

    def call(path: str, body: dict, headers: dict[str, str]) -> dict | None:
        """POST with up to 3 retries (same body and headers, hence the same Idempotency-Key); each failed
        attempt is an error."""
        for attempt in range(4):
            with tally.lock:
                tally.requests += 1
            try:
                status, data = client.post(path, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                status, data = 0, {"error": repr(exc)}
            if 200 <= status < 300:
                if attempt:
                    with tally.lock:
                        tally.retried_ok += 1
                return data
            with tally.lock:
                tally.errors.append(f"{path} -> {status} {data}")
            time.sleep(0.5 * (attempt + 1))
        return None

    time.sleep(rng.random() * think_ms / 1000)
    while time.monotonic() < stop_at:
        started = call("/api/v1/conversations", {"language": "en"}, {})
        if started is None:
            continue
        cid, auth = started["id"], {"Authorization": f"Bearer {started['token']}"}
        with tally.lock:
            tally.acked[cid] = []
        for _ in range(per_conversation):
            if time.monotonic() >= stop_at:
                break
            key = f"soak-{index}-{uuid.uuid4().hex[:12]}"
            begin = time.perf_counter()
            answer = call(f"/api/v1/conversations/{cid}/messages", {"text": rng.choice(QUESTIONS)},
                          {**auth, "Idempotency-Key": key})
            if answer is None:
                continue
            with tally.lock:
                tally.latencies.append(time.perf_counter() - begin)
                tally.acked[cid].append(key)
                if answer.get("reply"):
                    tally.replies += 1
                else:
                    tally.not_bot += 1
            if answer.get("status") not in (None, "bot"):
                break  # a person has it: a new conversation
            time.sleep(rng.expovariate(1000 / think_ms) if think_ms else 0)
        call(f"/api/v1/conversations/{cid}/close", {"csat": rng.randint(1, 5)}, auth)


def sample_rss(server_pid: int, stop: threading.Event, every_s: float, series: dict[str, list[tuple[float, float]]]) -> None:
    """Every ``every_s``: RSS of the server and of each of its children (decoder processes) by pid."""
    start = time.monotonic()
    while True:
        now = time.monotonic() - start
        for label, pid in [("server", server_pid), *((f"child {c}", c) for c in children(server_pid))]:
            value = rss_mb(pid)
            if value is not None:
                series.setdefault(label, []).append((now, value))
        if stop.wait(every_s):
            return


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs, ys = [p[0] / 60 for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def verify_store(database_url: str, tally: Tally) -> list[str]:
    """Every acknowledged message exactly once and in its customer's order, each answered; nothing extra."""
    from sqlalchemy import select

    from chatbot.store.manager import ConversationStore
    from chatbot.store.models import Message

    problems: list[str] = []
    store = ConversationStore(database_url)
    try:
        with store.transaction(read_only=True) as session:
            rows = session.execute(select(Message.conversation_id, Message.seq, Message.role, Message.client_key)
                                   .order_by(Message.conversation_id, Message.seq)).all()
    finally:
        store.close()
    stored: dict[int, list[tuple[str, str | None]]] = {}
    for cid, _seq, role, key in rows:
        stored.setdefault(cid, []).append((role, key))
    for cid, keys in tally.acked.items():
        got = stored.get(cid, [])
        customer_keys = [k for role, k in got if role == "customer"]
        if customer_keys != keys:
            problems.append(f"conversation {cid}: sent {len(keys)} keys, stored {len(customer_keys)} "
                            f"({'out of order' if sorted(customer_keys) == sorted(keys) else 'different'})")
        unanswered = [i for i, (role, _) in enumerate(got) if role == "customer"
                      and (i + 1 >= len(got) or got[i + 1][0] == "customer")]
        if unanswered:
            problems.append(f"conversation {cid}: {len(unanswered)} customer message(s) without an answer")
    extra = set(stored) - set(tally.acked)
    if extra:
        problems.append(f"{len(extra)} conversation(s) stored that no customer was told about: {sorted(extra)[:5]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--think-ms", type=float, default=500.0, help="mean pause between a reply and the next message")
    parser.add_argument("--per-conversation", type=int, default=15, help="messages before a customer closes and starts anew")
    parser.add_argument("--model-dir", default=str(ROOT / "chatbot/shipped/demo"))
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server where the scratch database is created (and dropped)")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.25, help="share of the run counted as warm-up for RSS")
    parser.add_argument("--warmup-s", type=float, default=60.0,
                        help="at least this many seconds of warm-up (each decoder's allocator settles as it meets new "
                             "batch shapes; the less busy one takes longer); never more than half the run")
    parser.add_argument("--max-growth-mb-per-min", type=float, default=2.0)
    args = parser.parse_args()

    from chatbot.store.manager import ConversationStore
    from chatbot.store.scratch import scratch_postgresql_database

    failed = False
    with scratch_postgresql_database(args.server, "chatbot_soak") as database_url, \
            tempfile.TemporaryDirectory(prefix="soak-") as work:
        store = ConversationStore(database_url)
        store.ensure_schema()
        store.close()
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")},
               "CHATBOT_DATABASE_URL": database_url, "CHATBOT_DATA_DIR": str(Path(work) / "data"),
               "CHATBOT_MODEL_DIR": args.model_dir, "CHATBOT_HANDOFF_MIN_SCORE": "-1e9",
               "CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB": "-1e9", "CHATBOT_HANDOFF_REPEATS": "false",
               "CHATBOT_ACCESS_LOG": "false"}
        log = Path(work) / "serve.log"
        proc = subprocess.Popen([sys.executable, "-c", "from chatbot.cli import main; main()", "serve", "--port",
                                 str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        try:
            import httpx

            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not come up")
                time.sleep(0.3)
            tally, series, stop = Tally(), {}, threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(proc.pid, stop, args.sample_s, series), daemon=True)
            sampler.start()
            began = time.monotonic()
            stop_at = began + args.minutes * 60
            threads = [threading.Thread(target=customer, args=(port, i, stop_at, args.think_ms,
                                                               args.per_conversation, tally), daemon=True)
                       for i in range(args.customers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - began
            stop.set()
            sampler.join()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                for pid in (proc.pid, *children(proc.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
        problems = verify_store(database_url, tally)

    sent = sum(len(keys) for keys in tally.acked.values())
    lat = sorted(tally.latencies)
    print(f"# benchmarks/soak.py --customers {args.customers} --minutes {args.minutes:g} --think-ms {args.think_ms:g}"
          f", {time.strftime('%Y-%m-%d %H:%M')}; model {Path(args.model_dir).name}; PostgreSQL scratch database;"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"ran {elapsed:.0f} s: {len(tally.acked)} conversations, {sent} customer messages acknowledged, "
          f"{tally.replies} bot replies, {tally.not_bot} answered by a hand-off, {tally.requests} requests")
    if lat:
        print(f"message latency p50 {1000 * lat[len(lat) // 2]:.0f} ms, p95 {1000 * lat[int(len(lat) * 0.95)]:.0f} ms, "
              f"max {1000 * lat[-1]:.0f} ms")
    print(f"errors: {len(tally.errors)} (retried to success: {tally.retried_ok})  "
          f"[{'PASS' if not tally.errors else 'FAIL'}]")
    for line in tally.errors[:10]:
        print(f"    {line}")
    print(f"store check, exactly once and in order, each answered: {len(problems)} problem(s)  "
          f"[{'PASS' if not problems else 'FAIL'}]")
    for line in problems[:10]:
        print(f"    {line}")
    failed = bool(tally.errors or problems)
    cut = min(max(elapsed * args.warmup, args.warmup_s), elapsed / 2)
    print(f"RSS MB, sampled every {args.sample_s:g} s; warm-up = the first {cut:.0f} s; flat = least-squares slope "
          f"after warm-up under {args.max_growth_mb_per_min:g} MB/min and last within 10% of the warm value")
    print(f"{'process':<16} {'first':>7} {'warm':>7} {'last':>7} {'max':>7} {'MB/min after warm-up':>21}  verdict")
    for label, points in series.items():
        after = [p for p in points if p[0] >= cut] or points
        first, warm, last, peak = points[0][1], after[0][1], points[-1][1], max(v for _, v in points)
        slope = slope_mb_per_min(after)
        flat = slope < args.max_growth_mb_per_min and last <= warm * 1.10
        failed |= not flat
        print(f"{label:<16} {first:7.1f} {warm:7.1f} {last:7.1f} {peak:7.1f} {slope:21.2f}  "
              f"{'flat' if flat else 'GROWING'}")
        series[label] = points
    print("RSS MB at each 30 s (the shape: a leak climbs in a straight line, a warm-up levels off)")
    for label, points in series.items():
        marks = [next((v for t, v in points if t >= m), points[-1][1]) for m in range(0, int(elapsed) + 1, 30)]
        print(f"{label:<16} " + " ".join(f"{v:6.1f}" for v in marks))
    print("verdict:", "PASS" if not failed else "FAIL")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
