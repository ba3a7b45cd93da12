"""``/api/v1``: the customer REST API (bearer conversation tokens) and a few agent endpoints (session cookie).

Every route authorises on the server: a customer token opens exactly one conversation, agent routes need
a signed session of an agent or admin. Errors come back as ``{"error": "..."}`` with a 4xx/5xx status.
"""


from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chatbot.service.auth import AuthError, Forbidden, Principal
from chatbot.service.batching import Busy, NoModel
from chatbot.service.chat import ChatService
from chatbot.store.db import IllegalTransition, InvalidMessage, InvalidValue, NotFound, StoreUnavailable
from web.session import SESSION_COOKIE, principal_from_request

API_PREFIX = "/api/v1"


class StartRequest(BaseModel):
    language: str | None = Field(None, max_length=16, description="ISO code, e.g. en, fr, de, es, zh.")


class StartResponse(BaseModel):
    id: int
    token: str


class MessageIn(BaseModel):
    text: str


class RatingIn(BaseModel):
    liked: bool


class FinishIn(BaseModel):
    csat: int | None = Field(None, ge=1, le=5)


class LoginIn(BaseModel):
    username: str
    password: str


class ReviewIn(BaseModel):
    action: Literal["approve", "edit", "reject"]
    text: str | None = None


def install_error_handlers(app: FastAPI) -> None:
    """Map service errors to clear HTTP answers, everywhere in the app."""
    def handler(status: int, headers: dict[str, str] | None = None):
        async def handle(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)
        return handle

    app.add_exception_handler(Forbidden, handler(403))
    app.add_exception_handler(AuthError, handler(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(NotFound, handler(404))
    app.add_exception_handler(IllegalTransition, handler(409))
    app.add_exception_handler(InvalidMessage, handler(422))
    app.add_exception_handler(InvalidValue, handler(422))
    app.add_exception_handler(Busy, handler(503, {"Retry-After": "1"}))
    app.add_exception_handler(NoModel, handler(503, {"Retry-After": "30"}))
    app.add_exception_handler(StoreUnavailable, handler(503, {"Retry-After": "5"}))

    from fastapi.exceptions import RequestValidationError

    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": "request body is not valid JSON"}, status_code=400)
        details = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                            for e in errors)
        return JSONResponse({"error": f"invalid request: {details}"}, status_code=422)

    app.add_exception_handler(RequestValidationError, bad_request)


async def bearer_token(request: Request) -> str:
    """The ``Authorization: Bearer`` token (checked against the conversation by the service).

    ``async`` because it does no I/O: FastAPI then runs it on the event loop instead of a worker thread.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("send the conversation token as 'Authorization: Bearer <token>'")
    return token.strip()


BearerToken = Annotated[str, Depends(bearer_token)]


def build_router(service: ChatService) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)

    def customer(conversation_id: int, token: BearerToken) -> int:
        service.authorize_customer(conversation_id, token)
        return conversation_id

    async def staff(request: Request) -> Principal:  # a signature check, no I/O: stays on the event loop
        return principal_from_request(service, request)

    Customer = Annotated[int, Depends(customer)]
    Staff = Annotated[Principal, Depends(staff)]

    @router.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        """Liveness plus what this replica serves; 503 when the database is unreachable."""
        service.store.stats()
        worker = service.worker
        return {"status": "ok", "model": str(worker.model_key) if worker and worker.model_key else None,
                "queued": worker.queued if worker else 0, "batches": worker.batches if worker else 0,
                "batched_requests": worker.batched_requests if worker else 0}

    @router.post("/conversations", status_code=201, response_model=StartResponse, tags=["customer"])
    def start(body: StartRequest | None = None) -> StartResponse:
        """Start a conversation; keep the token, it is the only key to it."""
        conversation_id, token = service.start_conversation(body.language if body else None, channel="api")
        return StartResponse(id=conversation_id, token=token)

    @router.post("/conversations/{conversation_id}/messages", tags=["customer"])
    def send(conversation_id: int, token: BearerToken, body: MessageIn) -> dict[str, Any]:
        """Send a message; the answer holds the bot's reply, or the status when a person handles it."""
        # The token is checked in the transaction that stores the message: one database round less.
        return service.send(conversation_id, body.text, token=token).public()

    @router.get("/conversations/{conversation_id}/messages", tags=["customer"])
    def messages(conversation_id: Customer) -> dict[str, Any]:
        status, rows = service.customer_messages(conversation_id)
        return {"id": conversation_id, "status": status, "messages": [m.public() for m in rows]}

    @router.post("/conversations/{conversation_id}/handoff", tags=["customer"])
    def handoff(conversation_id: Customer) -> dict[str, Any]:
        """Ask for a person."""
        service.request_human(conversation_id)
        return {"id": conversation_id, "status": service.customer_messages(conversation_id)[0]}

    @router.post("/conversations/{conversation_id}/messages/{message_id}/rating", tags=["customer"])
    def rate(conversation_id: Customer, message_id: int, body: RatingIn) -> dict[str, Any]:
        return {"id": conversation_id, "status": service.rate_reply(conversation_id, message_id, body.liked)}

    @router.post("/conversations/{conversation_id}/close", tags=["customer"])
    def finish(conversation_id: Customer, body: FinishIn) -> dict[str, Any]:
        """End the chat, with an optional 1-5 satisfaction score (CSAT)."""
        service.finish(conversation_id, body.csat)
        return {"id": conversation_id, "status": "closed"}

    # --- agents -----------------------------------------------------------------------------------
    @router.post("/login", tags=["agent"])
    def login(body: LoginIn) -> JSONResponse:
        from web.session import set_session_cookie

        who = service.login(body.username, body.password)
        response = JSONResponse({"username": who.username, "role": who.role})
        set_session_cookie(response, service, who)
        return response

    @router.post("/logout", tags=["agent"])
    def logout() -> JSONResponse:
        response = JSONResponse({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/queue", tags=["agent"])
    def queue(who: Staff) -> list[dict[str, Any]]:
        return [c.__dict__ for c in service.queue(who)]

    @router.get("/agent/conversations/{conversation_id}", tags=["agent"])
    def transcript(conversation_id: int, who: Staff) -> dict[str, Any]:
        conversation, rows = service.transcript(who, conversation_id)
        return {"conversation": conversation.__dict__, "messages": [m.__dict__ for m in rows]}

    @router.post("/agent/conversations/{conversation_id}/messages", tags=["agent"])
    def agent_reply(conversation_id: int, body: MessageIn, who: Staff) -> dict[str, Any]:
        return service.agent_reply(who, conversation_id, body.text).public()

    @router.post("/agent/conversations/{conversation_id}/{action}", tags=["agent"])
    def conversation_action(conversation_id: int, action: Literal["take-over", "hand-back", "close"],
                            who: Staff) -> dict[str, Any]:
        {"take-over": service.take_over, "hand-back": service.hand_back, "close": service.close}[action](
            who, conversation_id)
        return {"id": conversation_id, "status": service.customer_messages(conversation_id)[0]}

    @router.post("/agent/messages/{message_id}/review", tags=["agent"])
    def review(message_id: int, body: ReviewIn, who: Staff) -> dict[str, Any]:
        message = service.review(who, message_id, body.action, body.text)
        return {"id": message.id, "review_state": message.review_state, "text": message.text}

    return router
