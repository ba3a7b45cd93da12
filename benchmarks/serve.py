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

Several models in one run (``--model-dir A B``, ``--model-rev REV``: ``chatbot/shipped/demo`` as committed at
git revision REV, read with ``git show`` into a temporary directory): every server setting starts one server per
model, and each (server, customers, think) row is measured for every model in turn, alternating which goes
first per ``--rounds`` round, so drift of the machine (other jobs, heat) hits all of them alike; the servers
not being measured are stopped (SIGSTOP) meanwhile. A final line per row gives each model's replies/s and p95
beside the first model's and the ratio. Models are ordered ``--model-rev`` ones, then ``--tiny``, then
``--model-dir`` ones as given; the first is the baseline the others are compared with.

``--latency`` adds what one customer alone waits for: batch-1 decode latency of the same models measured in
this process before any server starts, the way a decoder process serves (``ReplyGenerator`` int8, the
serving decoding settings of ``load_settings()``, ``CHATBOT_TORCH_THREADS`` or one thread), on fixed English
and Chinese conversations; every run decodes them all with each model in turn, alternating which goes first.
Each reply is decoded twice: as served (what the customer waits for, so a model that writes longer replies
waits longer) and with every reply exactly ``--fixed-tokens`` long (EOS blocked until then), which gives both
models the same number of steps and so compares the cost of a step alone. ``--servers`` with no value
measures only that.

    python benchmarks/serve.py --model-dir runs/model            # a trained checkpoint
    python benchmarks/serve.py --tiny                            # a random tiny model, for a smoke run
    python benchmarks/serve.py --model-rev HEAD --model-dir chatbot/shipped/demo --customers 20 \\
        --servers on --think-ms 0 --rounds 3 --latency     # the working tree's shipped model vs HEAD's
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
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
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx
from gitrev import commit_of, tree_at  # benchmarks/gitrev.py, beside this script

QUESTIONS = ["where is my order?", "I want a refund please", "my parcel arrived late", "how do I reset my password?",
             "can I change my booking?", "thanks for the help"]
SHIPPED = "chatbot/shipped/demo"  # what --model-rev reads at a revision
# --latency's conversations: what customers of the shipped model (bookings, orders; English and Chinese) write,
# first messages and follow-ups with the history the service would pass.
LATENCY_CONTEXTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("en", [("customer", "I'd like to book a table for two at 7 pm tonight.")]),
    ("en", [("customer", "Can you find me a flight to Seattle next Friday?")]),
    ("en", [("customer", "Where is my order? It was supposed to arrive yesterday.")]),
    ("en", [("customer", "Can I get a large iced latte with oat milk?")]),
    ("en", [("customer", "I need a hotel in San Francisco."), ("bot", "Which dates would you like to stay?"),
            ("customer", "From March 3rd for three nights, for two adults please.")]),
    ("en", [("customer", "I want to see a movie this weekend."), ("bot", "Which city are you in?"),
            ("customer", "San Jose, something around 8 pm on Saturday.")]),
    ("zh", [("customer", "你好，我想找一家评分4.5分以上的酒店。")]),
    ("zh", [("customer", "请问故宫的门票多少钱？")]),
    ("zh", [("customer", "帮我推荐一家北京的烤鸭餐厅，人均一百元左右。")]),
    ("zh", [("customer", "从天安门到颐和园怎么坐地铁？")]),
    ("zh", [("customer", "我想订明天晚上七点两个人的位子。"), ("bot", "请问您想订哪家餐厅？"),
            ("customer", "全聚德前门店，谢谢。")]),
    ("zh", [("customer", "附近有什么好玩的景点吗？"), ("bot", "您在北京哪个区？"), ("customer", "我住在海淀区。")]),
]


@dataclass(frozen=True)
class Model:
    label: str  # the column and comparison name: the --model-rev REV, "tiny" or the --model-dir as given
    path: Path
    rev: str | None = None  # the git revision its files were read at


