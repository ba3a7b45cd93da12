"""``create_app(settings)``: one FastAPI app with the REST API, the login page and three Gradio pages.

Everything shared lives in the database, so several replicas (``chatbot serve`` on one PostgreSQL) serve
any conversation; each replica runs its own generation worker.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from chatbot.service.chat import ChatService
from chatbot.service.factory import build_service
from chatbot.service.recovery import RecoverySweeper
from chatbot.settings import Settings
from web.limits import BodyLimit
from web.security import SameOriginStaffWrites, StaffPageHeaders
from web.session import optional_principal

# Gradio and huggingface_hub read these at import time: no analytics, no hub calls, no telemetry.
GRADIO_OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
_PROTECTED = {"/agent": ("agent", "admin"), "/admin": ("admin",)}


class StaffPagesNeedLogin:
    """Send a visitor without the right session from an agent/admin page to the login form.

    Plain ASGI rather than ``@app.middleware("http")``: that wrapper runs every response, the customer API's
    included, through extra tasks for a check only two pages need (no difference measurable under load).
    """

    def __init__(self, app: ASGIApp, service: ChatService) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"].rstrip("/")
            if path in _PROTECTED:
                # The session and the role are read from the store: off the event loop.
                who = await anyio.to_thread.run_sync(optional_principal, self.service, Request(scope))
                if who is None or who.role not in _PROTECTED[path]:
                    await RedirectResponse(f"/login?next={path}/", status_code=303)(scope, receive, send)
                    return
                if not scope["path"].endswith("/"):  # Gradio apps are mounted at "<path>/"
                    await RedirectResponse(f"{path}/", status_code=307)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(settings: Settings, service: ChatService | None = None) -> FastAPI:
    os.environ.update(GRADIO_OFFLINE_ENV)
    import gradio as gr

    from web.admin import build_admin
    from web.agent import build_agent
    from web.api import build_router, install_error_handlers
    from web.customer import build_customer
    from web.login import build_login_router

    service = service or build_service(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        if service.worker is not None:
            service.worker.start()
        if service.shadow is not None:
            service.shadow.start()
        sweeper = RecoverySweeper(service)  # answers what a fault or a restart left unanswered
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            if service.shadow is not None:
                service.shadow.stop()
            if service.worker is not None:
                service.worker.stop()
            service.store.close()

    app = FastAPI(title="Customer-service chatbot", version="1", lifespan=lifespan,
                  docs_url="/api/v1/docs", openapi_url="/api/v1/openapi.json", redoc_url=None)
    install_error_handlers(app)
    app.include_router(build_router(service))
    app.include_router(build_login_router(service))

    app.add_middleware(StaffPagesNeedLogin, service=service)
    app.add_middleware(StaffPageHeaders)
    # Before the login redirect and every handler (Gradio's event endpoints included): cross-origin staff
    # writes never reach them.
    app.add_middleware(SameOriginStaffWrites, trusted_origins=settings.trusted_origins,
                       https_proxy=bool(settings.cookie_secure))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # outermost: before anything reads a body

    def staff_only(*roles: str):
        async def dependency(request: Request) -> str | None:
            # Gradio awaits this for its page config and every event: the store read runs in a worker thread.
            who = await anyio.to_thread.run_sync(optional_principal, service, request)
            return who.username if who is not None and who.role in roles else None
        return dependency

    mount = {"ssr_mode": False, "footer_links": [], "theme": gr.themes.Soft(), "css": CSS}
    concurrency = settings.batch_max_size  # enough concurrent events to fill one generation batch
    gr.mount_gradio_app(app, build_agent(service).queue(default_concurrency_limit=concurrency), "/agent",
                        auth_dependency=staff_only("agent", "admin"), **mount)
    gr.mount_gradio_app(app, build_admin(service).queue(default_concurrency_limit=4), "/admin",
                        auth_dependency=staff_only("admin"), **mount)
    gr.mount_gradio_app(app, build_customer(service).queue(default_concurrency_limit=concurrency), "/", **mount)
    return app


CSS = """
.heatmap td, .heatmap th { padding: 2px 4px; font-size: 12px; text-align: center; }
.heatmap th.row { text-align: right; }
.heatmap th.word span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
.heatmap td { font-size: 10px; min-width: 22px; }
.heatmap caption, .heatmap-legend { font-size: 12px; text-align: left; margin: 4px 0; }
#agent-queue, #review-queue { overflow-x: hidden; }
#review-current .said { white-space: pre-wrap; overflow-wrap: anywhere; }
.ungrounded { background: #fff4e5; border-left: 4px solid #f59e0b; padding: 6px 10px; }
.ungrounded mark { background: #fde68a; padding: 0 2px; }
footer { display: none !important; }
"""
