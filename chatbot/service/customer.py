"""What customers do: start a chat, send, ask for a person, rate a reply, finish; and the recovery of a
customer message left unanswered by a fault or a restart (``chatbot.service.recovery``).

Each call is its own transaction. A message costs two short writes through the group commit (store it and
read the model's context; store the reply), with generation between them outside any transaction
(``chatbot.service.replies``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatbot.service.auth import AuthError, new_conversation_token, token_matches
from chatbot.service.groupcommit import GroupCommit
from chatbot.service.handoff import HandoffReason, decide
from chatbot.service.replies import Pending, Replies, result_of
from chatbot.service.shadow import ShadowJob, ShadowWorker
from chatbot.service.views import MessageView, SendResult, visible_to_customer
from chatbot.settings import Settings
from chatbot.store import conversations as repo
from chatbot.store.db import InvalidValue, NotFound, StoreUnavailable, check_id
from chatbot.store.manager import ConversationStore
from chatbot.store.models import Message
from chatbot.store.textpolicy import check_language, clean_text
from chatbot.text.tokenize import written_language

log = logging.getLogger(__name__)


class CustomerChat:
    def __init__(self, store: ConversationStore, settings: Settings, replies: Replies,
                 shadow: ShadowWorker | None = None) -> None:
        self.store = store
        self.settings = settings
        self.replies = replies
        self.shadow = shadow  # a shadowed candidate answers a sample of messages in the background, unsent
        self.writes = GroupCommit(store)

    def start_conversation(self, language: str | None = None, channel: str = "web") -> tuple[int, str]:
        """A new ``bot`` conversation and its customer token (shown once, only its hash is stored)."""
        language = check_language(language or "en")  # every reply is decoded in it: refuse what no model serves
        token, digest = new_conversation_token()
        with self.store.transaction() as s:
            # An anonymous customer row per conversation, so erasure works the same as for imported ones.
            customer = repo.create_user(s, f"{channel}-{digest[:16]}")
            conversation = repo.start_conversation(s, customer_id=customer.id, language=language,
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
        status, _, messages = self.customer_view(conversation_id)
        return status, messages

    def customer_view(self, conversation_id: int) -> tuple[str, str, list[MessageView]]:
        """Status, language (the chat page speaks it) and the messages the customer may see, oldest first."""
        with self.store.transaction(read_only=True) as s:
            conversation = repo.get_conversation(s, conversation_id)
            rows = repo.messages_of(s, conversation_id)
            return (conversation.status, conversation.language,
                    [MessageView.of(m) for m in rows if visible_to_customer(m)])

    def send(self, conversation_id: int, text: str, *, token: str | None = None,
             client_key: str | None = None) -> SendResult:
        """Store the customer's message; answer it if the bot owns the conversation.

        With ``token`` (the REST API) the customer is authorised in the same transaction that stores the
        message; without, the caller has authorised them already (the chat page, on resume). Raises
        ``AuthError`` (nothing stored), ``InvalidMessage`` (nothing stored), ``IllegalTransition``
        (closed), ``Busy`` (message stored, no reply: the customer may try again). Both writes go through
        the group commit, so the replies of one decoded batch are stored in one transaction.

        ``client_key`` (the sender's ``Idempotency-Key``) makes a retry safe: a message already stored under
        it is not stored again, and the retry gets its answer, or has it answered now if it has none.
        """
        check_id(conversation_id, "conversation")  # a grouped job's driver error would not be translated
        client_key = _checked_client_key(client_key)
        try:
            accepted = self.writes.run(lambda s: self._accept(s, conversation_id, text, token, client_key))
        except IntegrityError:
            if client_key is None:
                raise
            # A concurrent retry stored this key a moment ago: this one now finds it.
            accepted = self.writes.run(lambda s: self._accept(s, conversation_id, text, token, client_key))
        if isinstance(accepted, SendResult):
            return accepted
        mine, context, language, sources = accepted
        generated = self.replies.generate(context, language)
        # Pure CPU, outside both transactions: the write lock is not held while details are matched.
        verdict = self.replies.ground(generated.reply, sources, language)
        result = self.writes.run(lambda s: self.replies.store(s, conversation_id, mine, text, generated, verdict,
                                                              only_if_unanswered=client_key is not None,
                                                              context=context))
        if self.shadow is not None:  # never blocks: a full or busy shadow queue drops the sample
            self.shadow.offer(ShadowJob(conversation_id, mine.seq, context, language,
                                        getattr(generated.model_key, "version_id", None)))
        return result

    def _accept(self, s: Session, conversation_id: int, text: str, token: str | None,
                client_key: str | None = None) -> SendResult | Pending:
        """Store the message; a ``SendResult`` when the bot must not answer, else what to generate from."""
        state = repo.conversation_state(s, conversation_id)
        if token is not None:
            _check_token(token, state)
        if client_key is not None:
            existing = repo.message_by_client_key(s, conversation_id, client_key)
            if existing is not None:
                if existing.text != clean_text(text, self.settings.max_message_chars):
                    raise InvalidValue("this Idempotency-Key was already used for another message")
                return self._resume(s, conversation_id, existing)
        message = self.replies.append(s, conversation_id, "customer", text, client_key=client_key)
        mine = MessageView.of(message)
        assert state is not None  # the append found the conversation
        language = state.language  # before a hand-off, so its notice is in the customer's language too
        written = written_language(text, language)
        if written != language and repo.adopt_written_language(s, conversation_id, written):
            language = written
        if state.status == "bot" and decide(text, None, 0, self.replies.rules) is HandoffReason.ASKED:
            notice = self.replies.hand_off(s, conversation_id, HandoffReason.ASKED)
            return SendResult(conversation_id, "pending", mine, notice=notice, handoff=HandoffReason.ASKED.value)
        if state.status != "bot":
            return SendResult(conversation_id, state.status, mine)
        return self.replies.pending(s, conversation_id, mine, language)

    def request_human(self, conversation_id: int) -> SendResult | None:
        """The "talk to a person" button: same as asking in words, without a customer message."""
        with self.store.transaction() as s:
            conversation = repo.get_conversation(s, conversation_id)
            if conversation.status != "bot":
                return None
            notice = self.replies.hand_off(s, conversation_id, HandoffReason.ASKED)
            return SendResult(conversation_id, "pending", notice, notice=notice, handoff=HandoffReason.ASKED.value)

    def rate_reply(self, conversation_id: int, message_id: int, liked: bool) -> str:
        """Thumbs up/down on a bot reply; enough downs hand the conversation to a person. Returns status."""
        with self.store.transaction() as s:
            message = repo.lock_message(s, message_id)
            if message.conversation_id != conversation_id or message.role != "bot":
                raise NotFound(f"no bot reply {message_id} in conversation {conversation_id}")
            message.meta = {**(message.meta or {}), "rating": 1 if liked else -1}
            s.flush()
            conversation = repo.get_conversation(s, conversation_id)
            if liked or conversation.status != "bot":
                return conversation.status
            downs = sum(1 for m in conversation.messages if m.role == "bot" and (m.meta or {}).get("rating") == -1)
            if decide("", None, downs, self.replies.rules) is HandoffReason.LOW_RATINGS:
                self.replies.hand_off(s, conversation_id, HandoffReason.LOW_RATINGS)
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

    # --- recovery: stored but unanswered (issue 19) ----------------------------------------------------
    def _resume(self, s: Session, conversation_id: int, message: Message) -> SendResult | Pending:
        """A stored customer message again: its answer if it has one (or if anything came after it), else
        what to generate its answer from."""
        mine = MessageView.of(message)
        state = repo.conversation_state(s, conversation_id)
        assert state is not None  # the message's conversation
        after = repo.messages_after(s, conversation_id, message.seq, stop_at_customer=False)
        if after or state.status != "bot":
            return result_of(conversation_id, state.status, mine, after)
        return self.replies.pending(s, conversation_id, mine, state.language)

    def answer_unanswered(self, conversation_id: int, seq: int) -> SendResult | None:
        """Answer a customer message left without a reply by a fault or a restart; when the bot cannot,
        hand the conversation to a person. None when there is nothing (left) to do."""
        def resume(s: Session) -> Any:
            message = repo.message_at(s, conversation_id, seq)
            return None if message is None or message.role != "customer" else self._resume(s, conversation_id, message)

        accepted = self.writes.run(resume)
        if accepted is None or isinstance(accepted, SendResult):
            return accepted
        mine, context, language, sources = accepted
        try:
            generated = self.replies.generate(context, language)
            verdict = self.replies.ground(generated.reply, sources, language)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - no model, busy, a decoder fault: a person answers instead
            log.warning("conversation %s: could not answer message %s (%s); handing it to a person",
                        conversation_id, seq, exc)
            return self.writes.run(lambda s: self._hand_off_unanswered(s, conversation_id, mine))
        return self.writes.run(lambda s: self.replies.store(s, conversation_id, mine, mine.text, generated, verdict,
                                                            only_if_unanswered=True, context=context))

    def _hand_off_unanswered(self, s: Session, conversation_id: int, mine: MessageView) -> SendResult | None:
        conversation = repo.lock_conversation(s, conversation_id)
        if conversation is None or conversation.status != "bot" or repo.messages_after(s, conversation_id, mine.seq):
            return None  # someone answered it meanwhile
        notice = self.replies.hand_off(s, conversation_id, HandoffReason.UNANSWERED)
        return SendResult(conversation_id, "pending", mine, notice=notice, handoff=HandoffReason.UNANSWERED.value)


def _checked_client_key(key: str | None) -> str | None:
    """An Idempotency-Key: 1-100 printable ASCII characters (a UUID fits), else a clear 422."""
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 100 or not all(33 <= ord(ch) < 127 for ch in key):
        raise InvalidValue("Idempotency-Key must be 1 to 100 printable ASCII characters without spaces")
    return key


def _check_token(token: str | None, state: repo.ConversationState | None) -> None:
    if not token_matches(token, state.token_hash if state else None):
        raise AuthError("invalid conversation token")
