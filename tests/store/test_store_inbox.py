"""The agent workspace's queries on SQLite and PostgreSQL: inbox views, waiting time, previews, counts,
search, the review queue (drafts and the sampled share of sent replies) and suggestion uses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from chatbot.store import ConversationStore, InvalidValue, inbox
from chatbot.store import conversations as repo
from chatbot.store.models import Message, SuggestionUse

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def _at(s, message_id: int, minutes: int) -> None:  # type: ignore[no-untyped-def]
    s.execute(update(Message).where(Message.id == message_id).values(created_at=T0 + timedelta(minutes=minutes)))


def _seed(store: ConversationStore) -> dict[str, int]:
    """Five conversations, one per view, with waiting times set explicitly."""
    with store.transaction() as s:
        ana = repo.create_user(s, "ana", role="agent", display_name="Ana <b>")
        bo = repo.create_user(s, "bo", role="agent")
        ids = {}
        # pending: two unanswered customer messages (waits from the first), after an answered one
        c = repo.start_conversation(s, language="fr").id
        _at(s, repo.store_message(s, c, "customer", "bonjour").id, 0)
        ids["salut"] = repo.store_message(s, c, "bot", "salut").id
        _at(s, ids["salut"], 1)
        _at(s, repo.store_message(s, c, "customer", "mon colis?").id, 10)
        _at(s, repo.store_message(s, c, "customer", "ALLO 100% urgent").id, 12)
        repo.set_status(s, c, "pending")
        ids["pending_late"] = c
        # pending, waiting longer (from minute 5)
        c = repo.start_conversation(s).id
        _at(s, repo.store_message(s, c, "customer", "talk to a human").id, 5)
        repo.store_message(s, c, "system", "A person will join.")  # a notice answers nothing
        repo.set_status(s, c, "pending")
        ids["pending_early"] = c
        # human, ana's, answered by her
        c = repo.start_conversation(s).id
        _at(s, repo.store_message(s, c, "customer", "refund please").id, 2)
        repo.set_status(s, c, "human", agent_id=ana.id)
        repo.store_message(s, c, "agent", "On it.")
        ids["mine"] = c
        # bot with a draft: the draft answers nothing, the customer waits
        c = repo.start_conversation(s).id
        _at(s, repo.store_message(s, c, "customer", "where is my parcel").id, 3)
        draft = repo.store_message(s, c, "bot", "re: where is my parcel", review_state="draft")
        _at(s, draft.id, 4)
        ids["draft_conversation"], ids["draft"] = c, draft.id
        # bot, answered (sent reply)
        c = repo.start_conversation(s).id
        _at(s, repo.store_message(s, c, "customer", "hello").id, 6)
        sent = repo.store_message(s, c, "bot", "hi there")
        _at(s, sent.id, 7)
        ids["bot"], ids["sent"] = c, sent.id
        # closed
        c = repo.start_conversation(s).id
        repo.store_message(s, c, "customer", "bye")
        repo.close_conversation(s, c)
        ids["closed"] = c
        ids["ana"], ids["bo"] = ana.id, bo.id
    return ids


def test_views_waiting_preview_counts_and_search(store: ConversationStore) -> None:
    ids = _seed(store)
    with store.transaction(read_only=True) as s:
        waiting = inbox.inbox(s, "waiting", ids["ana"])
        assert [r.id for r in waiting] == [ids["pending_early"], ids["pending_late"]]  # longest waiting first
        late = waiting[1]
        assert late.waiting_since == T0 + timedelta(minutes=10)  # the first unanswered message, not the last
        assert late.preview == "ALLO 100% urgent" and late.language == "fr"
        assert waiting[0].waiting_since == T0 + timedelta(minutes=5)

        mine = inbox.inbox(s, "mine", ids["ana"])
        assert [(r.id, r.agent_name, r.waiting_since) for r in mine] == [(ids["mine"], "Ana <b>", None)]
        assert inbox.inbox(s, "mine", ids["bo"]) == []

        drafts = inbox.inbox(s, "drafts", ids["ana"])
        assert [(r.id, r.drafts, r.waiting_since) for r in drafts] == [
            (ids["draft_conversation"], 1, T0 + timedelta(minutes=3))]
        bot = inbox.inbox(s, "bot", ids["ana"])
        assert [r.id for r in bot] == [ids["draft_conversation"], ids["bot"]]  # waiting first, answered after
        assert bot[1].waiting_since is None and bot[1].preview == "hello"
        closed = inbox.inbox(s, "closed", ids["ana"])
        assert [(r.id, r.waiting_since) for r in closed] == [(ids["closed"], None)]

        assert inbox.inbox_counts(s, ids["ana"]) == {"waiting": 2, "mine": 1, "drafts": 1, "bot": 2, "closed": 1}
        assert inbox.inbox_counts(s, ids["bo"])["mine"] == 0

        # search ignores the view, is case-insensitive, takes % and _ literally, and finds an id
        assert [r.id for r in inbox.inbox(s, "closed", ids["ana"], search="PARCEL")] == [ids["draft_conversation"]]
        assert [r.id for r in inbox.inbox(s, "bot", ids["ana"], search="100%")] == [ids["pending_late"]]
        assert inbox.inbox(s, "bot", ids["ana"], search="1_0") == []
        assert ids["closed"] in [r.id for r in inbox.inbox(s, "bot", ids["ana"], search=str(ids["closed"]))]
        with pytest.raises(InvalidValue):
            inbox.inbox(s, "everything", ids["ana"])


def test_review_queue_drafts_and_sampled_sent_replies(store: ConversationStore) -> None:
    ids = _seed(store)
    with store.transaction() as s:
        c = repo.start_conversation(s).id
        repo.store_message(s, c, "customer", "first")
        older = repo.store_message(s, c, "bot", "re: first", review_state="draft")
        _at(s, older.id, 1)
        closed = repo.start_conversation(s).id
        repo.store_message(s, closed, "bot", "never sent", review_state="draft")
        repo.close_conversation(s, closed)
    now = T0 + timedelta(hours=1)
    with store.transaction(read_only=True) as s:
        queue = inbox.review_queue(s, 0.0, now=now)
        assert [item.message_id for item in queue] == [older.id, ids["draft"]]  # oldest first, closed left out
        assert queue[1].customer_text == "where is my parcel" and queue[1].review_state == "draft"
        everything = inbox.review_queue(s, 1.0, now=now)
        assert [item.message_id for item in everything] == [ids["salut"], older.id, ids["draft"], ids["sent"]]
        # sampled replies older than SAMPLE_DAYS leave the queue; drafts stay
        assert [i.message_id for i in inbox.review_queue(s, 1.0, now=now + timedelta(days=30))] == [older.id, ids["draft"]]
        share = inbox.review_queue(s, 0.5, now=now)
        assert (ids["sent"] in [i.message_id for i in share]) == (ids["sent"] % 100 < 50)  # by id, stable
        with pytest.raises(InvalidValue):
            inbox.review_queue(s, 1.5)


def test_suggestion_uses_are_checked_and_kept(store: ConversationStore) -> None:
    ids = _seed(store)
    with store.transaction() as s:
        reply = repo.store_message(s, ids["mine"], "agent", "Refund sent.")
        inbox.record_suggestion_use(s, reply.id, ids["ana"], "edited", source="model", candidate_rank=1, shown=3)
        for bad in ({"outcome": "used"}, {"outcome": "as_is"}, {"outcome": "ignored", "source": "model"},
                    {"outcome": "as_is", "source": "web"}):
            with pytest.raises(InvalidValue):
                inbox.record_suggestion_use(s, reply.id, ids["ana"], **bad)
    with store.transaction(read_only=True) as s:
        uses = inbox.suggestion_uses(s, [reply.id, 999])
        assert list(uses) == [reply.id]
        use: SuggestionUse = uses[reply.id]
        assert (use.outcome, use.source, use.candidate_rank, use.suggestions_shown) == ("edited", "model", 1, 3)
        assert inbox.staff(s) == [(ids["ana"], "Ana <b>"), (ids["bo"], "bo")]
