"""``ShortcutStore``: a ``ConversationStore`` with one-call, one-transaction shortcuts, for tests only.

The product opens ``store.transaction()`` and calls the repository functions itself (the service layer
decides what belongs in one transaction); tests that just need a conversation with a few messages use
these. Each shortcut runs one repository function in its own transaction and returns detached objects
whose columns stay readable; open a ``transaction()`` to walk relationships.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from typing_extensions import Self  # a dependency of SQLAlchemy 2

from chatbot.store import conversations as repo
from chatbot.store.manager import ConversationStore
from chatbot.store.models import Conversation, Message, User


class ShortcutStore(ConversationStore):
    def __enter__(self) -> Self:
        return self

    def create_user(self, username: str, **fields: Any) -> User:
        with self.transaction() as session:
            return repo.create_user(session, username, **fields)

    def get_or_create_customer(self, username: str, *, display_name: str | None = None) -> User:
        with self.transaction() as session:
            return repo.get_or_create_customer(session, username, display_name=display_name)

    def start_conversation(self, **fields: Any) -> Conversation:
        with self.transaction() as session:
            return repo.start_conversation(session, **fields)

    def get_conversation(self, conversation_id: int) -> Conversation:
        with self.transaction(read_only=True) as session:
            return repo.get_conversation(session, conversation_id)

    def append_message(
        self,
        conversation_id: int,
        role: str,
        text: str,
        *,
        candidates: Sequence[tuple[str, float]] | None = None,
        **fields: Any,
    ) -> Message:
        with self.transaction() as session:
            return repo.append_message(
                session, conversation_id, role, text, candidates=candidates,
                max_chars=self.max_message_chars, **fields,
            )

    def last_turns(self, conversation_id: int, n: int) -> list[Message]:
        with self.transaction(read_only=True) as session:
            return repo.last_turns(session, conversation_id, n)

    def set_status(self, conversation_id: int, new_status: str, *, agent_id: int | None = None) -> Conversation:
        with self.transaction() as session:
            return repo.set_status(session, conversation_id, new_status, agent_id=agent_id)

    def close_conversation(self, conversation_id: int, csat: int | None = None) -> Conversation:
        with self.transaction() as session:
            return repo.close_conversation(session, conversation_id, csat)

    def set_csat(self, conversation_id: int, csat: int) -> Conversation:
        with self.transaction() as session:
            return repo.set_csat(session, conversation_id, csat)

    def list_queue(self, statuses: Iterable[str] | None = None, limit: int = 50) -> list[Conversation]:
        with self.transaction(read_only=True) as session:
            return repo.list_queue(session, statuses, limit)
