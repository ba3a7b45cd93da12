"""Headless Chromium (Debian's, never a downloaded one) driving the real pages over a real server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        yield browser
        browser.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("CHATBOT_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ROOT / "docs" / "screenshots" / path.name)


def test_customer_chat_agent_console_and_no_script_injection(browser, live_server):
    customer = browser.new_page()
    customer.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"script ran: {d.message}")))
    customer.goto(live_server.url + "/")
    box = customer.locator("#customer-input textarea")
    box.fill("where is my parcel?")
    box.press("Enter")
    chat = customer.locator("#customer-chat")
    chat.get_by_text("re: where is my parcel?").wait_for(timeout=20_000)
    payload = '<img src=x onerror="window.__pwned=1;alert(1)">'
    box.fill(payload)
    box.press("Enter")
    chat.get_by_text("re: " + payload).wait_for(timeout=20_000)  # shown as the text it is
    assert customer.evaluate("window.__pwned") is None
    assert chat.locator("img[src=x]").count() == 0
    customer.reload()  # history survives a reload
    chat.get_by_text("re: where is my parcel?").wait_for(timeout=20_000)
    _shot(customer, "customer-chat")

    agent = browser.new_page()
    agent.goto(live_server.url + "/agent")
    agent.fill("#username", "ana")
    agent.fill("#password", "password123")
    agent.click("#sign-in")
    agent.wait_for_url("**/agent/")
    expect(agent.locator("#agent-queue")).to_contain_text("bot", timeout=20_000)
    agent.locator("#agent-conversation input").fill("1")
    agent.click("#agent-open")
    agent.locator("#agent-transcript").get_by_text("where is my parcel?", exact=False).first.wait_for(timeout=20_000)
    assert agent.evaluate("window.__pwned") is None
    agent.locator("#agent-candidates").get_by_text("other").wait_for(timeout=20_000)
    corrected = agent.locator("#agent-corrected textarea")
    corrected.fill("Your parcel arrives tomorrow.")
    agent.click("#agent-edit")
    agent.locator("#agent-info").get_by_text("is now edited").wait_for(timeout=20_000)
    agent.click("#agent-take-over")
    agent.locator("#agent-info").get_by_text("take over").wait_for(timeout=20_000)
    agent.locator("#agent-reply textarea").fill("Hi, Ana here.")
    agent.click("#agent-send")
    agent.locator("#agent-transcript").get_by_text("Agent: Hi, Ana here.").wait_for(timeout=20_000)
    _shot(agent, "agent-console")

    chat.get_by_text("Hi, Ana here.").wait_for(timeout=20_000)  # the customer page polls
    status, messages = live_server.service.customer_messages(1)
    assert status == "human" and messages[-1].text == "Hi, Ana here."