def ratio(new: float, old: float) -> float:
    return new / old if old else float("nan")


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
           # Every reply goes back to the customer: with hand-offs (low score, or grounding's ungrounded details)
           # a conversation leaves the bot and its later messages measure nothing.
           "CHATBOT_HANDOFF_MIN_SCORE": "-1e9",
           "CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB": "-1e9", "CHATBOT_HANDOFF_REPEATS": "false", "CHATBOT_GROUNDING": "false"}
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
    stop_server(proc, grace_s=0)
    raise SystemExit("server did not come up")


def stop_server(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Terminate a server (resumed first: a stopped process holds its SIGTERM); past ``grace_s`` kill it and
    its decoder processes, which would otherwise live on without it."""
    children = _children(proc.pid)
    pause(proc, False)
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        for pid in (proc.pid, *children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


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


def pause(proc: subprocess.Popen, paused: bool) -> None:
    """Stop (SIGSTOP) or resume a server and its decoder processes. With several models only the measured
    model's server runs: an idle server's event loop costs about 3% of a core, which would tax the others' rows."""
    for pid in (proc.pid, *_children(proc.pid)):
        try:
            os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)
        except ProcessLookupError:
            pass


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


def collect_models(args: argparse.Namespace, work: Path) -> list[Model]:
    """The models to serve, baseline first: ``--model-rev`` ones, then ``--tiny``, then ``--model-dir`` ones."""
    models = [Model(rev, tree_at(rev, SHIPPED, work / f"model-{i}-at-rev"), rev)
              for i, rev in enumerate(args.model_rev)]
    if args.tiny:
        models.append(Model("tiny", tiny_model(work / "model")))
    models += [Model(str(d), d) for d in args.model_dir or []]
    seen: dict[str, int] = {}
    for i, model in enumerate(models):  # the same model twice (a noise check) still needs two names
        seen[model.label] = seen.get(model.label, 0) + 1
        if seen[model.label] > 1:
            models[i] = Model(f"{model.label}#{seen[model.label]}", model.path, model.rev)
    return models


