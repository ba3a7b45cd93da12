"""The agent/admin session cookie: a signed token of a server-side session, HttpOnly, SameSite=Lax, Secure
over HTTPS (``settings.cookie_secure``); checked against the store on every request."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response

from chatbot.service.auth import AuthError, Principal
from chatbot.service.chat import ChatService
from chatbot.service.staff import SignedIn

SESSION_COOKIE = "chatbot_session"


def client_address(request: Any) -> str:
    """The peer's address (behind a proxy, run uvicorn with ``--forwarded-allow-ips`` so this is the client)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def cookie_secure(service: ChatService, request: Request) -> bool:
    configured = service.settings.cookie_secure
    return configured if configured is not None else request.url.scheme == "https"


def set_session_cookie(response: Response, service: ChatService, request: Request, signed_in: SignedIn) -> None:
    response.set_cookie(SESSION_COOKIE, signed_in.cookie, max_age=service.signer.max_age_s, httponly=True,
                        samesite="lax", path="/", secure=cookie_secure(service, request))


def end_session(response: Response, service: ChatService, request: Request) -> None:
    """Delete the server-side session (so a saved copy of the cookie is worthless) and the cookie."""
    service.staff.sign_out(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=cookie_secure(service, request))


def principal_from_request(service: ChatService, request: Any) -> Principal:
    """The signed-in agent or admin, read from the store; ``AuthError`` otherwise. Works on FastAPI and
    ``gr.Request``. Blocking (one indexed read): call it from a worker thread."""
    cookies = getattr(request, "cookies", None) or {}
    return service.staff.principal(cookies.get(SESSION_COOKIE))


def optional_principal(service: ChatService, request: Request) -> Principal | None:
    try:
        return principal_from_request(service, request)
    except AuthError:
        return None
