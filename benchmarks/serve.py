"""Serving benchmark: N simulated customers over HTTP against a real `chatbot serve`, batching on vs off.

Each customer starts a conversation and sends messages for ``--seconds``; the table shows replies/s,
p50/p95 latency, errors and the mean decoded batch size for every (customers, batching, pace) row, side by
side. Three servers, the same code with other settings:

* ``on``: dynamic batching (``batch_max_size=32``) with the default pool of decoder processes
  (``decoders``); ``--decoders 1 2`` gives one ``on/N`` row per pool size instead.
* ``off``: ``batch_max_size=1`` and one decoder, one request decoded at a time, while the HTTP and
  database work of other requests still runs alongside.
* ``serial``: ``batch_max_size=1``, one decoder and ``request_threads=1``, a one-request-at-a-time
  server: each request is read, stored, decoded, stored and answered before the next one starts.

Two paces:

* back to back (think 0): a customer sends the next message the moment a reply arrives. This saturates
  the server and measures throughput; latency is then set by queueing (Little's law: p50 is about
  customers / throughput), not by how fast one reply is.
* paced (``--think-ms``, default 1000): a customer reads and types for a random time (exponential, that
  mean) between a reply and the next message, as people do, and starts at a random moment of the first
  pause; this measures the latency a customer sees.

The clients run on the same machine as the server, so on a small box they compete with it for the CPUs;
they use the standard library's HTTP client (one keep-alive connection each) to take as little as they can.

    python benchmarks/serve.py --model-dir runs/model            # a trained checkpoint
    python benchmarks/serve.py --tiny                            # a random tiny model, for a smoke run
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx

QUESTIONS = ["where is my order?", "I want a refund please", "my parcel arrived late", "how do I reset my password?",
             "can I change my booking?", "thanks for the help"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_model(directory: Path) -> Path:
    import torch

    from chatbot.model.checkpoint import save_checkpoint
    from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
    from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

    torch.manual_seed(0)
    words = sorted({w for q in QUESTIONS for w in q.replace("?", " ?").split()})
    vocab = Vocab([*SPECIAL_TOKENS, *words])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=64, hidden=128, enc_layers=1, dropout=0.0)).eval()
    return save_checkpoint(directory, model, vocab)


def start_server(model_dir: Path, data_dir: Path, batch: int, threads: int = 40,
                 decoders: int | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CHATBOT_MODEL_DIR": str(model_dir), "CHATBOT_DATA_DIR": str(data_dir),
           "CHATBOT_BATCH_MAX_SIZE": str(batch), "CHATBOT_REQUEST_THREADS": str(threads),
           "CHATBOT_HANDOFF_MIN_SCORE": "-1e9"}
    if decoders is not None:
        env["CHATBOT_DECODERS"] = str(decoders)
    proc = subprocess.Popen([sys.executable, "-c", "from chatbot.cli import main; main()", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=data_dir.with_suffix(".log").open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited; see {data_dir.with_suffix('.log')}")
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not come up")


class Client:
    """One customer's keep-alive HTTP connection. The standard library's client rather than httpx: the load
    generator shares the server's cores, and this costs it about a third of the CPU per request."""

    KEEP_ALIVE_S = 4.0  # uvicorn closes a connection idle for 5 s: open a new one rather than race it

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.last_used = time.monotonic()

    def post(self, path: str, body: dict[str, object], token: str | None = None) -> tuple[int, dict | None]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if time.monotonic() - self.last_used > self.KEEP_ALIVE_S:
            self.conn.close()
        try:
            self.conn.request("POST", path, body=json.dumps(body), headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            raise
        self.last_used = time.monotonic()
        return response.status, json.loads(data) if data else None

    def close(self) -> None:
        self.conn.close()


class CpuMeter:
    """CPU time per reply of the server process, its children (the decoders) and this load generator, and
    the machine's idle share, over one row: what bounds throughput on a small machine. Reads Linux /proc;
    elsewhere the figures are NaN."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start: tuple[float, float, float, float, float] | None = None
        self.end: tuple[float, float, float, float, float] | None = None

    def __enter__(self) -> Self:
        self.children = _children(self.server_pid)
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        me = os.times()
        idle, total = _machine_ticks()
        return (_cpu_s(self.server_pid), sum(_cpu_s(pid) for pid in self.children), me.user + me.system,
                idle, total)

    def per_reply(self, replies: int) -> dict[str, float]:
        nan = float("nan")
        if self.start is None or self.end is None or not replies or math.isnan(self.start[0]):
            return {"server_ms": nan, "decoder_ms": nan, "client_ms": nan, "idle_pct": nan}
        d = [b - a for a, b in zip(self.start, self.end)]
        return {"server_ms": 1000 * d[0] / replies, "decoder_ms": 1000 * d[1] / replies,
                "client_ms": 1000 * d[2] / replies, "idle_pct": 100 * d[3] / d[4] if d[4] else nan}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (NaN when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _machine_ticks() -> tuple[float, float]:
    """(idle, total) jiffies of all CPUs since boot; (NaN, NaN) without /proc."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return float("nan"), float("nan")
    return values[3] + values[4], sum(values)  # idle + iowait


def run_load(url: str, customers: int, seconds: float, think_ms: float = 0.0) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def customer(i: int) -> None:
        nonlocal errors
        pace = random.Random(i)
        client = Client(url)
        try:
            _, start = client.post("/api/v1/conversations", {"language": "en"})
            path = f"/api/v1/conversations/{start['id']}/messages"
            if think_ms:  # paced customers arrive at random moments, not all in the same millisecond
                time.sleep(pace.uniform(0, think_ms / 1000.0))
            n = 0
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    status, answer = client.post(path, {"text": QUESTIONS[(i + n) % len(QUESTIONS)]}, start["token"])
                    ok = status == 200 and answer is not None and answer.get("reply") is not None
                except (OSError, http.client.HTTPException, ValueError):
                    ok = False
                elapsed = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors += 1
                n += 1
                if think_ms:
                    time.sleep(min(pace.expovariate(1000.0 / think_ms), max(0.0, stop_at - time.monotonic())))
        finally:
            client.close()

    threads = [threading.Thread(target=customer, args=(i,)) for i in range(customers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    pct = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else (lambda q: float("nan"))
    return {"replies_s": len(latencies) / seconds, "p50_ms": pct(0.50), "p95_ms": pct(0.95), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path)
    source.add_argument("--tiny", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed load after each server starts")
    parser.add_argument("--customers", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--think-ms", type=float, default=1000.0,
                        help="mean pause between a reply and the next message in the paced rows (0: no paced rows)")
    parser.add_argument("--decoders", type=int, nargs="+", default=None,
                        help="decoder pool sizes of the batching server, one 'on/N' row each (default: the setting's)")
    parser.add_argument("--servers", nargs="+", default=["on", "off", "serial"], choices=["on", "off", "serial"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model_dir = args.model_dir or tiny_model(work / "model")
    paces = [0.0] + ([args.think_ms] if args.think_ms > 0 else [])
    rows = []
    servers: list[tuple[str, int, int, int | None]] = []
    if "on" in args.servers:
        servers += [(f"on/{n}", 32, 40, n) for n in args.decoders] if args.decoders else [("on", 32, 40, None)]
    servers += [(label, 1, threads, 1) for label, threads in (("off", 40), ("serial", 1)) if label in args.servers]
    for label, batch, threads, decoders in servers:
        proc, url = start_server(model_dir, work / f"data-{label.replace('/', '-')}", batch, threads, decoders)
        try:
            run_load(url, max(args.customers), args.warmup)  # first batches pay for lazy loading: not timed
            for think in paces:
                for n in args.customers:
                    before = httpx.get(url + "/api/v1/healthz").json()
                    with CpuMeter(proc.pid) as meter:
                        result = run_load(url, n, args.seconds, think)
                    after = httpx.get(url + "/api/v1/healthz").json()
                    result.update(meter.per_reply(round(result["replies_s"] * args.seconds)))
                    batches = after["batches"] - before["batches"]
                    result["mean_batch"] = (after["batched_requests"] - before["batched_requests"]) / max(batches, 1)
                    rows.append((think, n, label, result))
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; {args.seconds:.0f} s per row")
    print("CPU ms per reply: srv the server process, dec its decoder processes, cli this load generator; "
          "idle: the machine's idle share")
    print(f"{'think ms':>8} {'customers':>9} {'batching':>8} {'replies/s':>10} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'errors':>7} {'batch':>6} {'srv':>5} {'dec':>5} {'cli':>5} {'idle':>5}")
    order = {label: i for i, (label, *_) in enumerate(servers)}
    for think, n, label, r in sorted(rows, key=lambda row: (row[0], row[1], order[row[2]])):
        print(f"{think:>8.0f} {n:>9} {label:>8} {r['replies_s']:>10.1f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
              f"{r['errors']:>7} {r['mean_batch']:>6.1f} {r['server_ms']:>5.2f} {r['decoder_ms']:>5.2f} "
              f"{r['client_ms']:>5.2f} {r['idle_pct']:>4.0f}%")
    by = {(think, n, label): r for think, n, label, r in rows}
    for think in paces:
        for n in args.customers:
            name = "serial" if (think, n, "serial") in by else "off"
            base = by.get((think, n, name))
            if base is None or not base["replies_s"]:
                continue
            for label, *_ in servers:
                if label.startswith("on"):
                    r = by[(think, n, label)]
                    print(f"think {think:.0f} ms, {n} customers: {label} replies/s x{r['replies_s'] / base['replies_s']:.2f} "
                          f"of {name}; p95 {r['p95_ms']:.0f} vs {base['p95_ms']:.0f} ms")
                    cpu_ms = r["server_ms"] + r["decoder_ms"] + r["client_ms"]
                    if not think and cpu_ms > 0:  # saturated: CPU per reply sets the ceiling
                        cap = (os.cpu_count() or 1) * 1000 / cpu_ms
                        print(f"    {cpu_ms:.2f} CPU ms per reply: at most {cap:.0f} replies/s with every core busy "
                              f"(x{cap / base['replies_s']:.2f} of {name})")


if __name__ == "__main__":
    main()
