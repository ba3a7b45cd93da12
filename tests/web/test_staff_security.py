"""Issue 19, items 4 and 5, over real HTTP on SQLite and PostgreSQL: login throttling, server-side session
revocation (logout, password change, demotion, removal; the role read from the store), CSRF refusals for
another origin (another port of the same host included) on the REST routes, the login form and Gradio's
event endpoints, the cookie's Secure flag, and the staff pages' security headers."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import text
from staff_server import free_port, staff_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path, db_url):
    with staff_server(tmp_path, db_url, login_max_failures=3, login_max_failures_per_address=7) as live:
        yield live


def _login(url: str, username: str, password: str = "password123", **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/login", json={"username": username, "password": password}, headers=headers,
                      timeout=15)


def _session(url: str, username: str) -> str:
    response = _login(url, username)
    assert response.status_code == 200, response.text
    return response.cookies["chatbot_session"]


def _as(url: str, cookie: str) -> httpx.Client:
    return httpx.Client(base_url=url, cookies={"chatbot_session": cookie}, timeout=15)


def _conversation(url: str) -> tuple[int, dict[str, str]]:
    body = httpx.post(f"{url}/api/v1/conversations", json={}, timeout=15).json()
    auth = {"Authorization": f"Bearer {body['token']}"}
    assert httpx.post(f"{url}/api/v1/conversations/{body['id']}/messages", json={"text": "hello"},
                      headers=auth, timeout=15).status_code == 200
    return body["id"], auth


# --- 4: throttling ---------------------------------------------------------------------------------------
def test_wrong_passwords_lock_the_account_even_for_the_right_one(server):
    for _ in range(3):
        assert _login(server.url, "ana", "wrong-password").status_code == 401
    locked = _login(server.url, "ana")  # the right password, after the limit: refused
    assert locked.status_code == 429, locked.text
    assert "too many failed logins" in locked.json()["error"]
    assert 1 <= int(locked.headers["Retry-After"]) <= 900
    assert "chatbot_session" not in locked.cookies
    form = httpx.post(f"{server.url}/login", data={"username": "ana", "password": "password123"}, timeout=15)
    assert form.status_code == 429 and "too many failed logins" in form.text
    assert _login(server.url, "bob").status_code == 200  # another account is not locked


def test_one_address_trying_many_accounts_is_throttled(server):
    for i in range(7):  # a spray: never three on one account, seven from one address
        assert _login(server.url, f"user{i}", "wrong-password").status_code == 401
    refused = _login(server.url, "root")
    assert refused.status_code == 429 and "your address" in refused.json()["error"]


def test_failures_age_out_of_the_window(tmp_path, sqlite_url):
    with staff_server(tmp_path, sqlite_url, login_max_failures=2, login_failure_window_s=1.5) as live:
        for _ in range(2):
            assert _login(live.url, "ana", "wrong-password").status_code == 401
        assert _login(live.url, "ana").status_code == 429
        time.sleep(1.6)
        assert _login(live.url, "ana").status_code == 200
        # success forgives the account's failures: one more miss is not a lockout
        assert _login(live.url, "ana", "wrong-password").status_code == 401
        assert _login(live.url, "ana").status_code == 200


# --- 4: revocation ---------------------------------------------------------------------------------------
def test_logout_ends_the_session_on_the_server(server):
    cookie = _session(server.url, "ana")
    with _as(server.url, cookie) as agent:
        assert agent.get("/api/v1/queue").status_code == 200
        assert agent.post("/api/v1/logout").status_code == 200
    with _as(server.url, cookie) as replay:  # a copy of the cookie saved before logout
        assert replay.get("/api/v1/queue").status_code == 401
        assert replay.get("/agent/", follow_redirects=False).status_code == 303
        assert replay.get("/agent/config").status_code == 401  # Gradio's own routes ask the same question
    form_cookie = _session(server.url, "ana")
    with _as(server.url, form_cookie) as agent:
        assert agent.get("/logout", follow_redirects=False).status_code == 303
    with _as(server.url, form_cookie) as replay:
        assert replay.get("/api/v1/queue").status_code == 401


def test_password_change_demotion_and_removal_end_sessions(server):
    staff = server.service.staff
    ana, root, bob = (_session(server.url, name) for name in ("ana", "root", "bob"))
    staff.set_password("ana", "new password 456")
    with _as(server.url, ana) as old:
        assert old.get("/api/v1/queue").status_code == 401
    assert _login(server.url, "ana", "new password 456").status_code == 200

    # Demoted in the database directly (no service call, no revocation): the role comes from the store.
    with server.service.store.transaction() as s:
        s.execute(text("UPDATE users SET role = 'agent' WHERE username = 'root'"))
    with _as(server.url, root) as demoted:
        assert demoted.get("/admin/", follow_redirects=False).status_code == 303
        assert demoted.get("/admin/config").status_code == 401
        assert demoted.get("/api/v1/queue").status_code == 200  # still an agent
    staff.set_role("root", "customer")  # through the service: the sessions end
    with _as(server.url, root) as gone:
        assert gone.get("/api/v1/queue").status_code == 401

    staff.remove_user("bob")
    with _as(server.url, bob) as removed:
        assert removed.get("/api/v1/queue").status_code == 401
        assert removed.get("/agent/", follow_redirects=False).status_code == 303


def test_a_forged_or_foreign_cookie_is_refused(server):
    cookie = _session(server.url, "ana")
    with _as(server.url, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) as forged:
        assert forged.get("/api/v1/queue").status_code == 401


# --- 5: CSRF ----------------------------------------------------------------------------------------------
def test_cross_origin_staff_writes_are_refused(server):
    cid, _ = _conversation(server.url)
    evil = f"http://127.0.0.1:{free_port()}"  # same host, another port: another origin
    cookie = _session(server.url, "ana")
    with _as(server.url, cookie) as agent:
        for headers in ({"Origin": evil}, {"Referer": evil + "/attack.html"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "same-site"}):
            refused = agent.post(f"/api/v1/agent/conversations/{cid}/take-over", headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
        assert agent.get(f"/api/v1/agent/conversations/{cid}").json()["conversation"]["status"] == "bot"
        own = agent.post(f"/api/v1/agent/conversations/{cid}/take-over", headers={"Origin": server.url})
        assert own.status_code == 200 and own.json()["status"] == "human"
        assert agent.post(f"/api/v1/agent/conversations/{cid}/messages", json={"text": "hi"},
                          headers={"Origin": evil}).status_code == 403


def test_login_csrf_is_refused(server):
    evil = f"http://127.0.0.1:{free_port()}"
    planted = httpx.post(f"{server.url}/login", data={"username": "ana", "password": "password123"},
                         headers={"Origin": evil}, timeout=15, follow_redirects=False)
    assert planted.status_code == 403 and "chatbot_session" not in planted.cookies
    api = _login(server.url, "ana", Origin=evil)
    assert api.status_code == 403 and "chatbot_session" not in api.cookies
    own = httpx.post(f"{server.url}/login", data={"username": "ana", "password": "password123"},
                     headers={"Origin": server.url}, timeout=15, follow_redirects=False)
    assert own.status_code == 303 and "chatbot_session" in own.cookies


def _fn_index(config: dict, elem_id: str) -> tuple[int, int]:
    component = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    dep = next(d for d in config["dependencies"] if any(t[0] == component for t in d["targets"]))
    return dep["id"], component


def test_gradio_events_of_the_agent_console_refuse_other_origins(server):
    cid, _ = _conversation(server.url)
    cookie = _session(server.url, "ana")
    with _as(server.url, cookie) as agent:
        fn_index, trigger = _fn_index(agent.get("/agent/config").json(), "agent-take-over")
        body = {"data": [cid], "fn_index": fn_index, "trigger_id": trigger, "session_hash": "csrf-test",
                "event_data": None}
        evil = f"http://127.0.0.1:{free_port()}"
        refused = agent.post("/agent/gradio_api/queue/join", json=body, headers={"Origin": evil})
        assert refused.status_code == 403
        time.sleep(1.0)
        assert agent.get(f"/api/v1/agent/conversations/{cid}").json()["conversation"]["status"] == "bot"
        joined = agent.post("/agent/gradio_api/queue/join", json=body, headers={"Origin": server.url})
        assert joined.status_code == 200, joined.text
        deadline = time.monotonic() + 15
        while agent.get(f"/api/v1/agent/conversations/{cid}").json()["conversation"]["status"] != "human":
            assert time.monotonic() < deadline, "the same-origin event never ran"
            time.sleep(0.2)
    with _as(server.url, cookie) as agent:
        agent.post("/api/v1/logout")
        after = agent.post("/agent/gradio_api/queue/join", json=body, headers={"Origin": server.url},
                           cookies={"chatbot_session": cookie})
        assert after.status_code == 401  # a logged-out cookie runs no event


def test_secure_cookie_flag_and_staff_page_headers(tmp_path, sqlite_url):
    with staff_server(tmp_path, sqlite_url) as plain:
        assert "secure" not in _login(plain.url, "ana").headers["set-cookie"].lower()
        for path, user in (("/login", "ana"), ("/agent/", "ana"), ("/admin/", "root")):
            cookie = _session(plain.url, user)
            page = httpx.get(plain.url + path, cookies={"chatbot_session": cookie}, timeout=15)
            assert page.status_code == 200
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "same-origin"
        customer = httpx.get(plain.url + "/", timeout=15)
        assert customer.headers["x-content-type-options"] == "nosniff"
    with staff_server(tmp_path / "tls", f"sqlite:///{tmp_path / 'tls.db'}", cookie_secure=True) as tls:
        set_cookie = _login(tls.url, "ana").headers["set-cookie"].lower()
        assert "; secure" in set_cookie and "httponly" in set_cookie and "samesite=lax" in set_cookie
