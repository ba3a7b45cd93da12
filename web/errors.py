"""Service refusals shown as a message in a Gradio page instead of a generic "Error"."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr

from chatbot.service.auth import AuthError
from chatbot.store.db import StoreError


def guarded(fn: Callable[..., Any], sign_in_as: str = "an agent") -> Callable[..., Any]:
    """Wrap a handler: a lost or wrong session says where to sign in; a store refusal shows its reason."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AuthError as exc:
            raise gr.Error(f"{exc} — sign in as {sign_in_as} at /login") from exc
        except (StoreError, ValueError) as exc:
            raise gr.Error(str(exc)) from exc

    return wrapper
