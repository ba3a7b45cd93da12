"""Agents' reviews of bot replies (repository functions; never commit).

The review row is what training reads (``training/export.py``); the message's ``review_state`` is what
the customer's view and the review queue read. Both change together here. Whether a review is allowed
(role, state, a closed conversation) is the service's decision (``chatbot.service.desk``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from chatbot.store.models import Message, Review

REVIEWABLE = ("draft", "sent")
STATE_AFTER = {"approve": "approved", "edit": "edited", "reject": "rejected"}


def record_review(session: Session, message: Message, agent_id: int | None, action: str,
                  corrected: str | None = None) -> Review:
    """Store the review and move the message to its reviewed state. A draft's edit replaces the text the
    customer will see; a reply already sent keeps what the customer saw (the correction stays in the
    review). ``corrected`` is already cleaned; it is kept only for an edit."""
    was_draft = message.review_state == "draft"
    review = Review(message_id=message.id, agent_id=agent_id, action=action, original_text=message.text,
                    corrected_text=corrected if action == "edit" else None)
    session.add(review)
    message.review_state = STATE_AFTER[action]
    if action == "edit" and was_draft and corrected is not None:
        message.text = corrected
    session.flush()
    return review
