"""``/admin`` in headless Chromium: shadow-test results per candidate, choosing the shadowed version, promoting
from there, and the correction analytics, with stored texts shown as text (never markup)."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect
from test_browser import ARTIFACTS, ROOT, UPDATE_SCREENSHOTS, browser  # noqa: F401 - browser is a fixture

from chatbot.store import conversations as repo
from chatbot.store import jobs, registry
from chatbot.store import shadow as shadow_repo

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAYLOAD = '<img src=x onerror="window.__pwned=1">**bold**'


def _shot(locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    locator.screenshot(path=str(path))
    if UPDATE_SCREENSHOTS:
        shutil.copy(path, ROOT / "docs" / "screenshots" / path.name)


def _row(table, pattern: str):  # type: ignore[no-untyped-def]
    """A table row by its accessible name (its cells, space-separated; an empty cell adds nothing)."""
    return table.get_by_role("row", name=re.compile("^" + pattern))


def _traffic(service) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """m1 (active) answered five customers, m2 shadowed four of them; agents reviewed four replies."""
    agent = service.login("ana", "password123")
    with service.store.transaction() as s:
        ids = {v.name: v.id for v in registry.list_versions(s)}
    cases = [  # customer, m1's reply, review, agent's text, m2's shadow reply
        ("hi", "Hello! How can I help?", "approve", None, "Hello! How can I help?"),
        ("when do you open", "We open at 9.", "edit", "We open at 8 am.", "We open at 8 am."),
        ("opening hours?", "We open at 9.", "edit", PAYLOAD, "We open at 8."),
        ("bye", PAYLOAD, "reject", None, "See you."),
        ("anything", "Anything else?", None, None, None),
    ]
    for customer, reply, action, corrected, shadow in cases:
        with service.store.transaction() as s:
            conversation = repo.start_conversation(s, language="en")
            repo.store_message(s, conversation.id, "customer", customer)
            message_id = repo.store_message(s, conversation.id, "bot", reply, model_version_id=ids["m1"]).id
            if shadow:
                shadow_repo.store_shadow_reply(s, message_id, ids["m2"], shadow, -0.4)
        if action:
            service.review(agent, message_id, action, corrected)
    rows = [{"customer": "when do you open", "agent": "We open at 8 am.", "reply": "We open at 8 am.",
             "active_reply": "We open at 9.", "candidate_chrf": 100.0, "active_chrf": 55.0},
            {"customer": "are you open sundays", "agent": "No, we are closed on Sundays.", "reply": "hello",
             "active_reply": "We open at 9.", "candidate_chrf": 3.0, "active_chrf": 8.0}]
    with service.store.transaction() as s:
        job, _ = jobs.acquire(s, "nightly", 600)
        jobs.finish(s, job.id, "succeeded", report={"decision": "not enough evidence", "candidate_id": ids["m2"],
                                                    "metrics": {"candidate": {"corrections": rows}}})
    return ids


def test_admin_shadow_results_promote_and_correction_analytics(browser, live_server):  # noqa: F811
    service = live_server.service
    ids = _traffic(service)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"script ran: {d.message}")))
    page.goto(live_server.url + "/admin")
    page.fill("#username", "root")
    page.fill("#password", "password123")
    page.click("#sign-in")
    page.wait_for_url("**/admin/")

    shadow = page.locator("#admin-shadow")
    expect(shadow).to_contain_text("m2", timeout=20_000)
    # 4 shadowed, all 4 reviewed, 1 of 4 approved as is; 3 with agents' text (the rejection has none); the
    # candidate wrote exactly what agents kept or wrote on 2 of those 3
    expect(_row(shadow, rf"{ids['m2']} m2 candidate 4 4 25% 3 \d+\.\d \d+\.\d")).to_be_visible()
    page.locator("#admin-shadow-version input").fill(str(ids["m2"]))
    page.click("#admin-shadow-start")
    expect(page.locator("#admin-shadow-result")).to_contain_text(
        f"m2 (version {ids['m2']}) now shadows the active model", timeout=20_000)
    expect(_row(shadow, rf"{ids['m2']} m2 candidate yes 4 ")).to_be_visible(timeout=20_000)

    analytics = page.locator("#admin-analytics-section")
    rates = page.locator("#admin-review-rates")
    expect(rates).to_contain_text(f"m1 ({ids['m1']})")
    for share in ("25%", "50%"):  # 1 approve, 2 edits, 1 reject
        expect(rates).to_contain_text(share)
    corrected = page.locator("#admin-most-corrected")
    # "We open at 9." edited twice, never rejected; the example is one of the agents' texts
    expect(corrected.get_by_role("row", name="We open at 9. 2 2 0 We open at 8 am.")).to_be_visible()
    expect(corrected).to_contain_text(PAYLOAD)  # the bot's text as the characters it is
    expect(page.locator("#admin-edit-distance")).to_contain_text(f"m1 ({ids['m1']})")
    expect(page.locator("#admin-nightly-learned-summary")).to_contain_text(
        "closer to what agents wrote than the active model on 1 of 2 held-out corrections")
    expect(page.locator("#admin-nightly-learned")).to_contain_text("No, we are closed on Sundays.")
    page.locator("#admin-chart-review-rates").scroll_into_view_if_needed()  # plots draw once on screen
    expect(page.locator("#admin-chart-review-rates canvas, #admin-chart-review-rates svg").first).to_be_visible(
        timeout=20_000)
    assert analytics.locator("img[src=x]").count() == 0 and page.evaluate("window.__pwned") is None
    _shot(page.locator("#admin-shadow-section"), "admin-shadow")
    _shot(analytics, "admin-analytics")

    page.click("#admin-shadow-promote")
    expect(page.locator("#admin-shadow-result")).to_contain_text(f"m2 (version {ids['m2']}) is now active",
                                                                 timeout=20_000)
    expect(_row(page.locator("#admin-models"), rf"{ids['m2']} m2 active")).to_be_visible(timeout=20_000)
    expect(_row(shadow, rf"{ids['m2']} m2 active 4 ")).to_be_visible(timeout=20_000)  # it serves: not shadowed
    with service.store.transaction(read_only=True) as s:
        assert registry.active_version(s).id == ids["m2"]
        assert shadow_repo.shadowed_version(s) is None


def test_shadow_without_a_version_id_says_so(browser, live_server):  # noqa: F811
    page = browser.new_page()
    page.goto(live_server.url + "/admin")
    page.fill("#username", "root")
    page.fill("#password", "password123")
    page.click("#sign-in")
    page.wait_for_url("**/admin/")
    expect(page.locator("#admin-shadow")).to_be_visible(timeout=20_000)
    page.click("#admin-shadow-promote")
    expect(page.get_by_text("Give the id of a registered version")).to_be_visible(timeout=20_000)
    page.locator("#admin-shadow-version input").fill("999")
    page.click("#admin-shadow-start")
    expect(page.get_by_text("no model version 999")).to_be_visible(timeout=20_000)
