"""Which of the n-best candidates the bot may send, given the details each states.

The model ranks candidates by likelihood, not by truth: the best one may promise "a table for 2 at 12 pm
on March 12th" to a customer who never mentioned a table. ``chatbot.text.grounding`` finds the details
that neither the conversation nor the company facts contain; this module applies the policy:

* the best candidate is sent when everything it states is grounded;
* else the best grounded candidate whose score is within ``margin`` of the best one is sent instead
  (scores are length-normalised log-probabilities per token, so the margin means the same for short and
  long replies); an empty candidate never counts, it says nothing at all;
* else no candidate may go out on its own: the service keeps the best one as a draft for an agent (and,
  in ``auto`` review mode, hands the conversation to a person with the details as the reason).

``choose`` is pure; ``Grounder`` adds reading the sources from the store and a cache of the facts'
evidence, which changes only when an admin edits a fact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from chatbot.store import facts as fact_repo
from chatbot.store.conversations import conversation_texts
from chatbot.text.grounding import Evidence, ungrounded

log = logging.getLogger(__name__)

HISTORY_MESSAGES = 200  # turns of a conversation read as sources: longer chats are rare, and bounded cost


@dataclass(frozen=True)
class GroundingSources:
    """What the bot may take details from for one reply: the conversation so far and the company facts."""

    conversation: tuple[str, ...]
    facts: tuple[str, ...]


@dataclass(frozen=True)
class GroundingVerdict:
    """``picked``: the rank of the candidate to use, ``None`` when none within the margin is grounded;
    ``ungrounded``: per candidate rank, the details that nobody gave; ``error``: the check itself failed
    (then nothing is picked: an unchecked reply goes to an agent like an ungrounded one)."""

    picked: int | None
    ungrounded: tuple[tuple[str, ...], ...]
    margin: float
    error: str | None = None

    @property
    def grounded(self) -> bool:
        return self.picked is not None

    @property
    def details(self) -> tuple[str, ...]:
        """The ungrounded details of the reply that is stored: the picked one's (none), else the best's."""
        return self.ungrounded[self.picked if self.picked is not None else 0] if self.ungrounded else ()

    def reason(self) -> str:
        """Why the reply needs a person, as agents read it: "ungrounded details: 12 pm, March 12th"."""
        if self.error is not None:
            return f"the grounding check failed ({self.error})"
        return "ungrounded details: " + ", ".join(self.details)

    def as_meta(self) -> dict[str, Any]:
        """Stored in the reply's ``meta["grounding"]`` for the agent console and for later analysis."""
        meta = {"picked": self.picked, "margin": self.margin, "ungrounded": list(self.details),
                "candidates": [list(details) for details in self.ungrounded]}
        return {**meta, "error": self.error} if self.error is not None else meta


def choose(candidates: Sequence[tuple[str, float]], ungrounded_details: Sequence[Sequence[str]],
           margin: float, allowed: Sequence[bool] | None = None) -> int | None:
    """The rank of the highest-scoring non-empty candidate with no ungrounded detail whose score is at most
    ``margin`` below the best candidate's (and that ``allowed`` allows, when given); ``None`` when there is
    none."""
    if not candidates:
        return None
    best = max(score for _, score in candidates)
    allowed = [True] * len(candidates) if allowed is None else allowed
    eligible = [rank for rank, ((text, score), missing, ok) in enumerate(zip(candidates, ungrounded_details, allowed))
                if best - score <= margin and text.strip() and not missing and ok]
    return max(eligible, key=lambda rank: (candidates[rank][1], -rank)) if eligible else None


@lru_cache(maxsize=8)
def _facts_evidence(texts: tuple[str, ...]) -> Evidence:
    return Evidence.of(texts)


class Grounder:
    """Reads a reply's sources from the store and judges its candidates (see the module docstring)."""

    def __init__(self, margin: float) -> None:
        self.margin = margin

    def sources(self, session: Session, conversation_id: int) -> GroundingSources:
        """Read in the transaction that stored the customer's message, so that message is a source too.
        Facts are read for every reply (a handful of rows), so an edit on any replica counts at once."""
        return GroundingSources(tuple(conversation_texts(session, conversation_id, HISTORY_MESSAGES)),
                                tuple(fact_repo.fact_texts(session)))

    def check(self, candidates: Sequence[tuple[str, float]], sources: GroundingSources,
              language: str | None) -> GroundingVerdict:
        """Pure computation on what ``sources`` read; runs outside any transaction. Fails closed: should the
        check itself break, no candidate is sent on its own (and the customer still gets an answer, from a
        person)."""
        try:
            evidence = (Evidence.of(sources.conversation), _facts_evidence(sources.facts))
            missing = tuple(tuple(d.text for d in ungrounded(text, evidence, language)) for text, _ in candidates)
        except Exception as exc:
            log.exception("grounding check failed; the reply goes to an agent")
            return GroundingVerdict(None, tuple(() for _ in candidates), self.margin, error=type(exc).__name__)
        return GroundingVerdict(choose(candidates, missing, self.margin), missing, self.margin)
