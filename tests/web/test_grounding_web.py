"""Company facts in /admin and ungrounded details in /agent, over real HTTP: the pages' own Gradio endpoints
(what the browser calls) with a signed staff session, and the REST API. Every admin-provided value and
every detail comes back as text, never as markup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

CHARGED = "My card was charged twice"
INVENTED = "Please confirm the following details: You want to book a table for 2 people at 12 pm on March 12th."


class GradioError(Exception):
    pass


def call(client: httpx.Client, page: str, api_name: str, *data: Any, session: str | None = None) -> list[Any]:
    """One event of a Gradio page, as the browser runs it: POST the inputs, read the result stream.
    ``session`` keeps the page's state between calls (e.g. the reply picker's choices) like one open tab."""
    body: dict[str, Any] = {"data": list(data), **({"session_hash": session} if session else {})}
    started = client.post(f"/{page}/gradio_api/call/{api_name}", json=body)
    if started.status_code != 200:  # e.g. 401: the page's auth dependency refused the session
        raise GradioError(f"{started.status_code}: {started.text}")
    stream = client.get(f"/{page}/gradio_api/call/{api_name}/{started.json()['event_id']}")
    event, payload = None, None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            payload = json.loads(line.removeprefix("data: "))
    if event != "complete":
        raise GradioError(str(payload))
    return payload


def _text(content: Any) -> str:
    """A chat row's text: Gradio sends a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


@contextmanager
def staff(live_server, username: str) -> Iterator[httpx.Client]:
    """A client signed in as an agent or admin (the session cookie the login sets)."""
    with httpx.Client(base_url=live_server.url, timeout=20) as client:
        assert client.post("/api/v1/login", json={"username": username, "password": "password123"}).status_code == 200
        yield client


def test_admin_adds_edits_and_deletes_facts_shown_as_text(live_server):
    title, text = "<b>Hours</b> **bold** [x](javascript:alert(1))", "<script>alert(1)</script> 9 am to 6 pm"
    with staff(live_server, "root") as admin:
        added = call(admin, "admin", "add_fact", title, text, "en")[0]
        assert added.startswith("Added fact ") and title in added
        table = call(admin, "admin", "list_facts")[0]
        assert table["headers"] == ["id", "title", "text", "language", "updated (UTC)"]
        fact_id, *row = table["data"][0]
        assert row[:3] == [title, text, "en"]  # exactly as typed
        assert call(admin, "admin", "save_fact", fact_id, "Opening hours", "Mon-Fri 9 am to 6 pm", "en")[0] == (
            f"Saved fact {fact_id}: Opening hours")
        assert [r[1:4] for r in call(admin, "admin", "list_facts")[0]["data"]] == [
            ["Opening hours", "Mon-Fri 9 am to 6 pm", "en"]]
        with pytest.raises(GradioError):
            call(admin, "admin", "add_fact", "", "no title", "en")
        config = admin.get("/admin/config").json()
    # the table renders its cells as plain strings and the result box is a read-only text box
    by_id = {c.get("props", {}).get("elem_id"): c for c in config["components"]}
    datatype = by_id["admin-facts"]["props"]["datatype"]
    assert set([datatype] if isinstance(datatype, str) else datatype) == {"str"}
    assert by_id["admin-fact-result"]["type"] == "textbox"

    with staff(live_server, "ana") as agent:  # an agent cannot change facts (or reach /admin at all)
        with pytest.raises(GradioError, match="401"):
            call(agent, "admin", "add_fact", "Refunds", "never", "en")
        with pytest.raises(GradioError, match="401"):
            call(agent, "admin", "delete_fact", fact_id)
    with staff(live_server, "root") as admin:
        assert call(admin, "admin", "delete_fact", fact_id)[0] == f"Deleted fact {fact_id}."
        assert call(admin, "admin", "list_facts")[0]["data"] == []


def test_agent_console_highlights_the_ungrounded_details_of_a_reply(live_server):
    live_server.replies.scripts[CHARGED] = [(INVENTED, -0.5), ("other", -2.0)]
    with httpx.Client(base_url=live_server.url, timeout=20) as customer:
        started = customer.post("/api/v1/conversations", json={"language": "en"}).json()
        auth = {"Authorization": f"Bearer {started['token']}"}
        sent = customer.post(f"/api/v1/conversations/{started['id']}/messages", json={"text": CHARGED},
                             headers=auth).json()
    assert sent["status"] == "pending" and sent["reply"] is None and sent["handoff"] == "ungrounded_details"
    cid = started["id"]
    with staff(live_server, "ana") as agent:
        messages = agent.get(f"/api/v1/agent/conversations/{cid}").json()["messages"]
        bot = next(m for m in messages if m["role"] == "bot")
        assert bot["review_state"] == "draft"
        assert bot["meta"]["grounding"]["ungrounded"] == ["2", "12 pm", "March 12th"]
        rows, _header, _choices, *_suggested = call(agent, "agent", "open_conversation", cid, None, session="tab")
        contents = [_text(r["content"]) for r in rows]
        assert any(c.endswith("⚠ Not in the conversation or company facts: 2, 12 pm, March 12th") for c in contents)
        assert any("(why: ungrounded details: 2, 12 pm, March 12th)" in c for c in contents)
        candidates, grounding, _heatmap, corrected = call(agent, "agent", "show_reply", cid, bot["id"], session="tab")
        assert "Not in the conversation or company facts: " in grounding
        assert [m for m in ("<mark>2</mark>", "<mark>12 pm</mark>", "<mark>March 12th</mark>") if m in grounding] == [
            "<mark>2</mark>", "<mark>12 pm</mark>", "<mark>March 12th</mark>"]
        assert candidates["data"][0][1:] == [INVENTED, 0.5 * -1, "2, 12 pm, March 12th"]
        assert candidates["data"][1][3] == ""  # "other" states nothing
        assert corrected == INVENTED


