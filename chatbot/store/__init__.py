"""The SQL conversation store: schema (``models``), engines and migrations (``db``), repository functions
(``conversations``, ``audit``), and the transaction-owning service (``manager.ConversationStore``)."""

from chatbot.store.db import (
    AlreadyExists,
    IllegalTransition,
    InvalidMessage,
    InvalidValue,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from chatbot.store.manager import ConversationStore

__all__ = [
    "AlreadyExists",
    "ConversationStore",
    "IllegalTransition",
    "InvalidMessage",
    "InvalidValue",
    "NotFound",
    "StoreError",
    "StoreUnavailable",
]
