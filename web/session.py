"""The agent/admin session cookie: signed, HttpOnly, SameSite=Lax; verified on every request."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response

from chatbot.service.auth import AuthError, Principal
from chatbot.service.chat import ChatService

SESSION_COOKIE = "chatbot_session"


def set_session_cookie(response: Response, service: ChatService, who: Principal) -> None:
    response.set_cookie(SESSION_COOKIE, service.signer.sign(who), max_age=service.signer.max_age_s,
                        httponly=True, samesite="lax", path="/")


def principal_from_request(service: ChatService, request: Any) -> Principal:
    """The signed-in agent or admin; ``AuthError`` otherwise. Works on FastAPI and ``gr.Request``."""
    cookies = getattr(request, "cookies", None) or {}
    return service.signer.verify(cookies.get(SESSION_COOKIE))


def optional_principal(service: ChatService, request: Request) -> Principal | None:
    try:
        return principal_from_request(service, request)
    except AuthError:
        return None
