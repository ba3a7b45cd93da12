"""An agent's review made after a conversation's last message reaches the export (`--since`, the nightly job).

Issue 18, item 4: a review does not touch ``conversations.updated_at`` (the last message: the agent queue and
retention read it), so an export that selected conversations by ``updated_at >= since`` alone never saw a
late correction. Runs on SQLite and PostgreSQL (the ``store`` fixture behind ``scripted_service``).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select

from chatbot.store.models import Conversation, Review
from training.export import ExportOptions, export_pairs
from training.sources import db_pairs


def _agent(service):  # type: ignore[no-untyped-def]
    service.add_user("ana", "password123", "agent")
    return service.login("ana", "password123")


def _pairs(store, tmp_path, since):  # type: ignore[no-untyped-def]
    out = tmp_path / "pairs.jsonl"
    with store.transaction(read_only=True) as s:
        manifest = export_pairs(s, out, ExportOptions(since=since, redact=False))
    return manifest, [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_a_correction_made_after_the_last_message_is_exported_since_a_time_between(scripted_service, tmp_path):
    service = scripted_service
    who = _agent(service)
    reviewed_id, _ = service.start_conversation("en")
    reply = service.send(reviewed_id, "where is my parcel").reply
    quiet_id, _ = service.start_conversation("en")
    quiet_reply = service.send(quiet_id, "hello").reply
    service.review(who, quiet_reply.id, "edit", "Hello! How can I help?")  # reviewed before `since`: stays out
    with service.store.transaction(read_only=True) as s:
        last_activity = max([*s.scalars(select(Conversation.updated_at)), *s.scalars(select(Review.created_at))])
    since = last_activity + timedelta(milliseconds=1)
    time.sleep(0.05)  # the late review is strictly after `since` on any clock resolution
    service.review(who, reply.id, "edit", "Your parcel arrives on Monday.")

    with service.store.transaction(read_only=True) as s:
        updated = s.get(Conversation, reviewed_id).updated_at
        review_time = s.scalars(select(Review.created_at).where(Review.message_id == reply.id)).one()
    assert updated < since < review_time  # the case of the issue: only the review is newer than `since`

    manifest, pairs = _pairs(service.store, tmp_path, since)
    assert [(p["conversation_id"], p["kind"], p["response"]) for p in pairs] == [
        (reviewed_id, "corrected", "Your parcel arrives on Monday.")]
    assert pairs[0]["context"] == [{"role": "customer", "text": "where is my parcel"}]
    assert manifest["conversations"] == 1 and manifest["responses"] == {"corrected": 1}

    # The nightly job's path (`db_pairs(store, since=last successful run)`) sees it too (a correction counts twice).
    nightly, _ = db_pairs(service.store, max_turns=5, since=since)
    assert [(p.reply, p.meta["kind"]) for p in nightly] == [("Your parcel arrives on Monday.", "corrected")] * 2

    # Nothing newer than the review: nothing to export.
    manifest, pairs = _pairs(service.store, tmp_path, review_time + timedelta(milliseconds=1))
    assert pairs == [] and manifest["conversations"] == 0