def decode_latency(models: list[Model], runs: int, fixed_tokens: int) -> tuple[list[dict[str, float | str]], str]:
    """Batch-1 int8 decode latency per model, as a decoder process serves one customer alone, and a line
    naming the setup. Each run decodes every context with one model, then with the next (the order flips
    every run): a model's weights stay in cache for its block, as they do in a server that holds one model,
    and the models still take turns every few hundred milliseconds.

    Two measures, because a reply's latency is its decoding cost per token times its length, and two
    models seldom write replies of the same length: ``as served`` decodes with the serving settings (what a
    customer waits for, longer replies included), ``fixed`` makes every reply exactly ``fixed_tokens`` long
    (EOS blocked until then), so both models do the same number of steps and only the cost of a step
    differs."""
    import dataclasses

    import torch

    from chatbot.service.generator import ReplyGenerator
    from chatbot.settings import load_settings

    settings = load_settings()
    torch.set_num_threads(settings.torch_threads or 1)  # as chatbot.service.generator.serving_generator
    generators = {m.label: ReplyGenerator.from_checkpoint(m.path, settings=settings, int8=True) for m in models}
    contexts = [(lang, turns) for lang, turns in LATENCY_CONTEXTS
                if all(lang in g.languages for g in generators.values())]
    dropped = sorted({lang for lang, _ in LATENCY_CONTEXTS} - {lang for lang, _ in contexts})
    if not contexts:
        raise SystemExit("the models share no language of the latency conversations")
    fixed: dict[str, ReplyGenerator] = {}
    for label, generator in generators.items():
        fixed[label] = copy_of = ReplyGenerator(
            generator.model, generator.vocab, dataclasses.replace(
                generator.config, min_new_tokens=fixed_tokens, max_new_tokens=fixed_tokens),
            languages=generator.languages, max_turns=generator.max_turns, max_tokens=generator.max_tokens)
        copy_of.loaded = generator.loaded
    times: dict[str, list[tuple[str, float]]] = {label: [] for label in generators}
    fixed_times: dict[str, list[float]] = {label: [] for label in generators}
    tokens: dict[str, list[int]] = {label: [] for label in generators}
    for run in range(-1, runs):  # run -1 warms up (lazy imports, quantized kernels) untimed
        order = list(generators)
        for label in order if run % 2 == 0 else order[::-1]:
            for lang, turns in contexts:
                start = time.perf_counter()
                reply = generators[label].generate([turns], language=lang)[0]
                elapsed = (time.perf_counter() - start) * 1000
                start = time.perf_counter()
                fixed[label].generate([turns], language=lang)
                fixed_elapsed = (time.perf_counter() - start) * 1000
                if run >= 0:
                    times[label].append((lang, elapsed))
                    fixed_times[label].append(fixed_elapsed)
                    tokens[label].append(len(reply.attention["target_tokens"]) if reply.attention else 0)
    rows: list[dict[str, float | str]] = []
    for label, measured in times.items():
        all_ms = [ms for _, ms in measured]
        row: dict[str, float | str] = {"model": label, "p50_ms": statistics.median(all_ms),
                                       "p95_ms": statistics.quantiles(all_ms, n=20, method="inclusive")[18],
                                       "mean_ms": statistics.fmean(all_ms),
                                       "tokens": statistics.fmean(tokens[label]),
                                       "fixed_p50_ms": statistics.median(fixed_times[label]),
                                       "fixed_mean_ms": statistics.fmean(fixed_times[label])}
        for lang in dict.fromkeys(lang for lang, _ in contexts):
            row[f"p50 {lang}"] = statistics.median(ms for language, ms in measured if language == lang)
            row[f"tokens {lang}"] = statistics.fmean(n for (language, _), n in zip(measured, tokens[label])
                                                     if language == lang)
        rows.append(row)
    c = next(iter(generators.values())).config
    setup = (f"batch-1 int8 decode, serving settings (beam {c.num_beams}, at most {c.max_new_tokens} new tokens, "
             f"repetition {c.repetition_penalty}, no-repeat {c.no_repeat_ngram_size}, "
             f"{c.num_return_sequences} returned), {torch.get_num_threads()} torch thread(s); "
             f"{runs} runs x {len(contexts)} conversations per model; 'fixed': the same with every reply "
             f"exactly {fixed_tokens} tokens long"
             + (f"; skipped {', '.join(dropped)}: not served by every model" if dropped else ""))
    return rows, setup


