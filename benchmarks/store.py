"""Store latency, SQLite and PostgreSQL side by side: one transaction that appends a message and fetches
the last 20 turns (what every chat turn does), on a nearly empty store and after bulk-loading
``--messages`` messages (default 1,000,000). History fetch must stay flat as the store grows.

    python benchmarks/store.py                       # full size; about 2-3 minutes on 2 cores
    python benchmarks/store.py --messages 100000 --json

Targets (p50 of the whole transaction, commit included): SQLite <= 2 ms, PostgreSQL <= 4 ms. "cpu p50" is
this process's CPU time per transaction: the part of the latency that machine load cannot inflate.
The bulk load bypasses the ORM (executemany on SQLite, COPY on PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from chatbot.store import ConversationStore
from chatbot.store import conversations as repo
from chatbot.store.models import Conversation
from chatbot.store.scratch import scratch_postgresql_database

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TURNS_PER_CONVERSATION = 20
TARGET_P50_MS = {"sqlite": 2.0, "postgresql": 4.0}
HOT_CONVERSATIONS = 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="store size for the second run")
    parser.add_argument("--iterations", type=int, default=1000, help="timed transactions per run")
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated subset")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    results = []
    for engine in args.engines.split(","):
        with fresh_database(engine) as url, ConversationStore(url) as store:
            store.ensure_schema()
            hot = [seed_conversation(store) for _ in range(HOT_CONVERSATIONS)]
            results.append(measure(store, engine, "empty", hot, args.iterations))
            load_s, loaded = bulk_load(store, engine, args.messages)
            hot = random.Random(1).sample(loaded, min(HOT_CONVERSATIONS, len(loaded)))
            row = measure(store, engine, f"{store.stats()['messages']:,} msgs", hot, args.iterations)
            row["bulk_load_s"] = round(load_s, 1)
            results.append(row)
    report(results, as_json=args.json)
    return 0


def seed_conversation(store: ConversationStore) -> int:
    with store.transaction() as session:
        conv = repo.start_conversation(session)
        for seq in range(TURNS_PER_CONVERSATION):
            repo.append_message(session, conv.id, "customer" if seq % 2 == 0 else "bot", f"warm-up turn {seq}")
        return conv.id


def measure(store: ConversationStore, engine: str, size: str, hot: list[int], iterations: int) -> dict:
    total_ms, fetch_ms, cpu_ms = [], [], []
    rng = random.Random(0)
    for i in range(iterations + 50):
        conv_id = rng.choice(hot)
        c0, t0 = time.thread_time(), time.perf_counter()
        with store.transaction() as session:
            repo.append_message(session, conv_id, "customer", f"where is my order {i}? it was due on monday")
            t1 = time.perf_counter()
            turns = repo.last_turns(session, conv_id, 20)
            t2 = time.perf_counter()
        t3, c3 = time.perf_counter(), time.thread_time()
        assert len(turns) == 20
        if i >= 50:  # the first ones warm caches and the connection pool
            total_ms.append((t3 - t0) * 1e3)
            fetch_ms.append((t2 - t1) * 1e3)
            cpu_ms.append((c3 - c0) * 1e3)
    total_ms.sort()
    return {
        "engine": engine,
        "store": size,
        "p50_ms": round(statistics.median(total_ms), 3),
        "p95_ms": round(total_ms[int(len(total_ms) * 0.95)], 3),
        "fetch_p50_ms": round(statistics.median(fetch_ms), 3),
        "client_cpu_p50_ms": round(statistics.median(cpu_ms), 3),
        "target_p50_ms": TARGET_P50_MS[engine],
    }


@contextmanager
def fresh_database(engine: str) -> Iterator[str]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="chatbot-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    with scratch_postgresql_database(PG_SERVER, "chatbot_bench") as url:
        yield url


def bulk_load(store: ConversationStore, engine: str, messages: int) -> tuple[float, range]:
    """Add ``messages`` messages in conversations of 20 turns, straight through the driver; returns the
    seconds it took and the new conversation ids."""
    started = time.perf_counter()
    with store.transaction() as session:
        first_id = session.execute(select(func.max(Conversation.id))).scalar_one() + 1
    n_conv = messages // TURNS_PER_CONVERSATION
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine == "sqlite":
            _sqlite_load(cursor, first_id, n_conv, base)
        else:
            _pg_load(cursor, first_id, n_conv, base)
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started, range(first_id, first_id + n_conv)


def _rows(first_id: int, n_conv: int, base: datetime, fmt: str) -> Iterator[tuple]:
    for conv_id in range(first_id, first_id + n_conv):
        stamp = (base + timedelta(seconds=conv_id)).strftime(fmt)
        for seq in range(1, TURNS_PER_CONVERSATION + 1):
            role = "customer" if seq % 2 else "bot"
            yield conv_id, seq, role, f"turn {seq} of conversation {conv_id}: about order #{conv_id * 7919 % 100000}", stamp


def _conversations(first_id: int, n_conv: int, base: datetime, fmt: str) -> Iterator[tuple]:
    for conv_id in range(first_id, first_id + n_conv):
        stamp = (base + timedelta(seconds=conv_id)).strftime(fmt)
        yield conv_id, "en", "web", "bench", "bot", stamp, stamp, TURNS_PER_CONVERSATION


_CONV_COLUMNS = "id, language, channel, source, status, created_at, updated_at, last_seq"
_MSG_COLUMNS = "conversation_id, seq, role, text, created_at"


def _sqlite_load(cursor, first_id: int, n_conv: int, base: datetime) -> None:  # type: ignore[no-untyped-def]
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores datetimes in SQLite
    cursor.execute("BEGIN")
    cursor.executemany(f"INSERT INTO conversations ({_CONV_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       _conversations(first_id, n_conv, base, fmt))
    cursor.executemany(f"INSERT INTO messages ({_MSG_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                       _rows(first_id, n_conv, base, fmt))
    cursor.execute("COMMIT")
    cursor.execute("ANALYZE")


def _pg_load(cursor, first_id: int, n_conv: int, base: datetime) -> None:  # type: ignore[no-untyped-def]
    fmt = "%Y-%m-%d %H:%M:%S+00"
    with cursor.copy(f"COPY conversations ({_CONV_COLUMNS}) FROM STDIN") as copy:
        for row in _conversations(first_id, n_conv, base, fmt):
            copy.write_row(row)
    with cursor.copy(f"COPY messages ({_MSG_COLUMNS}) FROM STDIN") as copy:
        for row in _rows(first_id, n_conv, base, fmt):
            copy.write_row(row)
    cursor.execute("SELECT setval(pg_get_serial_sequence('conversations', 'id'), max(id)) FROM conversations")
    cursor.connection.commit()
    cursor.execute("ANALYZE")


def report(results: list[dict], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(f"append 1 message + fetch last 20 turns, one transaction; {sys.platform}, {os.cpu_count()} CPUs")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work slows every figure)")
    header = (f"{'engine':<11} {'store':>15} {'p50 ms':>8} {'p95 ms':>8} {'fetch p50':>10} {'cpu p50':>8} "
              f"{'target p50':>11} {'load s':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        ok = "ok" if r["p50_ms"] <= r["target_p50_ms"] else "MISSED"
        print(f"{r['engine']:<11} {r['store']:>15} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} "
              f"{r['fetch_p50_ms']:>10.3f} {r['client_cpu_p50_ms']:>8.3f} {r['target_p50_ms']:>7.1f} {ok:<6} "
              f"{r.get('bulk_load_s', ''):>4}")


if __name__ == "__main__":
    raise SystemExit(main())
