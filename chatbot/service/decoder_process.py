"""Reply generation in a child process, so decoding and the web threads do not share one interpreter lock.

In a single server process the generation worker and the HTTP / database threads take turns on Python's
GIL: beam search issues thousands of small tensor ops per batch, each needing the lock, and SQLAlchemy and
FastAPI need it for everything. Profiled under 20 back-to-back customers (py-spy), the whole server used
0.97 of the machine's 2 cores. A :class:`ProcessGenerator` runs the :class:`ReplyGenerator` in a spawned
child with its own interpreter and torch threads; the parent sends it a batch of contexts and gets the
replies back (plain picklable values), so the worker thread in the parent only waits on a pipe.

It has the ``Generator`` shape the :class:`~chatbot.service.batching.GenerationWorker` expects, so batching,
busy answers and hot reload work unchanged: a reload starts new children and the worker closes the old ones.
With ``processes > 1`` it is a pool: each call decodes on whichever child is free, so a worker with as
many batch threads decodes that many batches at once (one core each). A child that dies (killed, out of
memory) fails the batch it was decoding and is started again for the next.

Each child warms its model (``chatbot.service.warmup.warm_up``: a conversation alone and a small batch in
every language the model serves; ``settings.model_warmup``) before it reports ready, so a new pool, a
hot-switched model or a child started again after a crash never makes a customer wait for its first, slow
decodes. Warming inside each child is the only way to reach every child: calls from the parent go to
whichever child is free.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
from multiprocessing.connection import Connection
from typing import Any

from chatbot.service.warmup import WarmUp
from chatbot.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0  # importing torch and loading a checkpoint on a busy machine
CLOSE_TIMEOUT_S = 60.0  # longer than any batch takes


class DecoderProcessError(RuntimeError):
    """The child could not start, or died while decoding."""


def _child_main(conn: Connection, model_path: str, settings: Settings) -> None:
    """The child: load and warm up once, then answer ("generate", contexts, language) until ("stop",) or EOF."""
    try:
        from chatbot.service.generator import serving_generator  # torch loads in the child, not the parent
        from chatbot.service.warmup import warm_up

        generator = serving_generator(model_path, settings)
        conn.send(("ready", warm_up(generator).to_dict() if settings.model_warmup else None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if message[0] == "stop":
            return
        _, contexts, language = message
        try:
            conn.send(("ok", generator.generate(contexts, language=language)))
        except Exception as exc:  # noqa: BLE001 - a bad batch is the caller's error, the child lives on
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Child:
    """One decoder process and the parent's end of its pipe; used by one batch at a time."""

    def __init__(self, model_path: str, settings: Settings) -> None:
        self.model_path, self.settings = model_path, settings
        self.conn: Connection | None = None
        self.process: multiprocessing.process.BaseProcess | None = None
        self.warmup: WarmUp | None = None  # the last start's warm-up, reported with "ready"

    def spawn(self) -> None:
        """Start the process without waiting for it to load (several children load side by side)."""
        ctx = multiprocessing.get_context("spawn")  # a fork would copy the parent's threads and locks
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_child_main, args=(child, self.model_path, self.settings),
                              name="chatbot-decoder", daemon=True)
        process.start()
        child.close()
        self.conn, self.process = parent, process

    def wait_ready(self) -> None:
        conn, process = self.conn, self.process
        assert conn is not None and process is not None
        if not conn.poll(START_TIMEOUT_S):
            self.stop()
            raise DecoderProcessError(f"the decoder process did not load {self.model_path} "
                                      f"within {START_TIMEOUT_S:.0f} s")
        try:
            kind, detail = conn.recv()
        except EOFError:
            process.join(5)
            kind, detail = "error", f"it exited with status {process.exitcode}"
        if kind != "ready":
            self.stop()
            raise DecoderProcessError(f"the decoder process could not load {self.model_path}: {detail}")
        self.warmup = WarmUp.from_dict(detail) if detail is not None else None
        log.info("decoder process %s serves %s (warmed up: %s)", process.pid, self.model_path, self.warmup)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def generate(self, contexts: list[list[tuple[str, str]]], language: str | None) -> tuple[str, Any]:
        if not self.alive:
            log.warning("decoder process for %s is gone; starting a new one", self.model_path)
            self.stop()
            self.spawn()
            self.wait_ready()
        assert self.conn is not None
        try:
            self.conn.send(("generate", contexts, language))
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self.stop()  # restarted by the next call
            raise DecoderProcessError("the decoder process died while decoding this batch") from exc

    def stop(self) -> None:
        process, conn, self.process, self.conn = self.process, self.conn, None, None
        if process is None:
            return
        try:
            if conn is not None:
                conn.send(("stop",))
        except OSError:
            pass
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
        if conn is not None:
            conn.close()


class ProcessGenerator:
    """``generate(contexts, language)`` answered by a model loaded in ``processes`` child processes; up to
    that many calls run at once, each on a child of its own."""

    def __init__(self, model_path: str, settings: Settings, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("a decoder pool needs at least one process")
        self.model_path, self.settings = model_path, settings
        self._children = [_Child(model_path, settings) for _ in range(processes)]
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._closed = False
        try:
            for child in self._children:
                child.spawn()
            for child in self._children:
                child.wait_ready()
        except BaseException:
            for child in self._children:
                child.stop()
            raise
        for child in self._children:
            self._idle.put(child)

    @property
    def warmed(self) -> WarmUp:
        """The children's warm-ups before they reported ready (``warm_up`` returns it instead of decoding)."""
        return WarmUp.total([c.warmup for c in self._children if c.warmup is not None])

    @property
    def pids(self) -> list[int]:
        """The children's process ids (an empty list once closed)."""
        return [c.process.pid for c in self._children if c.process is not None and c.process.pid is not None]

    @property
    def pid(self) -> int | None:
        """The first child's process id, ``None`` once closed."""
        pids = self.pids
        return pids[0] if pids else None

    def generate(self, contexts: list[list[tuple[str, str]]], language: str | None = None) -> list[Any]:
        child = self._take()
        try:
            kind, payload = child.generate(contexts, language)
        finally:
            self._idle.put(child)
        if kind == "error":
            raise ValueError(payload)
        return payload

    def _take(self) -> _Child:
        """A free child: the worker runs at most one batch per child, so this is no long wait."""
        while not self._closed:
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                continue
        raise DecoderProcessError(f"the decoder processes for {self.model_path} are stopped")

    def close(self) -> None:
        """Stop the children (the worker calls this once no batch decodes on them: after a reload, at
        shutdown)."""
        self._closed = True
        stopped = 0
        try:
            while stopped < len(self._children):  # a batch still decoding finishes first
                self._idle.get(timeout=CLOSE_TIMEOUT_S).stop()
                stopped += 1
        except queue.Empty:
            log.warning("a decoder process of %s was still busy after %.0f s; stopping it anyway",
                        self.model_path, CLOSE_TIMEOUT_S)
        for child in self._children:
            child.stop()
