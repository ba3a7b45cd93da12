"""One generation worker for the whole process: dynamic batching and hot reload.

Requests from every conversation go into one bounded queue. A batch thread takes the first waiting
request, keeps collecting until ``max_batch`` requests or ``max_wait_ms`` have passed, and decodes them
together, since one batched beam search costs little more than one. With ``decoders > 1`` that many batch
threads share the queue, so the next batch gathers and starts while the previous one is still decoding
(on a model that can decode several batches at once: a pool of decoder processes). A full queue answers
``Busy`` at once instead of letting callers hang. Between batches the worker asks which model should be
serving; when that changes it loads the new one in the background, warms it (``warm``: a few representative
decodes in each language it serves, see ``chatbot.service.warmup``) and only then swaps it in at a batch
boundary, so the old model answers while the new one loads and warms, no customer pays for the new model's
first decodes, requests already being decoded finish on the model they started with and none are dropped;
the replaced model is closed once no batch is decoding on it any more. ``model_events`` records each model's
"loaded", "warmed" and "live" moments, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chatbot.settings import Settings

log = logging.getLogger(__name__)

Turn = tuple[str, str]  # (role, text)


class Generator(Protocol):
    """What the worker needs from a model: ``chatbot.service.generator.ReplyGenerator`` fits."""

    def generate(self, contexts: list[list[Turn]], language: str | None = None) -> list[Any]: ...


class Busy(Exception):
    """The generation queue is full; the caller should answer "busy, try again" rather than wait."""


class NoModel(Exception):
    """No model is configured or the configured one could not be loaded."""


@dataclass(frozen=True)
class Generated:
    """A reply and the model that wrote it (``model_key`` is a registry version id or a path)."""

    reply: Any
    model_key: Hashable


@dataclass
class _Request:
    context: list[Turn]
    language: str | None
    future: Future[Generated]
    enqueued_at: float


def _close(generator: Generator) -> None:
    """Release a generator's resources (a decoder process) if it holds any."""
    close = getattr(generator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("could not close a replaced model")


ModelLoader = Callable[[Hashable], Generator]
KeySource = Callable[[], Hashable | None]
KeysSource = Callable[[], Sequence[Hashable]]
Warmer = Callable[[Generator], Any]


@dataclass(frozen=True)
class LoadFailure:
    """The model that should serve could not be loaded (or failed its check); ``reason`` is for admins."""

    key: Hashable
    reason: str


@dataclass(frozen=True)
class ModelEvent:
    """A step in a model's way to serving: ``loaded``, ``warmed`` (``detail``: the warm-up report), ``live``."""

    kind: str
    key: Hashable
    at: float  # time.monotonic()
    detail: Any = None


class GenerationWorker:
    """Thread that batches ``submit`` calls into ``Generator.generate`` calls.

    ``current_key()`` says which model should serve (``None``: none configured); ``load(key)`` builds it.
    ``max_batch=1`` turns batching off (one request at a time), which the benchmark compares against.
    ``decoders`` batches may be decoding at once; the model must then accept concurrent ``generate`` calls.
    ``warm(generator)`` runs on every loaded model before it serves (``from_settings`` passes
    ``chatbot.service.warmup.warm_up``; ``None`` serves models cold, as the scripted test models are).
    """

    def __init__(
        self,
        load: ModelLoader,
        current_key: KeySource,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        queue_max: int = 256,
        reload_poll_s: float = 1.0,
        decoders: int = 1,
        warm: Warmer | None = None,
        check: Warmer | None = None,
        fallbacks: KeysSource | None = None,
    ) -> None:
        if max_batch < 1 or queue_max < 1 or decoders < 1:
            raise ValueError("max_batch, queue_max and decoders must be at least 1")
        self._load = load
        self._warm = warm
        self._check = check
        self._fallbacks = fallbacks
        # Set while the model that should serve cannot: the worker then serves the last one that loads.
        self.load_failure: LoadFailure | None = None
        self._current_key = current_key
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.reload_poll_s = reload_poll_s
        self.decoders = decoders
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=queue_max)
        self._model: tuple[Hashable, Generator] | None = None
        self._pending: tuple[Hashable, Generator] | None = None  # loaded in the background, not yet live
        self._loading: Hashable | None = None
        self._failed_key: Hashable | None = None
        self._lock = threading.Lock()  # guards the model slots, the in-use counts and the counters
        self._reload_lock = threading.Lock()  # one batch thread at a time asks for the active model
        self._in_use: dict[int, int] = {}  # id(generator) -> batches decoding on it now
        self._retired: list[Generator] = []  # replaced models still decoding: closed when idle
        self._last_poll = 0.0
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.batches = 0
        self.batched_requests = 0
        self.model_events: deque[ModelEvent] = deque(maxlen=64)

    @classmethod
    def from_settings(cls, load: ModelLoader, current_key: KeySource, settings: Settings,
                      **overrides: Any) -> GenerationWorker:
        """A worker sized by the serving settings (batch size and wait, queue, decoders, warm-up); not started."""
        from chatbot.service.smoke import smoke_test
        from chatbot.service.warmup import warm_up

        options: dict[str, Any] = {"max_batch": settings.batch_max_size, "max_wait_ms": settings.batch_max_wait_ms,
                                   "queue_max": settings.queue_max_size, "decoders": settings.decoders,
                                   "warm": warm_up if settings.model_warmup else None, "check": smoke_test}
        return cls(load, current_key, **{**options, **overrides})

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> GenerationWorker:
        """Load the current model, else the first fallback that loads, and start the threads.

        A model that cannot load never takes the app down: the failure is kept in ``load_failure`` (shown
        to admins and in the health check) and the worker serves the last good version meanwhile, or
        answers ``NoModel`` when none loads."""
        key = self._current_key()
        if key is not None:
            self._start_with(key)
        self._last_poll = time.monotonic()
        self._threads = [threading.Thread(target=self._run, name=f"generation-worker-{i}", daemon=True)
                         for i in range(self.decoders)]
        for thread in self._threads:
            thread.start()
        return self

    def _start_with(self, key: Hashable) -> None:
        try:
            self._model = (key, self._ready(key))
        except Exception as exc:  # logged and reported; a fallback serves
            log.exception("could not load model %s at start-up", key)
            self._failed_key = key
            self.load_failure = LoadFailure(key, f"{type(exc).__name__}: {exc}")
        else:
            self._event("live", key)
            return
        for fallback in self._fallbacks() if self._fallbacks is not None else ():
            if fallback == key:
                continue
            try:
                self._model = (fallback, self._ready(fallback))
            except Exception:  # try the one before it
                log.exception("could not load fallback model %s either", fallback)
                continue
            self._event("live", fallback)
            log.warning("serving %s instead of %s, which cannot load", fallback, key)
            return
        log.error("no model could be loaded; answering 'no model' until one that loads is promoted")

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then end the threads."""
        if not self._threads:
            return
        self._stopping.set()
        for _ in self._threads:  # one end marker per thread: each ends on the first it takes
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        with self._lock:
            models = [m[1] for m in (self._model, self._pending) if m is not None] + self._retired
            self._model, self._pending, self._retired = None, None, []
        for model in models:
            _close(model)

    def __enter__(self) -> GenerationWorker:  # noqa: PYI034 - start() returns self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public API ----------------------------------------------------------------------------
    @property
    def model_key(self) -> Hashable | None:
        """The model that the next batch will use."""
        return self._model[0] if self._model else None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, context: Sequence[Turn], language: str | None = None) -> Future[Generated]:
        """Queue one context; raises ``Busy`` when the queue is full and ``RuntimeError`` when stopped."""
        if not self._threads or self._stopping.is_set():
            raise RuntimeError("generation worker is not running")
        request = _Request(list(context), language, Future(), time.monotonic())
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise Busy("the assistant is busy right now; please try again in a moment") from None
        return request.future

    def generate(self, context: Sequence[Turn], language: str | None = None, timeout: float = 60.0) -> Generated:
        """Blocking ``submit``."""
        return self.submit(context, language).result(timeout)

    # --- worker thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            if batch:
                self._decode(batch)

    def _collect(self) -> list[_Request] | None:
        """Block for the first request, then gather more until the batch is full or the wait is over."""
        try:
            first = self._queue.get(timeout=self.reload_poll_s)
        except queue.Empty:
            self._maybe_reload()
            return []
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop requested: decode what we have, then end (on the marker put back)
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _decode(self, batch: list[_Request]) -> None:
        self._maybe_reload()
        with self._lock:
            live = self._model
            if live is not None:
                self._in_use[id(live[1])] = self._in_use.get(id(live[1]), 0) + 1
        if live is None:
            error = NoModel("no model is active; ask an admin to promote one")
            for request in batch:
                request.future.set_exception(error)
            return
        try:
            self._decode_on(live, batch)
        finally:
            with self._lock:
                self._in_use[id(live[1])] -= 1
                self.batches += 1
                self.batched_requests += len(batch)
            self._close_retired()

    def _decode_on(self, live: tuple[Hashable, Generator], batch: list[_Request]) -> None:
        key, generator = live
        by_language: dict[str | None, list[_Request]] = {}
        for request in batch:
            if request.future.set_running_or_notify_cancel():
                by_language.setdefault(request.language, []).append(request)
        for language, group in by_language.items():
            try:
                replies = generator.generate([r.context for r in group], language=language)
            except Exception as exc:  # one bad batch must not kill the worker
                log.exception("generation failed for a batch of %d", len(group))
                for request in group:
                    request.future.set_exception(exc)
                continue
            for request, reply in zip(group, replies):
                request.future.set_result(Generated(reply, key))

    # --- hot reload ---------------------------------------------------------------------------------
    def _maybe_reload(self) -> None:
        with self._reload_lock:
            self._poll_model()

    def _poll_model(self) -> None:
        self._swap_in_pending()
        now = time.monotonic()
        if self._model is not None and now - self._last_poll < self.reload_poll_s:
            return
        self._last_poll = now
        try:
            key = self._current_key()
        except Exception:
            log.exception("could not read the active model; keeping the current one")
            return
        if key == self.model_key:
            self.load_failure = None  # e.g. rolled back to the version served as a fallback
        if key is None or key == self.model_key or key == self._loading or key == self._failed_key:
            return
        if self._model is None:  # nothing to serve with meanwhile: load in line
            self._load_into_pending(key)
            self._swap_in_pending()
            return
        self._loading = key
        threading.Thread(target=self._load_into_pending, args=(key,), name="model-loader", daemon=True).start()

    def _swap_in_pending(self) -> None:
        with self._lock:
            if self._pending is None:
                return
            old, self._model, self._pending = self._model, self._pending, None
            self._event("live", self._model[0])
            log.info("now serving model %s", self._model[0])
            if old is not None and old[1] is not self._model[1]:  # batches on it finish; closed once none is left
                self._retired.append(old[1])
        self._close_retired()

    def _close_retired(self) -> None:
        with self._lock:
            idle = [g for g in self._retired if not self._in_use.get(id(g))]
            self._retired = [g for g in self._retired if self._in_use.get(id(g))]
            for generator in idle:
                self._in_use.pop(id(generator), None)
        for generator in idle:
            _close(generator)

    def _event(self, kind: str, key: Hashable, detail: Any = None) -> None:
        self.model_events.append(ModelEvent(kind, key, time.monotonic(), detail))

    def _ready(self, key: Hashable) -> Generator:
        """Load ``key`` and warm it: what a model goes through before it may serve."""
        generator = self._load(key)
        self._event("loaded", key)
        if self._warm is not None:
            try:
                report = self._warm(generator)
            except BaseException:
                _close(generator)
                raise
            self._event("warmed", key, report)
            log.info("model %s warmed up: %s", key, report)
        if self._check is not None:
            try:
                self._check(generator)
            except BaseException:
                _close(generator)
                raise
        return generator

    def _load_into_pending(self, key: Hashable) -> None:
        try:
            generator = self._ready(key)
        except Exception as exc:  # reported; the current model keeps serving
            log.exception("could not load model %s; keeping the current one", key)
            self._failed_key = key
            self.load_failure = LoadFailure(key, f"{type(exc).__name__}: {exc}")
        else:
            with self._lock:
                self._pending = (key, generator)
            self._failed_key = None
            self.load_failure = None
        finally:
            self._loading = None
