"""Headless Chromium (Debian's, never a downloaded one) driving the real pages over a real server."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chatbot.store.db import NotFound

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# Read at import: the autouse fixture that clears CHATBOT_* variables runs before each test.
UPDATE_SCREENSHOTS = os.environ.get("CHATBOT_UPDATE_SCREENSHOTS") == "1"


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
    if UPDATE_SCREENSHOTS:
        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ROOT / "docs" / "screenshots" / path.name)


def test_customer_chat_agent_console_and_no_script_injection(browser, live_server, tiny_models):
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
    agent.locator("#inbox-view").get_by_text("Bot (1)").click()
    agent.locator("#agent-queue").get_by_text(payload).filter(visible=True).first.click()  # the preview, as text; a click opens it
    agent.locator("#agent-transcript").get_by_text("where is my parcel?", exact=False).first.wait_for(timeout=20_000)
    assert agent.evaluate("window.__pwned") is None
    agent.get_by_text("Bot replies: n-best, grounding, attention, review, replay").click()
    agent.locator("#agent-candidates").get_by_text("other").wait_for(timeout=20_000)
    corrected = agent.locator("#agent-corrected textarea")
    corrected.fill("Your parcel arrives tomorrow.")
    agent.click("#agent-edit")
    agent.locator("#agent-info").get_by_text("is now edited").wait_for(timeout=20_000)
    agent.click("#agent-take-over")
    agent.locator("#agent-info").get_by_text("take over").wait_for(timeout=20_000)
    agent.locator("#inbox-view").get_by_text("Mine (1)").click()
    expect(agent.locator("#agent-queue")).to_contain_text("human", timeout=20_000)  # the inbox follows
    agent.locator("#agent-reply textarea").fill("Hi, Ana here.")
    agent.click("#agent-send")
    agent.locator("#agent-transcript").get_by_text("Agent: Hi, Ana here.").wait_for(timeout=20_000)
    _replay_in_console(agent, live_server, tiny_models.second)
    _shot(agent, "agent-console")

    chat.get_by_text("Hi, Ana here.").wait_for(timeout=20_000)  # the customer page polls
    status, messages = live_server.service.customer_messages(1)
    assert status == "human" and messages[-1].text == "Hi, Ana here."


def test_a_customer_who_writes_chinese_gets_a_chinese_conversation(browser, live_server):
    """The language menu left at English, Chinese typed: the conversation becomes Chinese, so the replies
    are decoded in Chinese and the page's status line is Chinese too, also after a hand-off."""
    customer = browser.new_page()
    customer.goto(live_server.url + "/")
    expect(customer.locator("#customer-input textarea")).to_be_visible(timeout=20_000)
    box = customer.locator("#customer-input textarea")
    box.fill("你好，我的包裹在哪里？")
    box.press("Enter")
    customer.locator("#customer-chat").get_by_text("re: 你好，我的包裹在哪里？").wait_for(timeout=20_000)
    expect(customer.locator("#chat-status")).to_contain_text("您正在与我们的智能助手对话。", timeout=20_000)
    assert live_server.replies.languages[-1] == "zh"
    # the page follows: the menu shows the conversation's language and the page's own words are Chinese
    expect(customer.locator("#language input")).to_have_value("中文", timeout=20_000)
    expect(customer.locator("#talk-to-person")).to_have_text("转人工", timeout=20_000)
    expect(customer.locator("#customer-send")).to_have_text("发送")
    expect(customer.locator("#welcome")).to_contain_text("转人工")
    expect(box).to_have_attribute("placeholder", "请输入您的问题，按回车发送")
    customer.click("#talk-to-person")
    expect(customer.locator("#chat-status")).to_contain_text("我们的工作人员马上就来为您服务。", timeout=20_000)
    customer.locator("#customer-chat").get_by_text("好的，我们的工作人员马上就来为您服务。").wait_for(timeout=20_000)
    _shot(customer, "customer-chat-zh")


def test_the_language_menu_turns_the_page_before_the_first_message(browser, live_server):
    customer = browser.new_page()
    customer.goto(live_server.url + "/")
    expect(customer.locator("#chat-status")).to_contain_text("Say hello to start a conversation.", timeout=20_000)
    customer.locator("#language input").click()
    customer.get_by_role("option", name="中文").click()
    expect(customer.locator("#chat-status")).to_contain_text("打个招呼，开始对话吧。", timeout=20_000)
    expect(customer.locator("#end-chat")).to_have_text("结束对话")
    expect(customer.locator("#example-questions")).to_contain_text("试试这样问")
    customer.locator("#language input").click()
    customer.get_by_role("option", name="Français").click()  # no French page text yet: English
    expect(customer.locator("#chat-status")).to_contain_text("Say hello to start a conversation.", timeout=20_000)
    expect(customer.locator("#talk-to-person")).to_have_text("Talk to a person")