def test_a_fact_added_in_admin_grounds_the_next_reply(live_server):
    hours = "We are open from 9 am to 6 pm."
    live_server.replies.scripts["when are you open?"] = [(hours, -0.3)]
    with httpx.Client(base_url=live_server.url, timeout=20) as customer:
        first = customer.post("/api/v1/conversations", json={}).json()
        reply = customer.post(f"/api/v1/conversations/{first['id']}/messages", json={"text": "when are you open?"},
                              headers={"Authorization": f"Bearer {first['token']}"}).json()
        assert reply["handoff"] == "ungrounded_details"
        with staff(live_server, "root") as admin:
            call(admin, "admin", "add_fact", "Opening hours", "Every day from 09:00 to 18:00", "en")
        second = customer.post("/api/v1/conversations", json={}).json()
        reply = customer.post(f"/api/v1/conversations/{second['id']}/messages", json={"text": "when are you open?"},
                              headers={"Authorization": f"Bearer {second['token']}"}).json()
    assert reply["status"] == "bot" and reply["reply"]["text"] == hours


def test_details_are_escaped_in_the_console():
    from chatbot.service.views import MessageView
    from web.agent import candidate_rows, grounding_html, grounding_note, transcript_rows

    evil = "<img src=x onerror=alert(1)>"
    meta = {"grounding": {"picked": None, "ungrounded": [evil, "12 pm"], "candidates": [[evil, "12 pm"]]}}
    page = grounding_html(meta)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "<mark>12 pm</mark>" in page
    assert grounding_note(meta) == f"Not in the conversation or company facts: {evil}, 12 pm"
    assert grounding_html({"grounding": {"picked": 0, "ungrounded": [], "candidates": [[]]}}) == ""
    assert grounding_html(None) == ""
    assert "Candidate 2 was used" in grounding_html({"grounding": {"picked": 1, "ungrounded": [], "candidates": []}})
    failed = grounding_html({"grounding": {"picked": None, "ungrounded": [], "candidates": [], "error": "<b>"}})
    assert 'class="ungrounded"' in failed and "check failed (&lt;b&gt;)" in failed
    from datetime import datetime, timezone

    message = MessageView(7, 2, "bot", f"{evil} at 12 pm", datetime.now(timezone.utc), "draft", 0.5, None,
                          None, [(f"{evil} at 12 pm", -0.5)], None, meta)
    assert "<img" not in transcript_rows([message])[0]["content"]
    assert candidate_rows(message) == [[1, f"{evil} at 12 pm", -0.5, f"{evil}, 12 pm"]]


def test_a_taught_answer_says_which_question_taught_it_escaped():
    from datetime import datetime, timezone

    from chatbot.service.views import MessageView
    from web.agent import candidate_rows, grounding_html, taught_note

    evil = "<script>alert(1)</script> gift cards?"
    meta = {"taught": {"question": evil, "similarity": 0.4108, "bonus": 0.0822}}
    page = grounding_html(meta)
    assert page.startswith('<div class="taught-note">') and "<script>" not in page and "&lt;script&gt;" in page
    assert taught_note(meta) == f'Taught answer: an agent answered "{evil}" this way (similarity 0.41, +0.082 to ' \
                                'its score).'
    assert taught_note(None) == "" and taught_note({"taught": {}}) == ""
    message = MessageView(7, 2, "bot", "Gift cards are valid for one year.", datetime.now(timezone.utc), "sent",
                          0.5, None, None, [("Gift cards are valid for one year.", -0.23), ("We accept Visa.", -0.19)],
                          None, meta)
    assert [row[0] for row in candidate_rows(message)] == ["1 (taught)", 2]
    flagged = {**meta, "grounding": {"picked": None, "ungrounded": ["12 pm"], "candidates": [["12 pm"], []]}}
    assert 'class="ungrounded"' in grounding_html(flagged) and 'class="taught-note"' in grounding_html(flagged)
