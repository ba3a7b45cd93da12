"""``/api/v1``: the customer REST API (bearer conversation tokens) and a few agent endpoints (session cookie).

Every route authorises on the server: a customer token opens exactly one conversation, agent routes need
a signed session of an agent or admin. Errors come back as ``{"error": "..."}`` with a 4xx/5xx status.
"""

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chatbot.errors import IllegalTransition, InvalidMessage, InvalidValue, NotFound, StoreUnavailable
from chatbot.service.auth import AuthError, Forbidden, Principal, TooManyAttempts
from chatbot.service.batching import Busy, NoModel
from chatbot.service.chat import ChatService
from chatbot.text.tokenize import SUPPORTED_LANGUAGES
from web.limits import BodyTooLarge
from web.session import client_address, end_session, principal_from_request, set_session_cookie

API_PREFIX = "/api/v1"
UNAVAILABLE_TEXT = "the service is temporarily unavailable; please try again in a few seconds"
log = logging.getLogger(__name__)


# The languages a conversation may be held in (lower-case codes, as the models name them): anything else
# is a 422 that lists these, before anything is stored.
Language = Literal[SUPPORTED_LANGUAGES]  # type: ignore[valid-type]


class StartRequest(BaseModel):
    language: Language | None = Field(None, description=f"One of {', '.join(SUPPORTED_LANGUAGES)} (default en).")


class StartResponse(BaseModel):
    id: int
    token: str


class MessageIn(BaseModel):
    text: str


