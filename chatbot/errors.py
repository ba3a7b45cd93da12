"""The errors the store raises on purpose, in a leaf module: the web maps them to HTTP answers and
messages without importing the store (``chatbot.store.db`` re-exports them for the store's callers)."""

from __future__ import annotations

from chatbot.settings import mask_url


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, went away mid-transaction, or stayed locked too long."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)
        self.reason = reason
        super().__init__(f"database unavailable at {self.url}: {reason}")


class NotFound(StoreError):
    """The conversation (or other row) does not exist."""


class IllegalTransition(StoreError):
    """A status change, or a message, that the conversation's current status does not allow."""


class InvalidValue(StoreError, ValueError):
    """An argument the store refuses (unknown role or status, CSAT out of range, ...)."""


class InvalidMessage(InvalidValue):
    """Message text that the text policy refuses (empty, too long, not text)."""


class AlreadyExists(StoreError):
    """A unique key is taken: username, or (source, external_id) of an imported conversation."""

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id
