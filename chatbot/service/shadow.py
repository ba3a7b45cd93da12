"""Shadow testing: a registered candidate answers a sample of live customer messages in the background.

Its replies are stored beside the active model's (``shadow_replies``) and never sent. Agents review the
active replies as usual, so for each candidate ``/admin`` can set how often agents approved the active reply
against how close the candidate came to what they finally wrote, before anyone promotes it.

Shadow work never costs a customer anything:

* sampled (``settings.shadow_share`` of the messages the bot answers) and offered without blocking;
* dropped, not queued, when its small queue (``settings.shadow_queue_size``) is full or when customers are
  waiting for the decoder (``busy()``: the generation worker's queue is not empty);
* one shadow decode at a time, on one thread, in a decoder process of its own (or the thread itself when
  ``settings.decode_process`` is off) run at the lowest CPU priority, so the OS gives the customers'
  decoders the cores first.

Which version is shadowed lives in the database (``chatbot.store.shadow``), chosen by an admin; the worker
polls it like the generation worker polls the active model, so every replica follows.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatbot.service.auth import Principal
from chatbot.service.models import ModelRef, load_generator
from chatbot.service.similarity import chrf
from chatbot.settings import Settings
from chatbot.store import registry
from chatbot.store import shadow as repo
from chatbot.store.manager import ConversationStore

log = logging.getLogger(__name__)

LOWEST_PRIORITY = 19  # nice value


@dataclass(frozen=True)
class ShadowJob:
    conversation_id: int
    customer_seq: int  # the customer message answered; the bot reply is the next message
    context: list[tuple[str, str]]  # what the active model was given
    language: str | None
    active_version_id: int | None


def _lower_priority(pid: int) -> None:
    """Nice a process or (Linux) a thread id; harmless where the OS does not allow it."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, LOWEST_PRIORITY)
    except (AttributeError, OSError):
        pass


def load_shadow(ref: ModelRef, settings: Settings) -> Any:
    """The candidate in one low-priority decoder process (in the calling thread without ``decode_process``)."""
    if settings.decode_process:
        from chatbot.service.decoder_process import ProcessGenerator

        generator = ProcessGenerator(ref.path, settings, processes=1)
        for pid in generator.pids:
            _lower_priority(pid)
        return generator
    return load_generator(ref, settings)


