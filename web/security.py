"""Cross-site request forgery checks and security headers for the staff side (plain ASGI middleware).

A browser sends the staff cookie with any request to this host, also one a page on *another port of the
same host* makes (same site, so SameSite=Lax does not help). So every state-changing staff request — the
login forms, the agent REST routes and the Gradio event endpoints of ``/agent`` and ``/admin`` (whose
``queue/join`` POSTs run take-over, close, promote, erase) — and any state-changing request that carries
the staff cookie must come from this server's own origin: ``Origin`` (else ``Referer``) must name it, or
be listed in ``settings.trusted_origins``. A request with neither header is a non-browser client (curl,
the CLI's scripts): browsers always send ``Origin`` with a cross-origin POST, and ``Sec-Fetch-Site`` says
where a request came from when they leave ``Origin`` out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.session import SESSION_COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths whose writes are staff actions even without a cookie yet (login CSRF plants another account's session).
STAFF_PREFIXES = ("/login", "/logout", "/api/v1/login", "/api/v1/logout", "/api/v1/agent", "/api/v1/queue",
                  "/agent", "/admin")
# Pages that get the strict headers: the staff pages and the login form.
STAFF_PAGES = ("/login", "/agent", "/admin")
# Gradio needs inline scripts/styles (its config is inlined in the page) and eval (its Vega charts: without
# 'unsafe-eval' the admin page's charts stay empty, tests/web/test_browser.py); every load stays on this origin.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
STAFF_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_staff_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in STAFF_PREFIXES)


def normalize_origin(value: str) -> str | None:
    """``scheme://host:port`` with the port always spelled out, or None when it is not an http(s) origin."""
    parts = urlsplit(value.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


class SameOriginStaffWrites:
    """Refuse (403) a state-changing staff request from another origin, before it reaches any handler."""

    def __init__(self, app: ASGIApp, trusted_origins: Iterable[str] = (), https_proxy: bool = False) -> None:
        self.app = app
        self.trusted = {o for o in (normalize_origin(t) for t in trusted_origins) if o}
        self.https_proxy = https_proxy  # behind a TLS proxy the browser's origin is https while we see http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            if _is_staff_path(scope["path"]) or f"{SESSION_COOKIE}=" in headers.get("cookie", ""):
                refusal = self._refusal(scope, headers)
                if refusal is not None:
                    body = json.dumps({"error": refusal}).encode()
                    await send({"type": "http.response.start", "status": 403,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> str | None:
        origin = headers.get("origin")
        if origin is None and headers.get("referer"):
            origin = headers["referer"]
        if origin is None:
            site = headers.get("sec-fetch-site")
            if site in (None, "same-origin", "none"):
                return None  # not a browser, or the browser says it is this page
            return f"cross-site request refused ({site})"
        own = self._own_origins(scope, headers)
        if normalize_origin(origin) in own | self.trusted:
            return None
        return "cross-origin request refused: staff actions must come from this server's own pages"

    def _own_origins(self, scope: Scope, headers: Headers) -> set[str]:
        host = headers.get("host", "")
        schemes = {scope.get("scheme", "http")} | ({"https"} if self.https_proxy else set())
        return {o for o in (normalize_origin(f"{scheme}://{host}") for scheme in schemes) if o}


class StaffPageHeaders:
    """CSP (no framing, same-origin loads), X-Frame-Options, Referrer-Policy, nosniff and no-store on the staff
    pages and the login form; nosniff everywhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        staff = any(path == p or path.startswith(p + "/") for p in STAFF_PAGES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if staff:
                    for name, value in STAFF_HEADERS.items():
                        if name == "cache-control" and name in headers:
                            continue  # Gradio's own caching of its static assets stays
                        headers[name] = value
                else:
                    headers.setdefault("x-content-type-options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_headers)
