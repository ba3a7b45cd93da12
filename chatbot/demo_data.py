"""What ``chatbot demo`` puts into a fresh database: an agent and an admin to log in with, and example
conversations so the agent console and admin pages have something to show (answered chats, one waiting
for a person, one reply awaiting review, one in Chinese).

Loaded under ``source="demo"`` with fixed external ids, so loading them again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from chatbot.service.chat import ChatService

DEMO_SOURCE = "demo"


@dataclass(frozen=True)
class DemoConversation:
    external_id: str
    language: str
    status: str  # final status: bot, pending or closed
    turns: tuple[tuple[str, str], ...]  # (role, text); role customer, bot or agent
    draft_last: bool = False  # the last bot reply waits for an agent's review
    csat: int | None = None


DEMO_CONVERSATIONS: tuple[DemoConversation, ...] = (
    DemoConversation("restaurant-booking", "en", "closed", (
        ("customer", "Hi, I'd like to book a table for four at an Italian place in San Jose tomorrow."),
        ("bot", "Sure. What time would you like the reservation for?"),
        ("customer", "7 pm please."),
        ("bot", "Please confirm: a table for 4 at 7 pm tomorrow in San Jose."),
        ("customer", "Yes, that's right. Thanks!"),
        ("bot", "Your table is booked. Is there anything else I can help you with?"),
    ), csat=5),
    DemoConversation("coffee-order", "en", "bot", (
        ("customer", "Can I get a medium cappuccino with oat milk?"),
        ("bot", "Sure, one medium cappuccino with oat milk. Anything else?"),
        ("customer", "That's all, thanks."),
    )),
    DemoConversation("refund-request", "en", "pending", (
        ("customer", "I was charged twice for my order last week."),
        ("bot", "I'm sorry to hear that. Could you tell me the order number?"),
        ("customer", "It's AB12345. I want to talk to a person about the refund."),
    )),
    DemoConversation("flight-change", "en", "bot", (
        ("customer", "I need to change my flight to Seattle to next Friday."),
        ("bot", "Which airline are you flying with?"),
        ("customer", "Delta, in the morning if possible."),
        ("bot", "There is a Delta flight leaving at 8:15 am next Friday. Shall I change your booking?"),
    ), draft_last=True),
    DemoConversation("greeting-zh", "zh", "closed", (
        ("customer", "你好"),
        ("bot", "你好，有什么可以帮您的吗？"),
        ("customer", "谢谢，没有了。"),
        ("bot", "不客气，祝您愉快！"),
    ), csat=4),
)


def load_demo_conversations(session: Session) -> int:
    """Add the example conversations that are not there yet (never commits); returns how many were added."""
    from chatbot.store import conversations as repo

    added = 0
    for demo in DEMO_CONVERSATIONS:
        if repo.find_conversation(session, DEMO_SOURCE, demo.external_id) is not None:
            continue
        customer = repo.get_or_create_customer(session, f"demo-customer-{demo.external_id}")
        conversation = repo.start_conversation(session, customer_id=customer.id, language=demo.language,
                                               channel="web", source=DEMO_SOURCE, external_id=demo.external_id)
        last_bot = max((i for i, (role, _) in enumerate(demo.turns) if role == "bot"), default=-1)
        for i, (role, text) in enumerate(demo.turns):
            draft = role == "bot" and demo.draft_last and i == last_bot
            repo.append_message(session, conversation.id, role, text, review_state="draft" if draft else None)
        if demo.status == "closed":
            repo.close_conversation(session, conversation.id, demo.csat)
        elif demo.status != "bot":
            repo.set_status(session, conversation.id, demo.status)
        added += 1
    return added


DEMO_USERS = (("demo-agent", "agent", "Demo Agent"), ("demo-admin", "admin", "Demo Admin"))


def ensure_demo_users(service: ChatService, password: str | None) -> dict[str, str | None]:
    """Create the demo agent and admin if missing: ``{username: password}``, the password only for accounts
    created now (``password`` or a generated one: only its scrypt hash is stored), None for existing ones."""
    import secrets

    from sqlalchemy import select

    from chatbot.store.db import AlreadyExists
    from chatbot.store.models import User

    out: dict[str, str | None] = {}
    for username, role, display_name in DEMO_USERS:
        with service.store.transaction(read_only=True) as s:
            exists = s.scalar(select(User.id).where(User.username == username)) is not None
        out[username] = None
        if not exists:
            secret = password or secrets.token_urlsafe(9)
            try:
                service.add_user(username, secret, role, display_name)
                out[username] = secret
            except AlreadyExists:  # a second `chatbot demo` created it a moment ago
                pass
    return out
