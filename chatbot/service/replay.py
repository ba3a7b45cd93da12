"""Regenerate a past bot reply with another model version or decoding settings, for agents only.

Nothing is stored or sent: the result is shown next to what the customer got. Loaded generators are
cached per (model, decoding), a handful at most, since agents try a few variants of one reply.
"""

from __future__ import annotations

from typing import Any, Protocol

from chatbot.service.auth import Principal
from chatbot.settings import Settings
from chatbot.store import conversations as repo
from chatbot.store.db import NotFound
from chatbot.store.manager import ConversationStore


class _Service(Protocol):
    """What replay needs of ``ChatService`` (named so this module does not import it)."""

    store: ConversationStore
    settings: Settings


class ReplayService:
    def __init__(self, service: _Service, cache_size: int = 4) -> None:
        self.service = service
        self.cache_size = cache_size
        self._cache: dict[tuple[Any, ...], Any] = {}

    def replay(self, who: Principal, message_id: int, version_id: int | None = None, **decoding: Any) -> Any:
        from chatbot.service.models import active_model, load_generator, version_ref  # loads the decoder code

        who.require("agent", "admin")
        svc = self.service
        with svc.store.transaction(read_only=True) as s:
            message = repo.get_message(s, message_id)
            if message is None or message.role != "bot":
                raise NotFound(f"no bot reply {message_id}")
            context = repo.visible_context(s, message.conversation_id, svc.settings.context_turns, before_seq=message.seq)
            language = repo.get_conversation(s, message.conversation_id).language
        ref = version_ref(svc.store, version_id) if version_id is not None else active_model(svc.store, svc.settings)
        if ref is None:
            raise NotFound("no model to replay with")
        key = (ref, tuple(sorted(decoding.items())))
        generator = self._cache.get(key)
        if generator is None:
            generator = load_generator(ref, svc.settings, **decoding)
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = generator
        return generator.generate([context], language=language)[0]
