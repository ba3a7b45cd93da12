"""Issue 19, items 1, 6, 7, 8 and 11 (health check), over real HTTP on SQLite and PostgreSQL: the language a
conversation starts in is one the product serves (422 listing them otherwise) and stored values are shown as
text in the agent console; an agent cannot close another agent's conversation; ids past the integer range are
404 on every route that takes one (the routes come from the app's own table, so a new one is covered); request
bodies over the limit are refused with 413 before they are read, chunked ones included. (Item 11's health
check and items 2-3 are in ``test_serving_safety.py``.)"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from staff_server import staff_server
from test_grounding_web import call

pytestmark = pytest.mark.slow

LIMIT = 64 * 1024
BIG_IDS = (2**31, 2**63, 2**64, -(2**63) - 1)
ALLOWED = "en, zh, de, es, fr"


@pytest.fixture
def server(tmp_path, db_url):
    with staff_server(tmp_path, db_url, max_body_bytes=LIMIT) as live:
        yield live


@contextmanager
def _staff(url: str, username: str) -> Iterator[httpx.Client]:
    """Signed in as ``username``; same-origin requests, as the staff pages send them."""
    with httpx.Client(base_url=url, timeout=15, headers={"Origin": url}) as client:
        login = client.post("/api/v1/login", json={"username": username, "password": "password123"})
        assert login.status_code == 200, login.text
        yield client


def _start(url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/conversations", json=body, timeout=15)


def _conversations(service) -> int:
    return service.store.stats()["conversations"]


# --- 1: language -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("language", ["it", "EN", "En", "en-US", "", "<img src=/x?pwn>"])
def test_a_conversation_in_a_language_nobody_serves_is_refused_with_the_allowed_ones(server, language):
    before = _conversations(server.service)
    refused = _start(server.url, language=language)
    assert refused.status_code == 422, refused.text
    assert "language" in refused.json()["error"] and "'zh'" in refused.json()["error"]
    assert _conversations(server.service) == before  # nothing stored


def test_a_supported_language_starts_and_answers(server):
    started = _start(server.url, language="zh")
    assert started.status_code == 201
    body = started.json()
    sent = httpx.post(f"{server.url}/api/v1/conversations/{body['id']}/messages", json={"text": "你好"},
                      headers={"Authorization": f"Bearer {body['token']}"}, timeout=15)
    assert sent.status_code == 200 and sent.json()["reply"] is not None
    assert _start(server.url).status_code == 201  # no body: English


def test_the_service_refuses_the_language_too(server):
    from chatbot.store.db import InvalidValue

    with pytest.raises(InvalidValue, match=ALLOWED):
        server.service.start_conversation("it")


def test_the_agent_console_shows_a_stored_language_as_text(server):
    """A row written before validation (or by an import) holds markup: the console header shows it escaped."""
    from chatbot.store import conversations as repo

    payload = "<img src=/x?pwn>"  # the column holds 16 characters
    with server.service.store.transaction() as s:
        conversation_id = repo.start_conversation(s, language=payload).id
    with _staff(server.url, "ana") as agent:
        data = call(agent, "agent", "open_conversation", conversation_id, None)  # raises unless complete
    header = json.dumps(data[1])
    assert "<img" not in header
    assert "&lt;img src" in header and "pwn&gt;" in header  # entities (and Markdown escapes, if Markdown): text


def test_error_messages_quoting_input_are_escaped():
    """``gr.Error`` renders its message as HTML: a refusal that quotes stored or typed values stays text."""
    import gradio as gr

    from chatbot.store.db import IllegalTransition
    from web.errors import guarded

    def refuse() -> None:
        raise IllegalTransition("model version 3 (<img src=/x?pwn>) is already active")

    with pytest.raises(gr.Error) as raised:
        guarded(refuse)()
    assert raised.value.message == "model version 3 (&lt;img src=/x?pwn&gt;) is already active"


# --- 6: close is checked like take-over --------------------------------------------------------------------
def test_an_agent_cannot_close_another_agents_conversation(server):
    started = _start(server.url).json()
    url = f"/api/v1/agent/conversations/{started['id']}"
    with _staff(server.url, "ana") as ana, _staff(server.url, "bob") as bob, _staff(server.url, "root") as root:
        assert ana.post(f"{url}/take-over").status_code == 200
        refused = bob.post(f"{url}/close")
        assert refused.status_code == 403, refused.text
        assert "another agent" in refused.json()["error"]
        assert ana.get(url).json()["conversation"]["status"] == "human"
        assert root.post(f"{url}/close").status_code == 200  # an admin may
        assert ana.get(url).json()["conversation"]["status"] == "closed"
        second = _start(server.url).json()["id"]
        assert bob.post(f"/api/v1/agent/conversations/{second}/close").status_code == 200  # nobody's yet


# --- 7: ids past the integer range -------------------------------------------------------------------------
def _id_routes(app) -> list[tuple[str, str, list[str]]]:
    """(method, path, path parameters) of every route with a path parameter, from the app's OpenAPI table."""
    out = []
    for path, operations in app.openapi()["paths"].items():
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            out.extend((method.upper(), path, params) for method in operations)
    return out


