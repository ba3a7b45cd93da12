"""The agent workspace behind ``/agent``: inbox views and search, assignment, the review queue, the model as
the agent's copilot (suggested replies) and saved replies.

Saved replies are the company facts (``chatbot.store.facts``, title / text / language, kept by admins in
``/admin``): the short answers agents send are the same facts the grounding check lets the bot state, so
one list stays true instead of two drifting apart.

What an agent does with the suggestions is training signal: each agent message sent while suggestions were
shown records whether one was sent as it was, edited first, or ignored (``suggestion_uses``), and
``training.export`` puts that on the pair.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

from chatbot.service.auth import Forbidden, Principal
from chatbot.service.batching import Busy, NoModel
from chatbot.service.chat import ChatService
from chatbot.service.views import MessageView
from chatbot.store import audit
from chatbot.store import conversations as repo
from chatbot.store import facts as fact_repo
from chatbot.store import inbox as inbox_repo
from chatbot.store import staff as staff_repo
from chatbot.store.db import IllegalTransition, InvalidValue, NotFound
from chatbot.store.inbox import VIEWS, InboxRow, ReviewItem

log = logging.getLogger(__name__)

VIEW_LABELS = {"waiting": "Waiting for a person", "mine": "Mine", "drafts": "Drafts to review", "bot": "Bot",
               "closed": "Closed"}


@dataclass(frozen=True)
class Suggestion:
    """A reply the console offers: one of the model's n-best (``source="model"``, ``rank`` in the n-best) or
    a saved reply (``source="saved"``, ``fact_id``)."""

    text: str
    source: str = "model"
    rank: int | None = None
    score: float | None = None
    ungrounded: tuple[str, ...] = ()
    fact_id: int | None = None
    title: str | None = None

    @property
    def grounded(self) -> bool:
        return not self.ungrounded


def suggestion_outcome(sent: str, used: Suggestion | None, shown: int) -> dict[str, Any] | None:
    """What to record for an agent message: ``None`` when nothing was suggested, else the keyword arguments
    of ``record_suggestion_use``: ``as_is`` when the text sent is the suggestion (surrounding whitespace
    aside), ``edited`` when the agent changed it, ``ignored`` when they used none."""
    if used is None:
        return {"outcome": "ignored", "shown": shown} if shown > 0 else None
    outcome = "as_is" if sent.strip() == used.text.strip() else "edited"
    return {"outcome": outcome, "source": used.source, "candidate_rank": used.rank, "fact_id": used.fact_id,
            "shown": shown}


def order_suggestions(candidates: list[tuple[str, float]], ungrounded: list[tuple[str, ...]] | None) -> list[Suggestion]:
    """Grounded candidates first, each group by score; empty and repeated texts dropped."""
    out, seen = [], set()
    for rank, (text, score) in enumerate(candidates):
        key = " ".join(text.split()).lower()
        if not key or key in seen:
            continue
        seen.add(key)
        missing = tuple(ungrounded[rank]) if ungrounded and rank < len(ungrounded) else ()
        out.append(Suggestion(text, "model", rank, float(score), missing))
    return sorted(out, key=lambda s: (not s.grounded, -(s.score or 0.0), s.rank or 0))


class Workspace:
    """Agent-workspace reads and actions, each authorised and in its own transaction."""

    def __init__(self, service: ChatService, cache_size: int = 128) -> None:
        self.service = service
        self.store = service.store
        self._suggested: OrderedDict[tuple[int, int], list[Suggestion]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    # --- inbox -----------------------------------------------------------------------------------------
    def inbox(self, who: Principal, view: str, search: str | None = None, limit: int = 100) -> list[InboxRow]:
        """One view's conversations, longest waiting first; ``search`` looks through every conversation
        (agents and admins may read them all, as ``ChatService.transcript`` allows)."""
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            return inbox_repo.inbox(s, view, who.user_id, search=search, limit=limit)

    def counts(self, who: Principal) -> dict[str, int]:
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            return inbox_repo.inbox_counts(s, who.user_id)

    def staff(self, who: Principal) -> list[tuple[int, str]]:
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            return inbox_repo.staff(s)

    def assign(self, who: Principal, conversation_id: int, agent_id: int) -> str:
        """Give the conversation to ``agent_id`` (the agent takes it over: status ``human``). The rule of
        take-over and close: a conversation another agent handles is theirs to pass on, or an admin's.
        Returns the new agent's name."""
        who.require("agent", "admin")
        with self.store.transaction() as s:
            conversation = repo.lock_conversation(s, conversation_id)
            if conversation is None:
                raise NotFound(f"conversation {conversation_id} does not exist")
            if (conversation.status == "human" and conversation.assigned_agent_id not in (None, who.user_id)
                    and who.role != "admin"):
                raise Forbidden(f"conversation {conversation_id} is handled by another agent")
            target = staff_repo.get_user(s, agent_id)
            if target is None or target.role not in ("agent", "admin"):
                raise InvalidValue(f"user {agent_id} is not an agent")
            if conversation.status == "human" and conversation.assigned_agent_id == agent_id:
                return target.username
            if conversation.status == "closed":
                raise IllegalTransition(f"conversation {conversation_id} is closed")
            repo.set_status(s, conversation_id, "human", agent_id=agent_id)
            audit.record(s, who.user_id, "conversation.assign", f"conversation:{conversation_id}", {"to": agent_id})
            repo.append_message(s, conversation_id, "system", f"{target.username} from our team has joined the chat.")
            return target.username

    # --- review queue ----------------------------------------------------------------------------------
    def review_queue(self, who: Principal, limit: int = 50) -> list[ReviewItem]:
        """Drafts (and, in auto mode, the sampled share of sent replies), oldest first."""
        who.require("agent", "admin")
        share = self.service.settings.review_sample_share if self.service.settings.review_mode == "auto" else 0.0
        with self.store.transaction(read_only=True) as s:
            return inbox_repo.review_queue(s, share, limit=limit)

    # --- copilot ---------------------------------------------------------------------------------------
    def suggestions(self, who: Principal, conversation_id: int) -> list[Suggestion]:
        """The model's n-best for the customer's last message, grounded ones first, in a conversation the
        agent handles; ``[]`` when the last word is not the customer's or no model can answer now. Decoded
        once per customer message (cached), so the console's live refresh costs no decode."""
        who.require("agent", "admin")
        service = self.service
        with self.store.transaction(read_only=True) as s:
            conversation = repo.get_conversation(s, conversation_id)
            if conversation.status != "human" or (conversation.assigned_agent_id != who.user_id
                                                  and who.role != "admin"):
                return []
            context = repo.visible_context(s, conversation_id, service.settings.context_turns)
            if not context or context[-1][0] != "customer":
                return []
            key = (conversation_id, conversation.last_seq)
            with self._lock:
                if key in self._suggested:
                    return self._suggested[key]
            sources = service.grounding.sources(s, conversation_id) if service.grounding is not None else None
            language = conversation.language
        try:
            reply = service.n_best(context, language)
        except (Busy, NoModel) as exc:
            log.info("no suggestions for conversation %s: %s", conversation_id, exc)
            return []
        candidates = [(text, float(score)) for text, score in reply.candidates]
        # The same check the bot's own replies go through (chatbot.service.grounding).
        verdict = (service.grounding.check(candidates, sources, language)
                   if service.grounding is not None and sources is not None else None)
        suggestions = order_suggestions(candidates, list(verdict.ungrounded) if verdict is not None else None)
        with self._lock:
            self._suggested[key] = suggestions
            while len(self._suggested) > self._cache_size:
                self._suggested.popitem(last=False)
        return suggestions

    def saved_replies(self, who: Principal, query: str = "", language: str | None = None) -> list[Suggestion]:
        """Saved replies (the company facts) whose title or text contains ``query`` (case-insensitive),
        those in ``language`` first, titles starting with the query before the rest."""
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            facts = [(f.id, f.title, f.text, f.language) for f in fact_repo.list_facts(s)]
        q = query.strip().lower()
        hits = [f for f in facts if not q or q in f[1].lower() or q in f[2].lower()]
        hits.sort(key=lambda f: (f[3] != language, not f[1].lower().startswith(q), f[1].lower(), f[0]))
        return [Suggestion(text, "saved", fact_id=fid, title=title) for fid, title, text, _ in hits]

    def send(self, who: Principal, conversation_id: int, text: str, used: Suggestion | None = None,
             shown: int = 0) -> MessageView:
        """The agent's reply, with what they did with the ``shown`` suggestions (``used``: the one they
        inserted last, if any)."""
        record = suggestion_outcome(text, used, shown)
        return self.service.agent_reply(who, conversation_id, text, suggestion=record)


__all__ = ["VIEWS", "VIEW_LABELS", "InboxRow", "ReviewItem", "Suggestion", "Workspace", "order_suggestions",
           "suggestion_outcome"]
