"""The agent workspace in headless Chromium (Debian's) over a real server: the inbox (search, click a row to
open it, preview and waiting time, live assignment for a second agent, a live refresh that keeps a half-written
reply), the copilot's suggested replies, saved replies typed with ``/``, the review queue driven by the
keyboard, values from customers, agents and admins shown as text, and the layout at 1280x800 without
horizontal scrolling."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from test_browser import _shot, browser  # noqa: F401 - the fixture (tests/web is on sys.path, rootdir-less)

from chatbot.service.facts import FactsService
from chatbot.store import conversations as repo
from chatbot.store.models import SuggestionUse

pytestmark = [pytest.mark.browser, pytest.mark.slow]
XSS = '<img src=x onerror="window.__pwned=1;alert(1)">'
VIEWPORT = {"width": 1280, "height": 800}


def _sign_in(chromium, url: str, username: str):  # type: ignore[no-untyped-def]
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"script ran: {d.message}")))
    page.goto(url + "/agent")
    page.fill("#username", username)
    page.fill("#password", "password123")
    page.click("#sign-in")
    page.wait_for_url("**/agent/")
    return page


def _no_horizontal_scroll(page, *selectors: str) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    for selector in selectors:
        overflow = page.evaluate(f"""() => [...document.querySelectorAll('{selector}, {selector} *')]
            .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1
                     && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).length""")
        assert overflow == 0, f"{selector} scrolls sideways"


def test_inbox_copilot_saved_replies_and_live_assignment(browser, live_server):  # noqa: F811
    service = live_server.service
    service.add_user("bo", "password123", "agent", display_name=f"Bo {XSS}")
    root = service.login("root", "password123")
    FactsService(service).add(root, f"Opening hours {XSS}", "We are open every day from 9:00 to 18:00.", "en")
    quiet, _ = service.start_conversation("en")
    service.send(quiet, "just browsing")
    cid, _ = service.start_conversation("en")
    service.send(cid, "where is my parcel?")
    service.send(cid, f"hello? {XSS}")
    service.send(cid, "talk to a human please")  # handed to a person: "waiting for a person"

    ana = _sign_in(browser, live_server.url, "ana")
    expect(ana.locator("#inbox-view")).to_contain_text("Waiting for a person (1)", timeout=20_000)
    row = ana.locator("#agent-queue").get_by_text("talk to a human please").filter(visible=True).first
    expect(ana.locator("#agent-queue")).to_contain_text(re.compile(r"just now|\d+ s"))  # the waiting time
    _no_horizontal_scroll(ana, "#agent-queue")
    _shot(ana, "agent-inbox")
    search = ana.locator("#inbox-search textarea, #inbox-search input").first
    search.fill("browsing")  # search looks through every conversation, whatever the view
    expect(ana.locator("#agent-queue")).to_contain_text("just browsing", timeout=20_000)
    expect(ana.locator("#agent-queue")).not_to_contain_text("talk to a human please")
    search.fill("")
    expect(ana.locator("#agent-queue")).to_contain_text("talk to a human please", timeout=20_000)
    row.click()
    transcript = ana.locator("#agent-transcript")
    transcript.get_by_text(f"Customer: hello? {XSS}").wait_for(timeout=20_000)  # labelled, shown as text
    expect(ana.locator("#agent-header")).to_contain_text(f"Conversation {cid}")

    bo = _sign_in(browser, live_server.url, "bo")  # a second agent has the same conversation open
    bo.locator("#agent-queue").get_by_text("talk to a human please").filter(visible=True).first.click()
    expect(bo.locator("#agent-header")).to_contain_text("Status pending", timeout=20_000)

    ana.click("#agent-take-over")
    expect(bo.locator("#agent-header")).to_contain_text("handled by ana", timeout=20_000)  # live, no click
    expect(bo.locator("#inbox-view")).to_contain_text("Waiting for a person (0)", timeout=20_000)

    # the copilot: the model's n-best for the customer's last message, click to insert, send as it is
    suggestion = ana.locator("#agent-suggestions").get_by_text("re: talk to a human please")
    suggestion.wait_for(timeout=20_000)
    suggestion.click()
    reply = ana.locator("#agent-reply textarea")
    expect(reply).to_have_value("re: talk to a human please", timeout=20_000)
    ana.click("#agent-send")
    transcript.get_by_text("Agent: re: talk to a human please").wait_for(timeout=20_000)

    # a saved reply (the company facts): "/" and a few letters, Enter inserts the first match, Enter sends
    service.send(cid, "when are you open?")
    transcript.get_by_text("Customer: when are you open?").wait_for(timeout=20_000)
    reply.click()
    reply.press_sequentially("/open")
    expect(ana.locator("#agent-saved")).to_contain_text(f"Opening hours {XSS}", timeout=20_000)  # as text
    reply.press("Enter")
    expect(reply).to_have_value("We are open every day from 9:00 to 18:00.", timeout=20_000)
    reply.press("Enter")
    transcript.get_by_text("Agent: We are open every day from 9:00 to 18:00.").wait_for(timeout=20_000)

    # live updates keep what the agent is typing: a new customer message arrives, the draft stays
    reply.fill("a half-written answer")
    service.send(cid, "are you still there?")
    transcript.get_by_text("Customer: are you still there?").wait_for(timeout=20_000)
    expect(reply).to_have_value("a half-written answer")
    expect(ana.locator("#agent-header")).to_contain_text(f"Conversation {cid}")  # and the open conversation

    # pass it on to bo, whose display name is shown as the text it is
    ana.locator("#agent-assign-to input").click()
    ana.get_by_role("option", name=f"Bo {XSS}").click()
    ana.click("#agent-assign")
    expect(ana.locator("#agent-header")).to_contain_text(f"handled by Bo {XSS}", timeout=20_000)
    expect(bo.locator("#inbox-view")).to_contain_text("Mine (1)", timeout=20_000)
    for page in (ana, bo):
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img[src=x]").count() == 0

    with service.store.transaction(read_only=True) as s:
        uses = [(u.outcome, u.source) for u in s.scalars(select(SuggestionUse).order_by(SuggestionUse.id))]
    assert uses == [("as_is", "model"), ("as_is", "saved")]


def test_review_queue_three_drafts_approved_with_the_keyboard(browser, live_server):  # noqa: F811
    """Three drafts approved with ``a`` in a row, then the other ways through the queue: a candidate put in
    the editor by its number and saved with Ctrl+Enter, a candidate clicked and edited, a draft rejected."""
    service = live_server.service
    drafts = []
    texts = ["my parcel?", f"refund {XSS}", "change my booking", "opening hours?", "lost my card", "spam spam"]
    with service.store.transaction() as s:  # six drafts waiting (the server runs in auto mode)
        for i, text in enumerate(texts):
            c = repo.start_conversation(s).id
            repo.store_message(s, c, "customer", text)
            drafts.append((c, repo.store_message(s, c, "bot", f"draft {i + 1}", review_state="draft",
                                                 candidates=[(f"draft {i + 1}", -0.4), (f"other {i + 1}", -1.5)]).id))
    page = _sign_in(browser, live_server.url, "ana")
    page.get_by_role("tab", name="Review queue").click()
    keys = page.locator("#review-keys")
    for listed in ("A", "Ctrl+Enter", "R", "Esc"):
        expect(keys).to_contain_text(listed)
    editor = page.locator("#review-editor textarea")
    current = page.locator("#review-current")
    for i, (c, _) in enumerate(drafts[:3]):  # oldest first; each action opens the next one
        expect(editor).to_have_value(f"draft {i + 1}", timeout=20_000)
        expect(current).to_contain_text(f"Conversation {c}")
        if i == 1:
            expect(current).to_contain_text(f"Customer: refund {XSS}")
            _no_horizontal_scroll(page, "#review-queue", "#review-current")
            _shot(page, "agent-review")
        page.keyboard.press("a")

    expect(current).to_contain_text(f"Conversation {drafts[3][0]}", timeout=20_000)  # "2" picks candidate 2
    expect(editor).to_have_value("draft 4", timeout=20_000)
    page.keyboard.press("2")
    expect(editor).to_have_value("other 4", timeout=20_000)
    page.keyboard.press("e")  # into the editor; Ctrl+Enter saves the edit
    page.keyboard.press("Control+Enter")

    expect(current).to_contain_text(f"Conversation {drafts[4][0]}", timeout=20_000)  # a click, then typing
    expect(editor).to_have_value("draft 5", timeout=20_000)
    page.locator("#review-candidates").get_by_text("2. other 5").click()
    expect(editor).to_have_value("other 5", timeout=20_000)
    editor.press("End")
    editor.press_sequentially(", sorry")
    editor.press("Control+Enter")

    expect(current).to_contain_text(f"Conversation {drafts[5][0]}", timeout=20_000)
    expect(editor).to_have_value("draft 6", timeout=20_000)
    page.keyboard.press("r")
    expect(current).to_contain_text("Nothing to review", timeout=20_000)

    shown = []
    for c, _ in drafts:
        _, seen = service.customer_messages(c)
        shown.append([m.text for m in seen if m.role == "bot"])
    assert shown == [["draft 1"], ["draft 2"], ["draft 3"], ["other 4"], ["other 5, sorry"], []]
    assert page.evaluate("window.__pwned") is None