def test_ids_past_the_integer_range_are_not_found_on_every_route(server):
    from web.app import create_app

    routes = _id_routes(create_app(server.service.settings, server.service))
    assert len(routes) >= 9  # customer and agent routes with ids (guards against an empty list)
    started = _start(server.url).json()
    body = {"text": "hello", "liked": True, "csat": 3, "action": "approve"}
    with _staff(server.url, "root") as root:
        for method, path, params in routes:
            for big in BIG_IDS:
                url = path
                for param in params:
                    url = url.replace("{" + param + "}", "close" if param == "action" else str(big))
                headers = {"Authorization": f"Bearer {started['token']}"}
                answer = root.request(method, url, json=body if method == "POST" else None, headers=headers)
                # 401 where a customer token is checked first: unknown ids look like wrong tokens there
                assert answer.status_code in (401, 404, 422), (method, url, answer.status_code, answer.text)
                assert "error" in answer.json()


# --- 8: body limit -----------------------------------------------------------------------------------------
def _raw_post(port: int, path: str, chunks: list[bytes], *, chunked: bool) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:  # the login form reads a form body (a route that never reads a body cannot be made to read one)
        headers = {"Content-Type": "application/x-www-form-urlencoded" if path == "/login" else "application/json"}
        if chunked:
            conn.request("POST", path, body=iter(chunks), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=b"".join(chunks), headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server dropped the connection instead of answering 413")
    finally:
        conn.close()


def _oversized() -> list[bytes]:
    padding = b" " * 8192
    return [b'{"language": "en"', *([padding] * (2 * LIMIT // len(padding))), b"}"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_before_it_is_read(server, chunked):
    before = _conversations(server.service)
    for path in ("/api/v1/conversations", "/login", "/gradio_api/queue/join"):
        status, body = _raw_post(server.port, path, _oversized(), chunked=chunked)
        assert status == 413, (path, status, body[:200])
        # {"error": ...} from the app, {"detail": ...} where a mounted Gradio app answers the HTTPException
        assert f"request body too large: the limit is {LIMIT:,} bytes" in body.decode(), body[:200]
    assert _conversations(server.service) == before
    status, _ = _raw_post(server.port, "/api/v1/conversations", [b'{"language": ', b'"en"}'], chunked=chunked)
    assert status == 201  # small bodies, chunked or not, still pass


def test_a_client_that_waits_for_100_continue_is_refused_without_sending_the_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"POST /api/v1/conversations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (100 * LIMIT))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_message_under_the_limit_passes(server):
    started = _start(server.url).json()
    sent = httpx.post(f"{server.url}/api/v1/conversations/{started['id']}/messages", json={"text": "x" * 1500},
                      headers={"Authorization": f"Bearer {started['token']}"}, timeout=15)
    assert sent.status_code == 200