def _replay_in_console(agent, live_server, m2_dir) -> None:
    """Replay the edited bot reply with the candidate model m2: shown next to what was sent, not sent."""
    from chatbot.service.generator import ReplyGenerator

    service = live_server.service
    before = service.customer_messages(1)
    expected = ReplyGenerator.from_checkpoint(m2_dir, settings=service.settings).generate(
        [[("customer", "where is my parcel?")]], language="en")[0].text

    agent.locator("#agent-bot-reply input").click()
    agent.get_by_role("option", name=re.compile("re: where is my parcel")).click()
    expect(agent.locator("#agent-corrected textarea")).to_have_value("re: where is my parcel?", timeout=20_000)
    agent.get_by_text("Replay with another model or settings").click()
    expect(agent.locator("#agent-sent textarea")).to_have_value("re: where is my parcel?", timeout=20_000)
    agent.locator("#agent-replay-version input").click()
    agent.get_by_role("option", name="m2 (candidate)").click()
    agent.click("#agent-replay")
    expect(agent.locator("#agent-replayed textarea")).to_have_value(expected, timeout=20_000)
    assert service.customer_messages(1) == before  # nothing went to the customer


def test_admin_versions_promote_rollback_charts_and_erasure(browser, live_server):
    service = live_server.service
    agent = service.login("ana", "password123")
    # a day of traffic for the charts: one conversation handed to a person, one reviewed and rated
    handed, _ = service.start_conversation("en")
    service.send(handed, "talk to a human please")
    rated, _ = service.start_conversation("en")
    reply = service.send(rated, "where is my parcel?").reply
    service.review(agent, reply.id, "approve")
    service.finish(rated, 4)
    kept, _ = service.start_conversation("en")
    edited = service.send(kept, "my refund please").reply
    service.review(agent, edited.id, "edit", "Your refund is on its way.")
    service.finish(kept, 5)

    page = browser.new_page()
    page.goto(live_server.url + "/admin")
    page.wait_for_url("**/login?next=/admin/")
    page.fill("#username", "ana")  # an agent is not an admin
    page.fill("#password", "password123")
    page.click("#sign-in")
    page.wait_for_url("**/login?next=/admin/")
    page.fill("#username", "root")
    page.fill("#password", "password123")
    page.click("#sign-in")
    page.wait_for_url("**/admin/")

    models = page.locator("#admin-models")
    expect(models).to_contain_text("m2", timeout=20_000)
    expect(models).to_contain_text("chrf=33.25")
    expect(page.locator("#admin-jobs")).to_contain_text("no new reviewed conversations")
    expect(page.locator("#admin-jobs")).to_contain_text('"gate": "passed"')
    for chart in ("conversations", "rates", "csat"):
        expect(page.locator(f"#admin-chart-{chart} canvas, #admin-chart-{chart} svg").first).to_be_visible(
            timeout=20_000)

    ids = {v.name: v.id for v in _versions(service)}
    page.locator("#admin-version input").fill(str(ids["m2"]))
    page.click("#admin-promote")
    expect(page.locator("#admin-result")).to_contain_text(f"m2 (version {ids['m2']}) is now active",
                                                          timeout=20_000)
    assert _active(service) == "m2"
    page.click("#admin-rollback")
    expect(page.locator("#admin-result")).to_contain_text(f"m1 (version {ids['m1']}) is now active",
                                                          timeout=20_000)
    assert _active(service) == "m1"

    page.get_by_text("Erase a customer's data").click()
    page.locator("#admin-erase-id input").fill(str(rated))
    page.click("#admin-erase-button")
    expect(page.locator("#admin-result")).to_contain_text("tick the confirmation box", timeout=20_000)
    assert service.customer_messages(rated)[1]  # not confirmed: nothing erased
    page.locator("#admin-erase-confirm input").check()
    page.click("#admin-erase-button")
    expect(page.locator("#admin-result")).to_contain_text(
        f"Erased the customer of conversation {rated}: 1 conversation(s), 2 message(s)", timeout=20_000)
    with pytest.raises(NotFound):
        service.customer_messages(rated)
    assert service.customer_messages(handed)[1]  # another customer's data stays
    _shot(page, "admin")


def _versions(service):
    from chatbot.service.admin import AdminService

    return AdminService(service).versions(service.login("root", "password123"))


def _active(service) -> str:
    return next(v.name for v in _versions(service) if v.status == "active")
