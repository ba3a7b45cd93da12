"""The bot's side of a customer message: decode a reply, check its details, write it or hand off.

Shared by the customer's send, the recovery of unanswered messages (``chatbot.service.customer``) and the
agents' suggested replies (``chatbot.service.desk``). Generation runs outside any transaction (it takes
tens of ms and must not hold a row lock); the reply is then written in one statement that checks the bot
still owns the conversation, so an agent who took over while it was decoded never sees the bot talk after
them. Functions taking a ``Session`` run inside the caller's transaction and never commit.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from chatbot.service.batching import Busy, GenerationWorker, NoModel
from chatbot.service.grounding import Grounder, GroundingSources, GroundingVerdict, choose
from chatbot.service.handoff import HandoffReason, HandoffRules, decide, notice, repeats
from chatbot.service.views import MessageView, SendResult
from chatbot.settings import Settings
from chatbot.store import conversations as repo
from chatbot.store.db import IllegalTransition
from chatbot.store.models import Message, customer_sees

log = logging.getLogger(__name__)

GENERATION_TIMEOUT_S = 30.0

# What a stored customer message needs to be answered: the message, the model's context, the
# conversation's language and the grounding sources (None when grounding is off).
Pending = tuple[MessageView, list[tuple[str, str]], str, GroundingSources | None]


class Replies:
    def __init__(self, settings: Settings, worker: GenerationWorker | None) -> None:
        self.settings = settings
        self.worker = worker
        self.rules = HandoffRules.of(settings)
        self.grounding = Grounder(settings.grounding_margin) if settings.grounding else None

    # --- outside any transaction -----------------------------------------------------------------
    def generate(self, context: list[tuple[str, str]], language: str | None) -> Any:
        if self.worker is None:
            raise Busy("no reply generator is running")
        future = self.worker.submit(context, language)
        try:
            return future.result(GENERATION_TIMEOUT_S)
        except FutureTimeout:
            future.cancel()
            raise Busy("the assistant took too long to answer; please try again") from None
        except (Busy, NoModel):
            raise
        except Exception as exc:
            log.exception("generation failed")
            raise Busy("the assistant could not answer just now; please try again") from exc

    def ground(self, reply: Any, sources: GroundingSources | None, language: str) -> GroundingVerdict | None:
        """Which candidate may be sent given the details each states (``chatbot.service.grounding``)."""
        if self.grounding is None or sources is None:
            return None
        candidates = [(c_text, float(score)) for c_text, score in reply.candidates]
        return self.grounding.check(candidates, sources, getattr(reply, "language", None) or language)

    # --- inside the caller's transaction -----------------------------------------------------------
    def pending(self, s: Session, conversation_id: int, mine: MessageView, language: str) -> Pending:
        """What to generate the answer to ``mine`` from."""
        sources = self.grounding.sources(s, conversation_id) if self.grounding is not None else None
        return mine, repo.visible_context(s, conversation_id, self.settings.context_turns), language, sources

    def append(self, s: Session, conversation_id: int, role: str, text: str, **fields: Any) -> repo.StoredMessage:
        return repo.store_message(s, conversation_id, role, text, max_chars=self.settings.max_message_chars,
                                  **fields)

    def hand_off(self, s: Session, conversation_id: int, reason: HandoffReason, detail: str | None = None
                 ) -> MessageView:
        """``detail`` (e.g. "ungrounded details: 12 pm") is for the agents: kept in the notice's meta, never
        in the text the customer reads, which is in the conversation's language."""
        conversation = repo.set_status(s, conversation_id, "pending")
        meta = {"handoff": reason.value, **({"reason": detail} if detail else {})}
        text = notice(reason, conversation.language)
        return MessageView.of(repo.store_message(s, conversation_id, "system", text, meta=meta))

    def store(self, s: Session, conversation_id: int, mine: MessageView, text: str, generated: Any,
              verdict: GroundingVerdict | None = None, *, only_if_unanswered: bool = False,
              context: Sequence[tuple[str, str]] = ()) -> SendResult:
        """Write the generated reply to ``mine`` (or a handoff notice); ``text`` is the customer's message,
        ``context`` the turns the reply was generated from (a reply that repeats the last one hands off)."""
        if only_if_unanswered:
            # A retry or the recovery sweep: whoever answers first wins, the others return that answer.
            repo.lock_conversation(s, conversation_id)
            after = repo.messages_after(s, conversation_id, mine.seq)
            if after:
                state = repo.conversation_state(s, conversation_id)
                return result_of(conversation_id, state.status if state else "closed", mine, after)
        reply = generated.reply
        candidates = [(c_text, float(score)) for c_text, score in reply.candidates]
        reason = decide(text, candidates, 0, self.rules, getattr(reply, "token_logprob", None))
        model_version_id = getattr(generated.model_key, "version_id", None)
        fields = {"model_version_id": model_version_id, "decoding": reply.decoding,
                  "confidence": float(reply.confidence), "attention": reply.attention, "candidates": candidates,
                  "max_chars": self.settings.max_message_chars}
        handing_off = reason is HandoffReason.LOW_CONFIDENCE
        reply_text = reply.text
        meta: dict[str, Any] = {"handoff": reason.value} if handing_off else {}
        if verdict is not None:
            meta["grounding"] = verdict.as_meta()
            if verdict.grounded:
                reply_text = candidates[verdict.picked][0]
            elif not handing_off and self.settings.review_mode == "auto":
                # Nothing within the margin is grounded: a person answers (draft mode: it waits as a draft).
                handing_off, reason = True, HandoffReason.UNGROUNDED
                meta["handoff"] = reason.value
        if not handing_off and self.settings.handoff_repeats and repeats(reply_text, context):
            # The customer would read the same words again: another candidate within the margin that says
            # something else (and states nothing ungrounded), else a person (draft mode: the reviewer).
            missing = verdict.ungrounded if verdict is not None else [()] * len(candidates)
            other = choose(candidates, missing, self.settings.grounding_margin,
                           allowed=[not repeats(c_text, context) for c_text, _ in candidates])
            meta["repeat"] = {"avoided": other is not None, "picked": other}
            if other is not None:
                reply_text = candidates[other][0]
            elif self.settings.review_mode == "auto":
                handing_off, reason = True, HandoffReason.REPEATING
                meta["handoff"] = reason.value
        taught = getattr(reply, "taught", None)
        if taught is not None and reply_text == reply.text:
            meta["taught"] = taught  # for the agents: which taught question made this reply the choice
        draft = handing_off or self.settings.review_mode == "draft"
        try:
            # Stored only while the bot still owns the conversation, checked and written in one statement.
            stored = repo.store_message(s, conversation_id, "bot", reply_text or "…", only_in=("bot",),
                                        review_state="draft" if draft else "sent", meta=meta or None, **fields)
        except IllegalTransition:
            # An agent (or a handoff) took the conversation while we were decoding: the bot stays quiet.
            state = repo.conversation_state(s, conversation_id)
            status = state.status if state else "closed"
            log.info("dropped a reply for conversation %s: it is %s now", conversation_id, status)
            return SendResult(conversation_id, status, mine)
        if handing_off:
            detail = verdict.reason() if reason is HandoffReason.UNGROUNDED and verdict is not None else None
            notice = self.hand_off(s, conversation_id, reason, detail)
            return SendResult(conversation_id, "pending", mine, notice=notice, handoff=reason.value)
        if draft:
            return SendResult(conversation_id, "bot", mine, awaiting_review=True)
        return SendResult(conversation_id, "bot", mine, reply=MessageView.of(stored))


def result_of(conversation_id: int, status: str, mine: MessageView, after: list[Message]) -> SendResult:
    """What a customer message got (``after``: the messages that followed it), as ``send`` first said it."""
    reply = notice = None
    awaiting = False
    handoff = None
    for m in after:
        if m.role == "customer":
            break
        if m.role == "bot" and reply is None and not awaiting:
            if customer_sees(m.role, m.review_state):
                reply = MessageView.of(m)
            else:
                awaiting = m.review_state == "draft"
        elif m.role == "system" and notice is None and (m.meta or {}).get("handoff"):
            notice, handoff = MessageView.of(m), str((m.meta or {})["handoff"])
    return SendResult(conversation_id, status, mine, reply=reply, notice=notice,
                      awaiting_review=awaiting and notice is None, handoff=handoff)
