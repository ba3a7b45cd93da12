"""``ChatService``: every customer, agent and admin action, authorised and in its own transaction.

The web layer calls only this. Generation happens outside any transaction (it takes tens of ms and must
not hold a row lock); the reply is then written in a second transaction, in one statement that checks the
bot still owns the conversation, so an agent who took over while the reply was being decoded never sees
the bot talk after them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.service.auth import (
    AuthError,
    Forbidden,
    Principal,
    SessionSigner,
    hash_password,
    new_conversation_token,
    session_secret,
    token_matches,
    verify_password,
)
from chatbot.service.batching import Busy, GenerationWorker
from chatbot.service.grounding import Grounder, GroundingSources, GroundingVerdict
from chatbot.service.groupcommit import GroupCommit
from chatbot.service.handoff import NOTICE, HandoffReason, HandoffRules, decide
from chatbot.service.views import (
    ConversationView,
    MessageView,
    SendResult,
    visible_to_customer,
)
from chatbot.settings import Settings
from chatbot.store import audit, registry
from chatbot.store import conversations as repo
from chatbot.store.db import IllegalTransition, InvalidValue, NotFound
from chatbot.store.manager import ConversationStore
from chatbot.store.models import Conversation, Message, Review, User

log = logging.getLogger(__name__)

GENERATION_TIMEOUT_S = 30.0
_REVIEWABLE = ("draft", "sent")


class ChatService:
    def __init__(
        self,
        store: ConversationStore,
        settings: Settings,
        worker: GenerationWorker | None,
        signer: SessionSigner | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker
        self.signer = signer or SessionSigner(session_secret(settings))
        self.writes = GroupCommit(store)
        self.rules = HandoffRules(settings.handoff_min_score, settings.handoff_min_margin,
                                  settings.handoff_low_ratings)
        self.grounding = Grounder(settings.grounding_margin) if settings.grounding else None

    # --- customers ----------------------------------------------------------------------------
    def start_conversation(self, language: str | None = None, channel: str = "web") -> tuple[int, str]:
        """A new ``bot`` conversation and its customer token (shown once, only its hash is stored)."""
        token, digest = new_conversation_token()
        with self.store.transaction() as s:
            # An anonymous customer row per conversation, so erasure works the same as for imported ones.
            customer = repo.create_user(s, f"{channel}-{digest[:16]}")
            conversation = repo.start_conversation(s, customer_id=customer.id, language=language or "en",
                                                   channel=channel)
            conversation.token_hash = digest
            s.flush()
            return conversation.id, token

    def authorize_customer(self, conversation_id: int, token: str | None) -> None:
        """``AuthError`` unless ``token`` belongs to this conversation (unknown ids look the same)."""
        with self.store.transaction(read_only=True) as s:
            state = repo.conversation_state(s, conversation_id)
        _check_token(token, state)

    def customer_messages(self, conversation_id: int) -> tuple[str, list[MessageView]]:
        """The conversation's status and the messages its customer may see, oldest first."""
        with self.store.transaction(read_only=True) as s:
            conversation = repo.get_conversation(s, conversation_id)
            rows = s.scalars(select(Message).where(Message.conversation_id == conversation_id)
                             .order_by(Message.seq))
            return conversation.status, [MessageView.of(m) for m in rows if visible_to_customer(m)]

    def send(self, conversation_id: int, text: str, *, token: str | None = None) -> SendResult:
        """Store the customer's message; answer it if the bot owns the conversation.

        With ``token`` (the REST API) the customer is authorised in the same transaction that stores the
        message; without, the caller has authorised them already (the chat page, on resume). Raises
        ``AuthError`` (nothing stored), ``InvalidMessage`` (nothing stored), ``IllegalTransition``
        (closed), ``Busy`` (message stored, no reply: the customer may try again). Both writes go through
        the group commit, so the replies of one decoded batch are stored in one transaction.
        """
        accepted = self.writes.run(lambda s: self._accept(s, conversation_id, text, token))
        if isinstance(accepted, SendResult):
            return accepted
        mine, context, language, sources = accepted
        generated = self._generate(context, language)
        # Pure CPU, outside both transactions: the write lock is not held while details are matched.
        verdict = self._ground(generated.reply, sources, language)
        return self.writes.run(lambda s: self._store_reply(s, conversation_id, mine, text, generated, verdict))

    def _accept(
        self, s: Session, conversation_id: int, text: str, token: str | None
    ) -> SendResult | tuple[MessageView, list[tuple[str, str]], str, GroundingSources | None]:
        """Store the message; a ``SendResult`` when the bot must not answer, else what to generate from."""
        state = repo.conversation_state(s, conversation_id)
        if token is not None:
            _check_token(token, state)
        message = self._append(s, conversation_id, "customer", text)
        mine = MessageView.of(message)
        assert state is not None  # the append found the conversation
        if state.status == "bot" and decide(text, None, 0, self.rules) is HandoffReason.ASKED:
            notice = self._hand_off(s, conversation_id, HandoffReason.ASKED)
            return SendResult(conversation_id, "pending", mine, notice=notice, handoff=HandoffReason.ASKED.value)
        if state.status != "bot":
            return SendResult(conversation_id, state.status, mine)
        sources = self.grounding.sources(s, conversation_id) if self.grounding is not None else None
        return mine, self._context(s, conversation_id), state.language, sources

    def request_human(self, conversation_id: int) -> SendResult | None:
        """The "talk to a person" button: same as asking in words, without a customer message."""
        with self.store.transaction() as s:
            conversation = repo.get_conversation(s, conversation_id)
            if conversation.status != "bot":
                return None
            notice = self._hand_off(s, conversation_id, HandoffReason.ASKED)
            return SendResult(conversation_id, "pending", notice, notice=notice, handoff=HandoffReason.ASKED.value)

    def rate_reply(self, conversation_id: int, message_id: int, liked: bool) -> str:
        """Thumbs up/down on a bot reply; enough downs hand the conversation to a person. Returns status."""
        with self.store.transaction() as s:
            message = self._message(s, message_id)
            if message.conversation_id != conversation_id or message.role != "bot":
                raise NotFound(f"no bot reply {message_id} in conversation {conversation_id}")
            message.meta = {**(message.meta or {}), "rating": 1 if liked else -1}
            s.flush()
            conversation = repo.get_conversation(s, conversation_id)
            if liked or conversation.status != "bot":
                return conversation.status
            downs = sum(1 for m in conversation.messages if m.role == "bot" and (m.meta or {}).get("rating") == -1)
            if decide("", None, downs, self.rules) is HandoffReason.LOW_RATINGS:
                self._hand_off(s, conversation_id, HandoffReason.LOW_RATINGS)
                return "pending"
            return conversation.status

    def finish(self, conversation_id: int, csat: int | None) -> None:
        """The customer ends the chat, optionally with a 1..5 satisfaction score."""
        with self.store.transaction() as s:
            conversation = repo.get_conversation(s, conversation_id)
            if conversation.status == "closed":
                if csat is not None:
                    repo.set_csat(s, conversation_id, csat)
            else:
                repo.close_conversation(s, conversation_id, csat)

    # --- generation -----------------------------------------------------------------------------
    def _context(self, s: Session, conversation_id: int) -> list[tuple[str, str]]:
        return repo.visible_context(s, conversation_id, self.settings.context_turns)

    def _generate(self, context: list[tuple[str, str]], language: str | None) -> Any:
        if self.worker is None:
            raise Busy("no reply generator is running")
        future = self.worker.submit(context, language)
        try:
            return future.result(GENERATION_TIMEOUT_S)
        except FutureTimeout:
            future.cancel()
            raise Busy("the assistant took too long to answer; please try again") from None

    def _ground(self, reply: Any, sources: GroundingSources | None, language: str) -> GroundingVerdict | None:
        """Which candidate may be sent given the details each states (``chatbot.service.grounding``)."""
        if self.grounding is None or sources is None:
            return None
        candidates = [(c_text, float(score)) for c_text, score in reply.candidates]
        return self.grounding.check(candidates, sources, getattr(reply, "language", None) or language)

    def _store_reply(self, s: Session, conversation_id: int, mine: MessageView, text: str, generated: Any,
                     verdict: GroundingVerdict | None = None) -> SendResult:
        reply = generated.reply
        candidates = [(c_text, float(score)) for c_text, score in reply.candidates]
        reason = decide(text, candidates, 0, self.rules)
        model_version_id = getattr(generated.model_key, "version_id", None)
        fields = {"model_version_id": model_version_id, "decoding": reply.decoding,
                  "confidence": float(reply.confidence), "attention": reply.attention, "candidates": candidates,
                  "max_chars": self.settings.max_message_chars}
        handing_off = reason is HandoffReason.LOW_CONFIDENCE
        reply_text = reply.text
        meta: dict[str, Any] = {"handoff": reason.value} if handing_off else {}
        if verdict is not None:
            meta["grounding"] = verdict.as_meta()
            if verdict.grounded:
                reply_text = candidates[verdict.picked][0]
            elif not handing_off and self.settings.review_mode == "auto":
                # Nothing within the margin is grounded: a person answers (draft mode: it waits as a draft).
                handing_off, reason = True, HandoffReason.UNGROUNDED
                meta["handoff"] = reason.value
        draft = handing_off or self.settings.review_mode == "draft"
        try:
            # Stored only while the bot still owns the conversation, checked and written in one statement.
            stored = repo.store_message(s, conversation_id, "bot", reply_text or "…", only_in=("bot",),
                                        review_state="draft" if draft else "sent", meta=meta or None, **fields)
        except IllegalTransition:
            # An agent (or a handoff) took the conversation while we were decoding: the bot stays quiet.
            state = repo.conversation_state(s, conversation_id)
            status = state.status if state else "closed"
            log.info("dropped a reply for conversation %s: it is %s now", conversation_id, status)
            return SendResult(conversation_id, status, mine)
        if handing_off:
            detail = verdict.reason() if reason is HandoffReason.UNGROUNDED and verdict is not None else None
            notice = self._hand_off(s, conversation_id, reason, detail)
            return SendResult(conversation_id, "pending", mine, notice=notice, handoff=reason.value)
        if draft:
            return SendResult(conversation_id, "bot", mine, awaiting_review=True)
        return SendResult(conversation_id, "bot", mine, reply=MessageView.of(stored))

    def _hand_off(self, s: Session, conversation_id: int, reason: HandoffReason, detail: str | None = None) -> MessageView:
        """``detail`` (e.g. "ungrounded details: 12 pm") is for the agents: kept in the notice's meta, never
        in the text the customer reads."""
        repo.set_status(s, conversation_id, "pending")
        meta = {"handoff": reason.value, **({"reason": detail} if detail else {})}
        notice = repo.store_message(s, conversation_id, "system", NOTICE[reason], meta=meta)
        return MessageView.of(notice)

    def _append(self, s: Session, conversation_id: int, role: str, text: str, **fields: Any) -> repo.StoredMessage:
        return repo.store_message(s, conversation_id, role, text, max_chars=self.settings.max_message_chars,
                                  **fields)

    @staticmethod
    def _message(s: Session, message_id: int) -> Message:
        message = s.get(Message, message_id, with_for_update=True, populate_existing=True)
        if message is None:
            raise NotFound(f"message {message_id} does not exist")
        return message

    # --- admins --------------------------------------------------------------------------------------
    def erase_conversation_customer(self, who: Principal, conversation_id: int) -> dict[str, Any]:
        """Delete everything of the customer behind a conversation (right to erasure)."""
        from chatbot.store.retention import forget_customer

        who.require("admin")
        with self.store.transaction() as s:
            conversation = repo.get_conversation(s, conversation_id)
            if conversation.customer_id is None:
                raise NotFound(f"conversation {conversation_id} has no customer record to erase")
            return forget_customer(s, str(conversation.customer_id), actor_id=who.user_id).as_dict()

    def set_model(self, who: Principal, action: str, version_id: int | None = None) -> str:
        """Promote a version or roll back; the worker of every replica picks the change up by itself."""
        who.require("admin")
        with self.store.transaction() as s:
            if action == "promote" and version_id is not None:
                version = registry.promote(s, version_id, actor_id=who.user_id, reason="admin console")
            elif action == "rollback":
                version = registry.rollback(s, actor_id=who.user_id)
            else:
                raise InvalidValue(f"unknown model action {action!r}")
            return f"{version.name} (version {version.id}) is now active"

    # --- users and sessions ------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str, display_name: str | None = None) -> int:
        if role not in ("agent", "admin"):
            raise InvalidValue(f"role must be agent or admin, not {role!r}")
        with self.store.transaction() as s:
            user = repo.create_user(s, username, role=role, display_name=display_name,
                                    password_hash=hash_password(password))
            audit.record(s, None, "user.create", f"user:{user.id}", {"role": role})
            return user.id

    def login(self, username: str, password: str) -> Principal:
        """The agent or admin with this password; the same ``AuthError`` for every kind of failure."""
        with self.store.transaction() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None or user.role not in ("agent", "admin") or not user.password_hash:
                verify_password(password, _DUMMY_HASH)  # same cost as a real check: no user enumeration
                raise AuthError("wrong username or password")
            if not verify_password(password, user.password_hash):
                audit.record(s, user.id, "user.login_failed", f"user:{user.id}")
                raise AuthError("wrong username or password")
            audit.record(s, user.id, "user.login", f"user:{user.id}")
            return Principal(user.id, user.username, user.role)  # type: ignore[arg-type]

    # --- agents ----------------------------------------------------------------------------------------
    def queue(self, who: Principal, statuses: Iterable[str] | None = None, limit: int = 50) -> list[ConversationView]:
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            return [ConversationView.of(c) for c in repo.list_queue(s, statuses, limit)]

    def transcript(self, who: Principal, conversation_id: int) -> tuple[ConversationView, list[MessageView]]:
        """Everything, drafts and n-best candidates included."""
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            conversation = repo.get_conversation(s, conversation_id)
            return ConversationView.of(conversation), [MessageView.of(m, detail=True) for m in conversation.messages]

    def take_over(self, who: Principal, conversation_id: int) -> None:
        who.require("agent", "admin")
        with self.store.transaction() as s:
            conversation = s.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
            if conversation is not None and conversation.status == "human" and conversation.assigned_agent_id != who.user_id:
                raise IllegalTransition(f"conversation {conversation_id} is already handled by another agent")
            repo.set_status(s, conversation_id, "human", agent_id=who.user_id)
            repo.append_message(s, conversation_id, "system", f"{who.username} from our team has joined the chat.")

    def hand_back(self, who: Principal, conversation_id: int) -> None:
        who.require("agent", "admin")
        with self.store.transaction() as s:
            self._own(s, who, conversation_id)
            repo.set_status(s, conversation_id, "bot", agent_id=who.user_id)
            repo.append_message(s, conversation_id, "system", "You are chatting with our assistant again.")

    def close(self, who: Principal, conversation_id: int) -> None:
        who.require("agent", "admin")
        with self.store.transaction() as s:
            repo.set_status(s, conversation_id, "closed", agent_id=who.user_id)

    def agent_reply(self, who: Principal, conversation_id: int, text: str) -> MessageView:
        who.require("agent", "admin")
        with self.store.transaction() as s:
            self._own(s, who, conversation_id)
            message = self._append(s, conversation_id, "agent", text, meta={"agent_id": who.user_id})
            audit.record(s, who.user_id, "message.agent_reply", f"message:{message.id}")
            return MessageView.of(message)

    def _own(self, s: Session, who: Principal, conversation_id: int) -> Conversation:
        conversation = s.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        if conversation.status != "human":
            raise IllegalTransition(f"conversation {conversation_id} is {conversation.status}; take it over first")
        if conversation.assigned_agent_id != who.user_id and who.role != "admin":
            raise Forbidden(f"conversation {conversation_id} is handled by another agent")
        return conversation

    def review(self, who: Principal, message_id: int, action: str, corrected: str | None = None) -> MessageView:
        """Approve, edit or reject a bot reply; drafts become visible (or never do); all is recorded.

        A draft's edit replaces the text the customer will see; a reply already sent keeps what the
        customer saw and the correction lives in the review, which is what training reads.
        """
        who.require("agent", "admin")
        if action not in ("approve", "edit", "reject"):
            raise InvalidValue(f"unknown review action {action!r}")
        with self.store.transaction() as s:
            message = self._message(s, message_id)
            if message.role != "bot":
                raise InvalidValue("only bot replies are reviewed")
            if message.review_state not in _REVIEWABLE:
                raise IllegalTransition(f"message {message_id} was already reviewed ({message.review_state})")
            was_draft = message.review_state == "draft"
            original = message.text
            if action == "edit":
                if corrected is None:
                    raise InvalidValue("an edit needs the corrected text")
                from chatbot.store.textpolicy import clean_text

                corrected = clean_text(corrected, self.settings.max_message_chars)
            conversation = s.get(Conversation, message.conversation_id, with_for_update=True, populate_existing=True)
            if was_draft and action != "reject" and conversation is not None and conversation.status == "closed":
                raise IllegalTransition("the conversation is closed; the draft can no longer be sent")
            s.add(Review(message_id=message_id, agent_id=who.user_id, action=action, original_text=original,
                         corrected_text=corrected if action == "edit" else None))
            message.review_state = {"approve": "approved", "edit": "edited", "reject": "rejected"}[action]
            if action == "edit" and was_draft:
                message.text = corrected
            audit.record(s, who.user_id, f"review.{action}", f"message:{message_id}",
                         {"was": "draft" if was_draft else "sent"})
            s.flush()
            return MessageView.of(message, detail=True)


