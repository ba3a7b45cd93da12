"""Company facts for ``/admin``: list, add, edit and delete, admins only (agents may read them).

The facts are what the bot may state details from besides the conversation (``chatbot.service.grounding``
reads them for every reply). Each change runs in its own transaction and is audited; the web layer gets
plain frozen values back, never ORM rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chatbot.service.auth import Principal
from chatbot.service.chat import ChatService
from chatbot.store import facts as repo
from chatbot.store.models import CompanyFact


@dataclass(frozen=True)
class FactView:
    id: int
    title: str
    text: str
    language: str
    updated_at: datetime

    @classmethod
    def of(cls, fact: CompanyFact) -> FactView:
        return cls(fact.id, fact.title, fact.text, fact.language, fact.updated_at)


class FactsService:
    def __init__(self, service: ChatService) -> None:
        self.store = service.store
        self.max_chars = service.settings.max_message_chars

    def list(self, who: Principal, language: str | None = None) -> list[FactView]:
        """By title. Agents may read them too: they answer with the same facts."""
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            return [FactView.of(f) for f in repo.list_facts(s, language)]

    def add(self, who: Principal, title: str, text: str, language: str = "en") -> FactView:
        who.require("admin")
        with self.store.transaction() as s:
            return FactView.of(repo.add_fact(s, title, text, language, actor_id=who.user_id, max_chars=self.max_chars))

    def update(self, who: Principal, fact_id: int, title: str, text: str, language: str) -> FactView:
        who.require("admin")
        with self.store.transaction() as s:
            return FactView.of(repo.update_fact(s, fact_id, title, text, language, actor_id=who.user_id,
                                                max_chars=self.max_chars))

    def delete(self, who: Principal, fact_id: int) -> None:
        who.require("admin")
        with self.store.transaction() as s:
            repo.delete_fact(s, fact_id, actor_id=who.user_id)