class ShadowWorker:
    """One background thread decoding sampled customer contexts with the shadowed version.

    ``busy()`` says customers are waiting for the decoder; ``rng`` draws the sample (tests pass a seeded
    one); ``load(ref)`` builds the candidate's generator.
    """

    def __init__(self, store: ConversationStore, settings: Settings, busy: Callable[[], bool] = lambda: False,
                 load: Callable[[ModelRef], Any] | None = None, poll_s: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self.store, self.settings, self.busy = store, settings, busy
        self.share = settings.shadow_share
        self._load = load or (lambda ref: load_shadow(ref, settings))
        self.poll_s = poll_s
        self._rng = rng or random.Random()
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=settings.shadow_queue_size)
        self._model: tuple[ModelRef, Any] | None = None
        self._target: ModelRef | None = None  # the shadowed version as last read from the store
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.offered = self.dropped = self.decoded = self.skipped = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> ShadowWorker:
        if self.share <= 0:
            return self  # shadow testing off: no thread, every offer is ignored
        self._refresh_target()
        self._thread = threading.Thread(target=self._run, name="shadow-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._thread = None
        self._switch(None)

    @property
    def target(self) -> ModelRef | None:
        return self._target

    # --- the customer's side: never blocks ------------------------------------------------------------
    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job`` if it is sampled and there is room; ``False`` when it is not taken."""
        target = self._target
        if self._thread is None or target is None or target.version_id == job.active_version_id:
            return False
        if self._rng.random() >= self.share:
            return False
        self.offered += 1
        if self.busy():
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every taken job is decoded or dropped (tests, shutdown); ``False`` on timeout."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # --- the worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        _lower_priority(threading.get_native_id())  # Linux: this thread alone
        while not self._stopping.is_set():
            try:
                job = self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                job, taken = None, False
            else:
                taken = True
            try:
                if job is None and self._stopping.is_set():
                    break
                self._refresh_target()
                self._switch(self._target)
                if job is not None:
                    self._decode(job)
            except Exception:  # a shadow failure is only logged: customers never depend on it
                log.exception("shadow decode failed")
                self.skipped += 1
            finally:
                if taken:
                    self._queue.task_done()

    def _refresh_target(self) -> None:
        try:
            with self.store.transaction(read_only=True) as s:
                version = repo.shadowed_version(s)
                self._target = ModelRef(version.id, version.path) if version is not None else None
        except Exception:
            log.exception("could not read the shadowed model version")

    def _switch(self, target: ModelRef | None) -> None:
        current = self._model[0] if self._model else None
        if target == current:
            return
        if self._model is not None:
            close = getattr(self._model[1], "close", None)
            self._model = None
            if close is not None:
                close()
        if target is not None:
            self._model = (target, self._load(target))
            log.info("shadowing model %s", target)

    def _decode(self, job: ShadowJob) -> None:
        if self._model is None or self._model[0].version_id == job.active_version_id:
            self.skipped += 1  # shadowing stopped, or the shadowed version was promoted meanwhile
            return
        if self.busy():  # customers came in while it waited: they go first
            self.dropped += 1
            return
        ref, generator = self._model
        for pid in getattr(generator, "pids", []):  # a decoder process started again after a crash
            _lower_priority(pid)
        reply = generator.generate([job.context], language=job.language)[0]
        score = float(reply.candidates[0][1]) if reply.candidates else 0.0
        with self.store.transaction() as s:
            message = repo.bot_reply_after(s, job.conversation_id, job.customer_seq)
            if message is None or message.model_version_id == ref.version_id:
                self.skipped += 1  # no bot reply to stand beside (an agent took over), or the candidate wrote it
                return
            repo.store_shadow_reply(s, message.id, ref.version_id, reply.text or "", score)  # type: ignore[arg-type]
        self.decoded += 1


@dataclass(frozen=True)
class ShadowStats:
    """One shadowed version against the active replies it shadowed, judged by the agents' reviews."""

    version_id: int
    name: str
    status: str
    shadowing: bool  # shadowed now
    shadowed: int  # shadow replies stored
    reviewed: int  # of those, the active reply has an agent's review
    approved_share: float | None  # reviewed active replies agents approved as they were
    corrected: int  # reviewed with a final agent text (approve or edit); reject has none
    candidate_chrf: float | None  # mean chrF of the shadow reply against what agents finally wrote
    active_chrf: float | None  # the same for the active reply (100 where approved as is)


def shadow_stats(rows: list[repo.ShadowRow], versions: dict[int, tuple[str, str, bool]]) -> list[ShadowStats]:
    """Per version (``versions``: id -> name, status, shadowed now), newest version first; a version being
    shadowed is listed even before its first reply."""
    by_version: dict[int, list[repo.ShadowRow]] = {}
    for row in rows:
        by_version.setdefault(row.model_version_id, []).append(row)
    out = []
    for version_id in sorted(set(by_version) | {v for v, (_, _, on) in versions.items() if on}, reverse=True):
        mine = by_version.get(version_id, [])
        reviewed = [r for r in mine if r.action is not None]
        finals = [(r, r.corrected_text if r.action == "edit" else r.active_text)
                  for r in reviewed if r.action in ("approve", "edit") and (r.action == "approve" or r.corrected_text)]
        name, status, on = versions.get(version_id, ("?", "?", False))
        out.append(ShadowStats(
            version_id, name, status, on, len(mine), len(reviewed),
            sum(r.action == "approve" for r in reviewed) / len(reviewed) if reviewed else None, len(finals),
            sum(chrf(r.shadow_text, final) for r, final in finals) / len(finals) if finals else None,
            sum(chrf(r.active_text, final) for r, final in finals) / len(finals) if finals else None))
    return out


class ShadowService:
    """Choose the shadowed version and read its results; admins only (the promotion is ``ChatService.set_model``)."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store

    def set_shadow(self, who: Principal, version_id: int | None) -> str:
        who.require("admin")
        with self.store.transaction() as s:
            version = repo.set_shadow(s, version_id, actor_id=who.user_id)
            if version is None:
                return "Shadow testing is off: no version is shadowed."
            return f"{version.name} (version {version.id}) now shadows the active model."

    def stats(self, who: Principal) -> list[ShadowStats]:
        who.require("admin")
        with self.store.transaction(read_only=True) as s:
            versions = {v.id: (v.name, v.status, v.shadowed_at is not None) for v in registry.list_versions(s)}
            return shadow_stats(repo.shadow_rows(s), versions)