_DUMMY_HASH = hash_password("not-a-real-password")


def _check_token(token: str | None, state: repo.ConversationState | None) -> None:
    if not token_matches(token, state.token_hash if state else None):
        raise AuthError("invalid conversation token")


class ReplayService:
    """Regenerate a past bot reply with another model version or decoding settings, for agents only.

    Nothing is stored or sent: the result is shown next to what the customer got. Loaded generators are
    cached per (model, decoding), a handful at most, since agents try a few variants of one reply.
    """

    def __init__(self, service: ChatService, cache_size: int = 4) -> None:
        self.service = service
        self.cache_size = cache_size
        self._cache: dict[tuple[Any, ...], Any] = {}

    def replay(self, who: Principal, message_id: int, version_id: int | None = None, **decoding: Any) -> Any:
        from chatbot.service.models import active_model, load_generator, version_ref

        who.require("agent", "admin")
        svc = self.service
        with svc.store.transaction(read_only=True) as s:
            message = s.get(Message, message_id)
            if message is None or message.role != "bot":
                raise NotFound(f"no bot reply {message_id}")
            context = repo.visible_context(s, message.conversation_id, svc.settings.context_turns, before_seq=message.seq)
            language = repo.get_conversation(s, message.conversation_id).language
        ref = version_ref(svc.store, version_id) if version_id is not None else active_model(svc.store, svc.settings)
        if ref is None:
            raise NotFound("no model to replay with")
        key = (ref, tuple(sorted(decoding.items())))
        generator = self._cache.get(key)
        if generator is None:
            generator = load_generator(ref, svc.settings, **decoding)
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = generator
        return generator.generate([context], language=language)[0]
