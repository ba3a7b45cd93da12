"""Reply generation in a child process, so decoding and the web threads do not share one interpreter lock.

In a single server process the generation worker and the HTTP / database threads take turns on Python's
GIL: beam search issues thousands of small tensor ops per batch, each needing the lock, and SQLAlchemy and
FastAPI need it for everything. Profiled under 20 back-to-back customers (py-spy), the whole server used
0.97 of the machine's 2 cores. A :class:`ProcessGenerator` runs the :class:`ReplyGenerator` in a spawned
child with its own interpreter and torch threads; the parent sends it a batch of contexts and gets the
replies back (plain picklable values), so the worker thread in the parent only waits on a pipe.

It has the ``Generator`` shape the :class:`~chatbot.service.batching.GenerationWorker` expects, so batching,
busy answers and hot reload work unchanged: a reload starts a new child and the worker closes the old one.
A child that dies (killed, out of memory) fails the batch it was decoding and is started again for the next.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any

from chatbot.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0  # importing torch and loading a checkpoint on a busy machine


class DecoderProcessError(RuntimeError):
    """The child could not start, or died while decoding."""


def _child_main(conn: Connection, model_path: str, settings: Settings) -> None:
    """The child: load once, then answer ("generate", contexts, language) until ("stop",) or EOF."""
    try:
        from chatbot.service.models import ModelRef, load_generator

        generator = load_generator(ModelRef(None, model_path), settings)
        conn.send(("ready", None))
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


class ProcessGenerator:
    """``generate(contexts, language)`` answered by a model loaded in a child process."""

    def __init__(self, model_path: str, settings: Settings) -> None:
        self.model_path, self.settings = model_path, settings
        self._lock = threading.Lock()  # one batch in flight per child
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fork would copy the parent's threads and locks
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_child_main, args=(child, self.model_path, self.settings),
                              name="chatbot-decoder", daemon=True)
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            raise DecoderProcessError(f"the decoder process did not load {self.model_path} "
                                      f"within {START_TIMEOUT_S:.0f} s")
        try:
            kind, detail = parent.recv()
        except EOFError:
            process.join(5)
            kind, detail = "error", f"it exited with status {process.exitcode}"
        if kind != "ready":
            process.join(5)
            raise DecoderProcessError(f"the decoder process could not load {self.model_path}: {detail}")
        self._conn, self._process = parent, process
        log.info("decoder process %s serves %s", process.pid, self.model_path)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def generate(self, contexts: list[list[tuple[str, str]]], language: str | None = None) -> list[Any]:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                log.warning("decoder process for %s is gone; starting a new one", self.model_path)
                self._start()
            assert self._conn is not None
            try:
                self._conn.send(("generate", contexts, language))
                kind, payload = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                self._process = None  # restarted by the next call
                raise DecoderProcessError("the decoder process died while decoding this batch") from exc
        if kind == "error":
            raise ValueError(payload)
        return payload

    def close(self) -> None:
        """Stop the child (the worker calls this when a reload replaces it, and at shutdown)."""
        with self._lock:
            process, conn, self._process, self._conn = self._process, self._conn, None, None
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