def print_latency(rows: list[dict[str, float | str]], setup: str, width: int) -> None:
    print(setup)
    langs = [k[4:] for k in rows[0] if k.startswith("p50 ")]
    print(f"{'model':<{width}} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} "
          + " ".join(f"{'p50 ' + lang:>8}" for lang in langs) + f" {'tokens':>7} "
          + " ".join(f"{'tok ' + lang:>7}" for lang in langs) + f" {'fixed p50':>10} {'fixed mean':>10}")
    for r in rows:
        print(f"{r['model']:<{width}} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['mean_ms']:>8.1f} "
              + " ".join(f"{r['p50 ' + lang]:>8.1f}" for lang in langs) + f" {r['tokens']:>7.1f} "
              + " ".join(f"{r['tokens ' + lang]:>7.1f}" for lang in langs)
              + f" {r['fixed_p50_ms']:>10.1f} {r['fixed_mean_ms']:>10.1f}")
    base = rows[0]
    for r in rows[1:]:
        print(f"batch-1 decode, {r['model']} vs {base['model']} (new/old: above 1 is slower): "
              + ", ".join(f"{name} {r[key]:.1f} vs {base[key]:.1f} ms x{ratio(r[key], base[key]):.2f}"
                          for name, key in (("as served p50", "p50_ms"), ("p95", "p95_ms"), ("mean", "mean_ms"),
                                            ("fixed-length p50", "fixed_p50_ms"),
                                            ("fixed-length mean", "fixed_mean_ms")))
              + f"; reply tokens {r['tokens']:.1f} vs {base['tokens']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-dir", type=Path, nargs="+", metavar="DIR", help="checkpoint directories to serve")
    source.add_argument("--tiny", action="store_true", help="a random tiny model, for a smoke run")
    parser.add_argument("--model-rev", nargs="+", default=[], metavar="REV",
                        help=f"also serve {SHIPPED} as committed at these git revisions (labelled REV)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed load after each server starts")
    parser.add_argument("--customers", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--think-ms", type=float, default=1000.0,
                        help="mean pause between a reply and the next message in the paced rows (0: no paced rows)")
    parser.add_argument("--decoders", type=int, nargs="+", default=None,
                        help="decoder pool sizes of the batching server, one 'on/N' row each (default: the setting's)")
    parser.add_argument("--servers", nargs="*", default=["on", "off", "serial"], choices=["on", "off", "serial"],
                        help="server settings to measure (none: only --latency)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each row this many times per model (with several models, alternating which "
                        "goes first); comparisons use the median")
    parser.add_argument("--latency", action="store_true", help="also measure batch-1 int8 decode latency per model")
    parser.add_argument("--latency-runs", type=int, default=50, help="decodes of every latency conversation per model")
    parser.add_argument("--fixed-tokens", type=int, default=16,
                        help="reply length of --latency's fixed-length measure (the same work for every model)")
    args = parser.parse_args()
    if not (args.model_dir or args.tiny or args.model_rev):
        parser.error("name a model: --model-dir, --tiny or --model-rev")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    models = collect_models(args, work)
    width = max(5, *(len(m.label) for m in models))
    several = len(models) > 1
    latency = decode_latency(models, args.latency_runs, args.fixed_tokens) if args.latency else None  # before any server runs
    paces = [0.0] + ([args.think_ms] if args.think_ms > 0 else [])
    rows: list[tuple[float, int, str, str, dict[str, float]]] = []  # (think, customers, server, model, figures)
    servers: list[tuple[str, int, int, int | None]] = []
    if "on" in args.servers:
        servers += [(f"on/{n}", 32, 40, n) for n in args.decoders] if args.decoders else [("on", 32, 40, None)]
    servers += [(label, 1, threads, 1) for label, threads in (("off", 40), ("serial", 1)) if label in args.servers]
    for label, batch, threads, decoders in servers:
        up: list[tuple[Model, subprocess.Popen, str]] = []
        try:
            for i, model in enumerate(models):
                proc, url = start_server(model.path, work / f"data-{label.replace('/', '-')}-{i}", batch, threads,
                                         decoders)
                up.append((model, proc, url))
                run_load(url, max(args.customers), args.warmup)  # first batches pay for lazy loading: not timed
                if several:
                    pause(proc, True)
            for think in paces:
                for n in args.customers:
                    for round_ in range(args.rounds):
                        for model, proc, url in up if round_ % 2 == 0 else up[::-1]:
                            if several:
                                pause(proc, False)
                            before = httpx.get(url + "/api/v1/healthz").json()
                            with CpuMeter(proc.pid) as meter:
                                result = run_load(url, n, args.seconds, think)
                            after = httpx.get(url + "/api/v1/healthz").json()
                            result.update(meter.per_reply(round(result["replies_s"] * args.seconds)))
                            batches = after["batches"] - before["batches"]
                            result["mean_batch"] = ((after["batched_requests"] - before["batched_requests"])
                                                    / max(batches, 1))
                            rows.append((think, n, label, model.label, result))
                            if several:
                                pause(proc, True)
        finally:
            for _, proc, _ in up:
                stop_server(proc)
    if several:
        for model in models:
            source_of = f"{SHIPPED} at {model.rev} (commit {commit_of(model.rev)})" if model.rev else str(model.path)
            print(f"model {model.label}: {source_of}")
    if latency:
        print_latency(*latency, width)
    if not rows:
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; {args.seconds:.0f} s per row"
          + (f", models alternating, {args.rounds} round(s)" if several else ""))
    print("CPU ms per reply: srv the server process, dec its decoder processes, cli this load generator; "
          "idle: the machine's idle share")
    model_col = f"{'model':<{width}} " if several else ""
    print(f"{'think ms':>8} {'customers':>9} {'batching':>8} {model_col}{'replies/s':>10} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'errors':>7} {'batch':>6} {'srv':>5} {'dec':>5} {'cli':>5} {'idle':>5}")
    order = {label: i for i, (label, *_) in enumerate(servers)}
    # Stable sort: within one (think, customers, server) the rows stay in the order they ran.
    for think, n, label, name, r in sorted(rows, key=lambda row: (row[0], row[1], order[row[2]])):
        model_cell = f"{name:<{width}} " if several else ""
        print(f"{think:>8.0f} {n:>9} {label:>8} {model_cell}{r['replies_s']:>10.1f} {r['p50_ms']:>8.1f} "
              f"{r['p95_ms']:>8.1f} {r['errors']:>7} {r['mean_batch']:>6.1f} {r['server_ms']:>5.2f} "
              f"{r['decoder_ms']:>5.2f} {r['client_ms']:>5.2f} {r['idle_pct']:>4.0f}%")

    def median(think: float, n: int, label: str, name: str) -> dict[str, float] | None:
        """The figures of one row over its rounds (median of each), None when the row did not run."""
        runs = [r for t, c, s, m, r in rows if (t, c, s, m) == (think, n, label, name)]
        return {key: statistics.median(r[key] for r in runs) for key in runs[0]} if runs else None

    for model in models:
        prefix = f"{model.label}: " if several else ""
        for think in paces:
            for n in args.customers:
                name = "serial" if median(think, n, "serial", model.label) else "off"
                base = median(think, n, name, model.label)
                if base is None or not base["replies_s"]:
                    continue
                for label, *_ in servers:
                    if label.startswith("on"):
                        r = median(think, n, label, model.label)
                        print(f"{prefix}think {think:.0f} ms, {n} customers: {label} replies/s "
                              f"x{r['replies_s'] / base['replies_s']:.2f} of {name}; "
                              f"p95 {r['p95_ms']:.0f} vs {base['p95_ms']:.0f} ms")
                        cpu_ms = r["server_ms"] + r["decoder_ms"] + r["client_ms"]
                        if not think and cpu_ms > 0:  # saturated: CPU per reply sets the ceiling
                            cap = (os.cpu_count() or 1) * 1000 / cpu_ms
                            print(f"    {cpu_ms:.2f} CPU ms per reply: at most {cap:.0f} replies/s with every core "
                                  f"busy (x{cap / base['replies_s']:.2f} of {name})")
    if several:
        base_model = models[0].label
        for think in paces:
            for n in args.customers:
                for label, *_ in servers:
                    base = median(think, n, label, base_model)
                    for model in models[1:]:
                        r = median(think, n, label, model.label)
                        print(f"think {think:.0f} ms, {n} customers, {label}: {model.label} vs {base_model}: "
                              f"replies/s {r['replies_s']:.1f} vs {base['replies_s']:.1f} "
                              f"x{ratio(r['replies_s'], base['replies_s']):.2f}, p95 {r['p95_ms']:.0f} vs "
                              f"{base['p95_ms']:.0f} ms x{ratio(r['p95_ms'], base['p95_ms']):.2f} (new/old), "
                              f"errors {r['errors']:.0f} vs {base['errors']:.0f}")


if __name__ == "__main__":
    main()
