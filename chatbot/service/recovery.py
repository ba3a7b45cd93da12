"""No customer is left without an answer: a sweep over stored customer messages that never got one.

A message is stored in one transaction and answered in another; a database fault, a killed process or a
restart between the two leaves it unanswered (and its sender was told 503). Each server sweeps once when
it starts and then every ``settings.unanswered_sweep_s``: a bot conversation whose newest message is a
customer's, older than ``settings.unanswered_grace_s`` (longer than any answer takes), is answered now or,
when the bot cannot, handed to a person (``ChatService.answer_unanswered``). Replicas may sweep at once:
the answer is written only while the message is still unanswered, under the conversation's row lock.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from chatbot.service.chat import ChatService
from chatbot.store import conversations as repo
from chatbot.store.models import utcnow

log = logging.getLogger(__name__)


class RecoverySweeper:
    def __init__(self, service: ChatService, batch: int = 100) -> None:
        self.service = service
        self.grace = timedelta(seconds=service.settings.unanswered_grace_s)
        self.every_s = service.settings.unanswered_sweep_s
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> int:
        """Answer or hand off what is waiting now; returns how many messages were dealt with."""
        with self.service.store.transaction(read_only=True) as s:
            waiting = repo.unanswered_customer_messages(s, utcnow() - self.grace, self.batch)
        done = 0
        for conversation_id, seq in waiting:
            if self._stop.is_set():
                break
            result = self.service.answer_unanswered(conversation_id, seq)
            if result is not None:
                done += 1
                log.info("recovered conversation %s: %s", conversation_id,
                         "answered" if result.reply else result.handoff or result.status)
        return done

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="unanswered-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except Exception as exc:  # noqa: BLE001 - the database is down: the next sweep tries again
                log.warning("unanswered-message sweep failed: %s", exc)
            self._stop.wait(self.every_s)
