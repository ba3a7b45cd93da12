"""``/login`` and ``/logout`` for agents and admins: a plain form that opens a server-side session (cookie) and
ends it. Failed logins are throttled (HTTP 429 with Retry-After); see ``chatbot.service.staff``."""

from __future__ import annotations

import html

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot.service.auth import AuthError
from chatbot.service.chat import ChatService
from web.session import client_address, end_session, set_session_cookie

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto}}label,input,button{{display:block;
width:100%;margin:.4rem 0}}input{{padding:.5rem}}button{{padding:.6rem}}.error{{color:#b00020}}</style></head>
<body><h1>Agent sign-in</h1>{error}
<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<label>Username <input name="username" id="username" autocomplete="username" required></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="sign-in">Sign in</button></form></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/agent/"


def build_login_router(service: ChatService) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_form(next: str | None = None) -> HTMLResponse:
        return HTMLResponse(_PAGE.format(error="", next=html.escape(_safe_next(next))))

    @router.post("/login")
    def login(request: Request, username: str = Form(...), password: str = Form(...),
              next: str = Form("/agent/")) -> Response:
        try:
            signed_in = service.staff.sign_in(username, password, client_address(request))
        except AuthError as exc:
            page = _PAGE.format(error=f'<p class="error">{html.escape(str(exc))}</p>', next=html.escape(_safe_next(next)))
            retry = getattr(exc, "retry_after_s", None)
            if retry is not None:
                return HTMLResponse(page, status_code=429, headers={"Retry-After": str(retry)})
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(response, service, request, signed_in)
        return response

    def logout(request: Request) -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        if request.method == "GET" and request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return response  # a link or image on another site does not end the agent's session
        end_session(response, service, request)
        return response

    router.add_api_route("/logout", logout, methods=["GET", "POST"])

    return router
