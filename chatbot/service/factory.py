"""Building the service for one process: the store (schema at head), the generation worker, the shadow
worker and ``ChatService``. Here rather than in ``web``: the web layer formats and authorises and never
builds the store (``tests/test_layers.py``)."""

from __future__ import annotations

from chatbot.service.batching import GenerationWorker
from chatbot.service.chat import ChatService
from chatbot.service.models import active_model, fallback_models, loader
from chatbot.service.shadow import ShadowWorker
from chatbot.settings import Settings
from chatbot.store.manager import ConversationStore


def build_service(settings: Settings) -> ChatService:
    """Store, generation worker (not started) and service for one process."""
    store = ConversationStore(settings)
    store.ensure_schema()
    worker = GenerationWorker.from_settings(loader(settings), lambda: active_model(store, settings), settings,
                                            fallbacks=lambda: fallback_models(store, settings))
    # A registered candidate an admin chose answers a sample of messages in the background, never sent.
    shadow = ShadowWorker(store, settings, busy=lambda: worker.queued > 0)
    return ChatService(store, settings, worker, shadow=shadow)
