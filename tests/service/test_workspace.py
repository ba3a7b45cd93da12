"""The agent workspace service on SQLite and PostgreSQL: assignment and its authorisation, inbox views,
the review queue, suggested replies (grounded first, decoded once per customer message), saved replies, and
what agents did with the suggestions, exported with the training pairs."""

from __future__ import annotations

import json

import pytest

from chatbot.service.auth import Forbidden
from chatbot.service.facts import FactsService
from chatbot.service.workspace import Suggestion, Workspace, suggestion_outcome
from chatbot.store.db import InvalidValue
from training.export import ExportOptions, export_pairs


def _staff(service, name, role="agent"):
    service.add_user(name, "password123", role)
    return service.login(name, "password123")


def test_assign_follows_the_take_over_rule_and_the_inbox_shows_it(scripted_service):
    service, space = scripted_service, Workspace(scripted_service)
    ana, bo, root = _staff(service, "ana"), _staff(service, "bo"), _staff(service, "root", "admin")
    cid, _ = service.start_conversation("en")
    service.send(cid, "talk to a human please")
    assert [r.id for r in space.inbox(ana, "waiting")] == [cid]
    assert space.counts(ana)["waiting"] == 1
    assert space.assign(ana, cid, ana.user_id) == "ana"  # assign to me
    assert [(r.id, r.agent_name) for r in space.inbox(ana, "mine")] == [(cid, "ana")]
    assert space.inbox(bo, "mine") == []
    with pytest.raises(Forbidden):  # ana handles it: bo may not pass it on
        space.assign(bo, cid, bo.user_id)
    customer_id = next(r for r in space.staff(root) if r[1] == "ana")[0] + 100
    with pytest.raises(InvalidValue):
        space.assign(ana, cid, customer_id)
    space.assign(ana, cid, bo.user_id)  # ana passes it on
    assert [r.id for r in space.inbox(bo, "mine")] == [cid]
    space.assign(root, cid, ana.user_id)  # an admin may move anything
    _, messages = service.customer_messages(cid)
    assert [m.text for m in messages if m.role == "system"][-2:] == [
        "bo from our team has joined the chat.", "ana from our team has joined the chat."]


def test_review_queue_in_draft_mode_and_sampled_in_auto_mode(make_service, replies):
    drafting = make_service(replies, review_mode="draft")
    ana = _staff(drafting, "ana")
    first, _ = drafting.start_conversation("en")
    drafting.send(first, "where is my parcel")
    second, _ = drafting.start_conversation("en")
    drafting.send(second, "my refund")
    queue = Workspace(drafting).review_queue(ana)
    assert [(i.conversation_id, i.customer_text, i.review_state) for i in queue] == [
        (first, "where is my parcel", "draft"), (second, "my refund", "draft")]
    drafting.review(ana, queue[0].message_id, "approve")
    assert [i.conversation_id for i in Workspace(drafting).review_queue(ana)] == [second]

    auto = make_service(replies, review_mode="auto", review_sample_share=1.0)
    third, _ = auto.start_conversation("en")
    sent = auto.send(third, "hello").reply
    assert sent.id in [i.message_id for i in Workspace(auto).review_queue(ana)]
    unsampled = make_service(replies, review_mode="auto")
    assert sent.id not in [i.message_id for i in Workspace(unsampled).review_queue(ana)]


def test_suggestions_grounded_first_saved_replies_and_the_use_is_exported(scripted_service, replies, tmp_path):
    service, space = scripted_service, Workspace(scripted_service)
    ana, bo, root = _staff(service, "ana"), _staff(service, "bo"), _staff(service, "root", "admin")
    hours = FactsService(service).add(root, "Opening hours", "We are open 9:00-18:00.", "en")
    FactsService(service).add(root, "Öffnungszeiten", "Geöffnet 9-18 Uhr.", "de")
    cid, _ = service.start_conversation("en")
    service.take_over(ana, cid)
    assert space.suggestions(ana, cid) == []  # the customer has not written yet
    asked = "a table for two at 7 pm please"
    replies.scripts[asked] = [("Booked for 8 pm.", -0.3), ("Booked for 7 pm.", -0.5), ("", -0.6),
                              ("booked for 7 PM.", -0.7)]
    service.send(cid, asked)
    suggestions = space.suggestions(ana, cid)
    assert [(s.text, s.rank, s.grounded) for s in suggestions] == [("Booked for 7 pm.", 1, True),
                                                                  ("Booked for 8 pm.", 0, False)]
    assert suggestions[1].ungrounded == ("8 pm",)
    calls = len(replies.batch_sizes)
    assert space.suggestions(ana, cid) == suggestions and len(replies.batch_sizes) == calls  # cached
    assert space.suggestions(bo, cid) == []  # not bo's conversation

    saved = space.saved_replies(ana, "open", language="en")
    assert [(s.title, s.fact_id, s.source) for s in saved] == [("Opening hours", hours.id, "saved")]
    assert next(s.title for s in space.saved_replies(ana, "", language="de")) == "Öffnungszeiten"

    space.send(ana, cid, "Booked for 7 pm.", suggestions[0], shown=2)  # as it was
    service.send(cid, "and a high chair?")
    space.send(ana, cid, "We are open 9:00-18:00, and yes.", saved[0], shown=3)  # a saved reply, edited
    service.send(cid, "thanks")
    space.send(ana, cid, "You are welcome.", None, shown=2)  # suggestions ignored
    service.send(cid, "bye")
    space.send(ana, cid, "Bye!", None, shown=0)  # nothing suggested: nothing recorded

    with service.store.transaction(read_only=True) as s:
        export_pairs(s, tmp_path / "pairs.jsonl", ExportOptions(redact=False))
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [(r["response"], r["suggestion"]) for r in rows if r["kind"] == "agent"] == [
        ("Booked for 7 pm.", {"outcome": "as_is", "source": "model", "rank": 1}),
        ("We are open 9:00-18:00, and yes.", {"outcome": "edited", "source": "saved", "rank": None}),
        ("You are welcome.", {"outcome": "ignored", "source": None, "rank": None}),
        ("Bye!", None)]


def test_suggestion_outcome_is_decided_by_the_text_sent():
    used = Suggestion("Booked for 7 pm.", "model", rank=2)
    assert suggestion_outcome(" Booked for 7 pm. ", used, 3)["outcome"] == "as_is"
    assert suggestion_outcome("Booked for 7:30 pm.", used, 3) == {
        "outcome": "edited", "source": "model", "candidate_rank": 2, "fact_id": None, "shown": 3}
    assert suggestion_outcome("Hi", None, 3) == {"outcome": "ignored", "shown": 3}
    assert suggestion_outcome("Hi", None, 0) is None
