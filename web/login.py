"""``/login`` and ``/logout`` for agents and admins: a plain form that sets the signed session cookie."""

from __future__ import annotations

import html

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot.service.auth import AuthError
from chatbot.service.chat import ChatService
from web.session import SESSION_COOKIE, set_session_cookie

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
    def login(username: str = Form(...), password: str = Form(...), next: str = Form("/agent/")) -> Response:
        try:
            who = service.login(username, password)
        except AuthError as exc:
            page = _PAGE.format(error=f'<p class="error">{html.escape(str(exc))}</p>', next=html.escape(_safe_next(next)))
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(response, service, who)
        return response

    @router.get("/logout")
    def logout(_request: Request) -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