class CustomerMessageIn(MessageIn):
    client_message_id: str | None = Field(None, max_length=100, description="Makes a retry safe, like the "
                                          "Idempotency-Key header (which wins when both are sent).")


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

    async def too_many(_request: Request, exc: Exception) -> JSONResponse:
        retry = str(getattr(exc, "retry_after_s", 60))
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": retry})

    app.add_exception_handler(TooManyAttempts, too_many)
    app.add_exception_handler(AuthError, handler(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(NotFound, handler(404))
    app.add_exception_handler(IllegalTransition, handler(409))
    app.add_exception_handler(InvalidMessage, handler(422))
    app.add_exception_handler(InvalidValue, handler(422))
    app.add_exception_handler(Busy, handler(503, {"Retry-After": "1"}))
    app.add_exception_handler(NoModel, handler(503, {"Retry-After": "30"}))

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # The reason names the database (URL, host): the log gets it, the client a plain sentence.
        log.warning("503: %s", exc)
        return JSONResponse({"error": UNAVAILABLE_TEXT}, status_code=503, headers={"Retry-After": "5"})

    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(BodyTooLarge, handler(413, {"Connection": "close"}))

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


async def chat_service(request: Request) -> ChatService:
    """The service ``build_router`` attached to this request (see ``_Attach``)."""
    return request.state.chat_service


Service = Annotated[ChatService, Depends(chat_service)]


def customer(conversation_id: int, token: BearerToken, service: Service) -> int:
    service.authorize_customer(conversation_id, token)
    return conversation_id


def staff(request: Request, service: Service) -> Principal:
    """The signed-in agent or admin; reads the session and role from the store, so not ``async``: FastAPI
    runs it on a worker thread."""
    return principal_from_request(service, request)


Customer = Annotated[int, Depends(customer)]
Staff = Annotated[Principal, Depends(staff)]

routes = APIRouter()


@routes.get("/healthz", tags=["ops"])
def healthz(service: Service) -> dict[str, Any]:
    """Liveness plus what this replica serves (a version name, never a path); 503 when the database is
    unreachable. ``status`` is ``degraded`` with a ``problem`` while the active version cannot load and
    an earlier one answers instead (the reason is on /admin, for admins only)."""
    service.store.stats()
    worker = service.worker
    serving = service.serving_status()
    return {"status": "degraded" if serving["problem"] else "ok", "model": serving["model"],
            "problem": serving["problem"],
            "queued": worker.queued if worker else 0, "batches": worker.batches if worker else 0,
            "batched_requests": worker.batched_requests if worker else 0}


@routes.post("/conversations", status_code=201, response_model=StartResponse, tags=["customer"])
def start(service: Service, body: StartRequest | None = None) -> StartResponse:
    """Start a conversation; keep the token, it is the only key to it."""
    conversation_id, token = service.start_conversation(body.language if body else None, channel="api")
    return StartResponse(id=conversation_id, token=token)


@routes.post("/conversations/{conversation_id}/messages", tags=["customer"])
def send(conversation_id: int, token: BearerToken, body: CustomerMessageIn, service: Service,
         idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
         ) -> dict[str, Any]:
    """Send a message; the answer holds the bot's reply, or the status when a person handles it.

    With an ``Idempotency-Key`` header (or ``client_message_id``), a retry after a timeout or a 503 stores
    nothing twice: it returns the first attempt's answer, or answers the stored message now."""
    # The token is checked in the transaction that stores the message: one database round less.
    key = idempotency_key or body.client_message_id
    return service.send(conversation_id, body.text, token=token, client_key=key).public()


@routes.get("/conversations/{conversation_id}/messages", tags=["customer"])
def messages(conversation_id: Customer, service: Service) -> dict[str, Any]:
    status, rows = service.customer_messages(conversation_id)
    return {"id": conversation_id, "status": status, "messages": [m.public() for m in rows]}


@routes.post("/conversations/{conversation_id}/handoff", tags=["customer"])
def handoff(conversation_id: Customer, service: Service) -> dict[str, Any]:
    """Ask for a person."""
    service.request_human(conversation_id)
    return {"id": conversation_id, "status": service.customer_messages(conversation_id)[0]}


@routes.post("/conversations/{conversation_id}/messages/{message_id}/rating", tags=["customer"])
def rate(conversation_id: Customer, message_id: int, body: RatingIn, service: Service) -> dict[str, Any]:
    return {"id": conversation_id, "status": service.rate_reply(conversation_id, message_id, body.liked)}


@routes.post("/conversations/{conversation_id}/close", tags=["customer"])
def finish(conversation_id: Customer, body: FinishIn, service: Service) -> dict[str, Any]:
    """End the chat, with an optional 1-5 satisfaction score (CSAT)."""
    service.finish(conversation_id, body.csat)
    return {"id": conversation_id, "status": "closed"}


# --- agents -----------------------------------------------------------------------------------------
@routes.post("/login", tags=["agent"])
def login(body: LoginIn, request: Request, service: Service) -> JSONResponse:
    """Open a staff session (cookie); 429 with Retry-After after too many failures."""
    signed_in = service.staff.sign_in(body.username, body.password, client_address(request))
    who = signed_in.principal
    response = JSONResponse({"username": who.username, "role": who.role})
    set_session_cookie(response, service, request, signed_in)
    return response


@routes.post("/logout", tags=["agent"])
def logout(request: Request, service: Service) -> JSONResponse:
    """End the session on the server: a saved copy of the cookie no longer works."""
    response = JSONResponse({"ok": True})
    end_session(response, service, request)
    return response


@routes.get("/queue", tags=["agent"])
def queue(who: Staff, service: Service) -> list[dict[str, Any]]:
    return [c.__dict__ for c in service.queue(who)]


@routes.get("/agent/conversations/{conversation_id}", tags=["agent"])
def transcript(conversation_id: int, who: Staff, service: Service) -> dict[str, Any]:
    conversation, rows = service.transcript(who, conversation_id)
    return {"conversation": conversation.__dict__, "messages": [m.__dict__ for m in rows]}


@routes.post("/agent/conversations/{conversation_id}/messages", tags=["agent"])
def agent_reply(conversation_id: int, body: MessageIn, who: Staff, service: Service) -> dict[str, Any]:
    return service.agent_reply(who, conversation_id, body.text).public()


@routes.post("/agent/conversations/{conversation_id}/{action}", tags=["agent"])
def conversation_action(conversation_id: int, action: Literal["take-over", "hand-back", "close"],
                        who: Staff, service: Service) -> dict[str, Any]:
    {"take-over": service.take_over, "hand-back": service.hand_back, "close": service.close}[action](
        who, conversation_id)
    return {"id": conversation_id, "status": service.customer_messages(conversation_id)[0]}


@routes.post("/agent/messages/{message_id}/review", tags=["agent"])
def review(message_id: int, body: ReviewIn, who: Staff, service: Service) -> dict[str, Any]:
    message = service.review(who, message_id, body.action, body.text)
    return {"id": message.id, "review_state": message.review_state, "text": message.text}


class _Attach:
    """The router's first dependency: puts this app's service on the request for ``chat_service``.
    ``async``: no I/O, so FastAPI runs it on the event loop, not a worker thread."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    async def __call__(self, request: Request) -> None:
        request.state.chat_service = self.service


def build_router(service: ChatService) -> APIRouter:
    """``/api/v1`` with its handlers (module-level functions above) answered by ``service``."""
    router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(_Attach(service))])
    router.include_router(routes)
    return router
