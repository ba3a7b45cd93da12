"""The REST API over real HTTP: conversation tokens, authorisation, bad input."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=15) as c:
        yield c


def _start(client):
    response = client.post("/api/v1/conversations", json={"language": "en"})
    assert response.status_code == 201
    body = response.json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


def test_customer_chats_over_the_api(client):
    assert client.get("/api/v1/healthz").json()["status"] == "ok"
    cid, auth = _start(client)
    sent = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "where is my parcel?"}, headers=auth)
    assert sent.status_code == 200
    assert sent.json()["status"] == "bot" and sent.json()["reply"]["text"] == "re: where is my parcel?"
    listed = client.get(f"/api/v1/conversations/{cid}/messages", headers=auth).json()
    assert [(m["role"], m["text"]) for m in listed["messages"]] == [
        ("customer", "where is my parcel?"), ("bot", "re: where is my parcel?")]
    assert all(m["created_at"] for m in listed["messages"])
    handed = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "talk to a human"}, headers=auth)
    assert handed.json()["status"] == "pending" and handed.json()["reply"] is None


def test_a_token_opens_only_its_own_conversation(client):
    first, auth_first = _start(client)
    second, auth_second = _start(client)
    for method, path in (("GET", f"/api/v1/conversations/{second}/messages"),
                         ("POST", f"/api/v1/conversations/{second}/messages")):
        response = client.request(method, path, json={"text": "hi"}, headers=auth_first)
        assert response.status_code == 401, response.text
    # Refused before the text is looked at, and nothing lands in the other customer's conversation.
    empty = client.post(f"/api/v1/conversations/{second}/messages", json={"text": ""}, headers=auth_first)
    assert empty.status_code == 401
    assert client.get(f"/api/v1/conversations/{second}/messages", headers=auth_second).json()["messages"] == []
    assert client.get(f"/api/v1/conversations/{first}/messages").status_code == 401  # no token
    assert client.get("/api/v1/conversations/999999/messages", headers=auth_first).status_code == 401


def test_agent_actions_refuse_customers_and_work_for_agents(client, live_server):
    cid, auth = _start(client)
    client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "hello"}, headers=auth)
    assert client.get("/api/v1/queue", headers=auth).status_code == 401
    assert client.post(f"/api/v1/agent/conversations/{cid}/take-over", headers=auth).status_code == 401
    assert client.post("/api/v1/login", json={"username": "ana", "password": "nope-nope"}).status_code == 401

    with httpx.Client(base_url=live_server.url, timeout=15) as agent:
        assert agent.post("/api/v1/login", json={"username": "ana", "password": "password123"}).status_code == 200
        assert cid in [c["id"] for c in agent.get("/api/v1/queue").json()]
        assert agent.post(f"/api/v1/agent/conversations/{cid}/take-over").json()["status"] == "human"
        assert agent.post(f"/api/v1/agent/conversations/{cid}/messages", json={"text": "Ana here"}).status_code == 200
        bot = [m for m in agent.get(f"/api/v1/agent/conversations/{cid}").json()["messages"] if m["role"] == "bot"]
        reviewed = agent.post(f"/api/v1/agent/messages/{bot[0]['id']}/review", json={"action": "approve"})
        assert reviewed.json()["review_state"] == "approved"
        forged = agent.cookies.get("chatbot_session")[:-2] + "xx"
    with httpx.Client(base_url=live_server.url, timeout=15, cookies={"chatbot_session": forged}) as forger:
        assert forger.get("/api/v1/queue").status_code == 401
    roles = [m["role"] for m in client.get(f"/api/v1/conversations/{cid}/messages", headers=auth).json()["messages"]]
    assert roles == ["customer", "bot", "system", "agent"]


def test_bad_json_empty_and_huge_messages_get_clear_4xx(client):
    cid, auth = _start(client)
    url = f"/api/v1/conversations/{cid}/messages"
    bad = client.post(url, content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    missing = client.post(url, json={"txt": "typo"}, headers=auth)
    assert missing.status_code == 422 and "text" in missing.json()["error"]
    empty = client.post(url, json={"text": "   "}, headers=auth)
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    huge = client.post(url, json={"text": "x" * 2001}, headers=auth)
    assert huge.status_code == 422 and "limit" in huge.json()["error"]
    assert client.get(url, headers=auth).json()["messages"] == []  # nothing stored


def test_agent_pages_need_a_login(client):
    response = client.get("/agent", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    login = client.post("/login", data={"username": "ana", "password": "password123", "next": "/agent/"},
                        follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/agent/"
    assert client.get("/agent", follow_redirects=True).status_code == 200
    evil = client.post("/login", data={"username": "ana", "password": "password123", "next": "//evil.example"},
                       follow_redirects=False)
    assert evil.headers["location"] == "/agent/"  # no open redirect
    assert client.get("/admin", follow_redirects=False).status_code == 303  # an agent is not an admin
    assert client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/conversations"]


def test_customer_page_says_who_it_is_and_what_it_knows_from_settings(client, live_server):
    settings = live_server.service.settings
    config = client.get("/config").json()  # the customer page's Gradio config, as the browser loads it
    texts = [str(c.get("props", {}).get("value")) for c in config["components"]]
    assert config["title"] == f"{settings.company_name} support"
    welcome = next(t for t in texts if settings.company_name in t)
    assert settings.help_topics in welcome and "Talk to a person" in welcome
    examples = str([c for c in config["components"] if c.get("props", {}).get("elem_id") == "example-questions"])
    assert all(q in examples for q in settings.example_questions)
    assert any("\u4e00" <= ch <= "\u9fff" for q in settings.example_questions for ch in q)  # both languages


def test_welcome_text_is_escaped():
    from web.customer import welcome_html

    for language in ("en", "zh", "fr"):
        page = welcome_html("<img src=x onerror=alert(1)> & Co", "orders <script>", language)
        assert "<img" not in page and "<script>" not in page and "&lt;img src=x" in page and "&amp; Co" in page
    assert "转人工" in welcome_html("Acme", "orders", "zh") and "Talk to a person" in welcome_html("Acme", "orders", "fr")


def test_every_language_of_the_page_has_every_text():
    from web.customer import PAGE_TEXT

    assert all(set(texts) == set(PAGE_TEXT["en"]) for texts in PAGE_TEXT.values())
