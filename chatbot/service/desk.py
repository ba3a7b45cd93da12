"""What agents do to a conversation: the queue and transcripts, take over, reply, hand back, close, and
review the bot's replies (what training learns from). Every call checks the caller's role first; a
conversation another agent handles is theirs (or an admin's). The inbox views, assignment and suggested
replies of the ``/agent`` page build on this in ``chatbot.service.workspace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from chatbot.service.auth import Forbidden, Principal
from chatbot.service.replies import Replies
from chatbot.service.views import ConversationView, MessageView
from chatbot.settings import Settings
from chatbot.store import audit, reviews
from chatbot.store import conversations as repo
from chatbot.store.db import IllegalTransition, InvalidValue, NotFound
from chatbot.store.inbox import record_suggestion_use
from chatbot.store.manager import ConversationStore
from chatbot.store.models import Conversation
from chatbot.store.textpolicy import clean_text


class AgentDesk:
    def __init__(self, store: ConversationStore, settings: Settings, replies: Replies) -> None:
        self.store = store
        self.settings = settings
        self.replies = replies

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

    def n_best(self, context: list[tuple[str, str]], language: str | None) -> Any:
        """The model's reply to ``context`` (its n-best in ``.candidates``), nothing stored: the agent
        console's suggested replies. ``Busy`` (or ``NoModel``) when no reply can be generated now."""
        return self.replies.generate(context, language).reply

    def take_over(self, who: Principal, conversation_id: int) -> None:
        who.require("agent", "admin")
        with self.store.transaction() as s:
            conversation = repo.lock_conversation(s, conversation_id)
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
        """Checked like take-over: a conversation another agent handles is theirs to close (or an admin's)."""
        who.require("agent", "admin")
        with self.store.transaction() as s:
            conversation = repo.lock_conversation(s, conversation_id)
            if conversation is None:
                raise NotFound(f"conversation {conversation_id} does not exist")
            if (conversation.status == "human" and conversation.assigned_agent_id != who.user_id
                    and who.role != "admin"):
                raise Forbidden(f"conversation {conversation_id} is handled by another agent")
            repo.set_status(s, conversation_id, "closed", agent_id=who.user_id)

    def agent_reply(self, who: Principal, conversation_id: int, text: str, *,
                    suggestion: dict[str, Any] | None = None) -> MessageView:
        """``suggestion``: what the agent did with the suggested replies (keyword arguments of
        ``chatbot.store.inbox.record_suggestion_use``), stored with the message in one transaction."""
        who.require("agent", "admin")
        with self.store.transaction() as s:
            self._own(s, who, conversation_id)
            message = self.replies.append(s, conversation_id, "agent", text, meta={"agent_id": who.user_id})
            audit.record(s, who.user_id, "message.agent_reply", f"message:{message.id}")
            if suggestion is not None:
                record_suggestion_use(s, message.id, who.user_id, **suggestion)
            return MessageView.of(message)

    def _own(self, s: Session, who: Principal, conversation_id: int) -> Conversation:
        conversation = repo.lock_conversation(s, conversation_id)
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
        if action not in reviews.STATE_AFTER:
            raise InvalidValue(f"unknown review action {action!r}")
        with self.store.transaction() as s:
            message = repo.lock_message(s, message_id)
            if message.role != "bot":
                raise InvalidValue("only bot replies are reviewed")
            if message.review_state not in reviews.REVIEWABLE:
                raise IllegalTransition(f"message {message_id} was already reviewed ({message.review_state})")
            was_draft = message.review_state == "draft"
            if action == "edit":
                if corrected is None:
                    raise InvalidValue("an edit needs the corrected text")
                corrected = clean_text(corrected, self.settings.max_message_chars)
            conversation = repo.lock_conversation(s, message.conversation_id)
            if was_draft and action != "reject" and conversation is not None and conversation.status == "closed":
                raise IllegalTransition("the conversation is closed; the draft can no longer be sent")
            reviews.record_review(s, message, who.user_id, action, corrected)
            audit.record(s, who.user_id, f"review.{action}", f"message:{message_id}",
                         {"was": "draft" if was_draft else "sent"})
            s.flush()
            return MessageView.of(message, detail=True)
