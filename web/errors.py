"""Service refusals shown as a message in a Gradio page instead of a generic "Error"."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr

from chatbot.errors import StoreError
from chatbot.service.auth import AuthError
from web.escape import html_text


def guarded(fn: Callable[..., Any], sign_in_as: str = "an agent") -> Callable[..., Any]:
    """Wrap a handler: a lost or wrong session says where to sign in; a store refusal shows its reason."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AuthError as exc:
            raise gr.Error(html_text(f"{exc} — sign in as {sign_in_as} at /login")) from exc
        except (StoreError, ValueError) as exc:
            raise gr.Error(html_text(exc)) from exc  # gr.Error renders HTML; the reason may quote user input

    return wrapper


def public_reason(exc: Exception) -> str:
    """What a customer may read of a store error: never the database's URL or host (the log has those)."""
    from chatbot.errors import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return "the service is temporarily unavailable; please try again in a few seconds"
    return str(exc)
