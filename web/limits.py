"""A request body limit for the whole app (REST API, login form and Gradio pages alike).

Without it an anonymous client can make the server read and parse a body of any size. A declared
``Content-Length`` over the limit is refused with 413 before the app sees any of the body; a body without one
(chunked) is counted as it arrives and refused the moment it passes the limit, before the handler sees it.

Before a refusal is sent, the rest of the body is read and thrown away, up to another limit's worth
or two seconds (a "lingering close", as nginx does): a server that closes a socket with unread data makes
the kernel send a reset, and the client then loses the 413 and sees a dropped connection instead.
"""

from __future__ import annotations

import asyncio
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LINGER_SECONDS = 2.0


class BodyTooLarge(HTTPException):
    """The client sent more than the limit, raised inside ``receive``. An ``HTTPException`` because FastAPI
    turns any other error while it reads a body into a 400; this one passes through as a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, too_large(max_bytes))

    def __str__(self) -> str:
        return str(self.detail)


def too_large(max_bytes: int) -> str:
    return f"request body too large: the limit is {max_bytes:,} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if not _expects_continue(scope):  # else the client waits for our word and sends nothing
                await self._discard_rest(receive)
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await self._discard_rest(receive)
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:  # the app answered before reading it all: nothing more can be said
                raise
            await self._refuse(send)

    async def _discard_rest(self, receive: Receive) -> None:
        """Read and drop what the client is still sending, bounded in bytes and time (never stored)."""

        async def drain() -> None:
            discarded = 0
            while discarded <= self.max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                discarded += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return

        try:
            await asyncio.wait_for(drain(), LINGER_SECONDS)
        except asyncio.TimeoutError:
            pass

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": too_large(self.max_bytes)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _expects_continue(scope: Scope) -> bool:
    return any(name == b"expect" and value.lower() == b"100-continue" for name, value in scope.get("headers", ()))
