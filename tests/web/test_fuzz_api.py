"""Fuzzing the REST API from its own OpenAPI schema, against a real server (issue 19).

The schema is the app's own (``app.openapi()``; ``/openapi.json`` serves Gradio's); every ``/api/v1`` operation in it is a
target, so a new route is fuzzed without editing this file. Requests mix values that fit the schema
(right types, enums, lengths, a real conversation's token, an agent's session) with hostile ones: wrong
types, missing and extra fields, huge and negative ids, NUL and lone-surrogate characters, bodies that are
not JSON at all. Whatever arrives, the answer is never a 5xx, and a 4xx says why in ``{"error": ...}``.

Runs on SQLite and PostgreSQL (a real ``create_app`` under uvicorn, the scripted model: tests/web/staff_server.py).
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from staff_server import staff_server

from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.slow

# Strings that have broken web services: NUL (PostgreSQL refuses it), lone surrogates (no UTF-8 form),
# bidi overrides, markup, SQL, format strings, line breaks, very long, empty.
HOSTILE = ["\x00", "a\x00b", "\ud800", "x\udfff y", "\u202egnp.exe", "🙂" * 50, "a" * 5000, " ", "",
           "'; DROP TABLE users; --", "<img src=/x?pwn>", "%s%n{0}", "line\r\nSet-Cookie: x=1", "\ufeff\u200b"]
# Any unicode, lone surrogates and NUL included (JSON can carry both as \u escapes).
ANY_TEXT = st.text(alphabet=st.characters(codec=None, categories=None), max_size=60) | st.sampled_from(HOSTILE)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                           max_leaves=12)
HUGE_INTS = st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
# Header values go over the wire as latin-1 without line breaks.
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=120)


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def from_schema(schema: dict, spec: dict) -> st.SearchStrategy:
    """Values that fit a JSON schema (the subset FastAPI emits), edge cases included."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, spec) for s in schema.get("anyOf", schema.get("oneOf"))])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        limit = schema.get("maxLength", 400)
        return (st.text(alphabet=st.characters(categories=None), max_size=min(limit, 400)) | st.text(max_size=limit + 5)
                | st.sampled_from(HOSTILE))
    if kind == "integer":
        return st.integers(schema.get("minimum", -5) - 1, schema.get("maximum", 50) + 1) | HUGE_INTS
    if kind == "number":
        return st.floats()
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), spec), max_size=4)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries({k: from_schema(v, spec) for k, v in props.items() if k in required},
                                     optional={k: from_schema(v, spec) for k, v in props.items() if k not in required})
    return JSON_VALUES


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    return sorted((method.upper(), path, op) for path, item in spec["paths"].items() if path.startswith("/api/v1/")
                  for method, op in item.items())


@st.composite
def requests(draw: st.DrawFn, spec: dict, known: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    method, path, op = draw(st.sampled_from(operations(spec)))
    url = path
    headers: dict[str, str] = {}
    for param in op.get("parameters", []):
        schema = _resolve(param["schema"], spec)
        if param["in"] == "path":
            if schema.get("type") == "integer":
                value = draw(st.one_of(st.sampled_from(known["ids"]), st.sampled_from(known["ids"]), HUGE_INTS,
                                       st.integers(-3, 40), st.text(string.printable, max_size=12)))
            else:
                value = draw(from_schema(schema, spec) | st.text(string.printable, min_size=1, max_size=12))
            url = url.replace("{" + param["name"] + "}", quote(str(value), safe="") or "x")
        elif param["in"] == "header" and draw(st.booleans()):
            headers[param["name"]] = draw(HEADER_TEXT)
    staff_route = "agent" in op.get("tags", [])  # mostly the credentials the route wants, sometimes others
    auth = draw(st.sampled_from(["staff" if staff_route else "own"] * 4 + ["none", "own", "other", "garbage", "staff"]))
    if auth in ("own", "other"):
        headers["Authorization"] = f"Bearer {known[auth]}"
    elif auth == "garbage":
        headers["Authorization"] = draw(HEADER_TEXT)
    elif auth == "staff":
        headers["Cookie"] = known["cookie"]
        headers["Origin"] = known["origin"]
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    shape = draw(st.sampled_from(["schema"] * 4 + ["json", "bytes", "none"]))
    body: bytes | None = None
    if shape == "schema" and content:
        body = json.dumps(draw(from_schema(content["schema"], spec))).encode()
    elif shape == "json":
        body = json.dumps(draw(JSON_VALUES)).encode()
    elif shape == "bytes":
        body = draw(st.binary(max_size=300))
    if body is not None:
        headers["Content-Type"] = draw(st.sampled_from(["application/json"] * 4 + [
            "text/plain", "application/x-www-form-urlencoded"]))
    return method, url, headers, body


def _fuzz(live_url: str, spec: dict, examples: int) -> None:
    with httpx.Client(base_url=live_url, timeout=30) as client:
        assert len(operations(spec)) >= 10  # the schema really lists the API
        started = [client.post("/api/v1/conversations", json={}).json() for _ in range(2)]
        login = client.post("/api/v1/login", json={"username": "ana", "password": "password123"})
        assert login.status_code == 200
        known = {"ids": [c["id"] for c in started], "own": started[0]["token"], "other": started[1]["token"],
                 "cookie": "; ".join(f"{k}={v}" for k, v in login.cookies.items()), "origin": live_url}
        client.cookies.clear()
        seen: dict[int, int] = {}

        @fuzz_settings(examples)
        @given(request=requests(spec, known))
        def check(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
            method, url, headers, body = request
            response = client.request(method, url, content=body,
                                      headers={k: v.encode("latin-1") for k, v in headers.items()})
            client.cookies.clear()  # a login the fuzzer made stays out of the next request
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (method, url, headers, body, response.status_code, response.text)
            if response.status_code >= 400:
                payload = response.json()
                message = payload.get("error") or payload.get("detail")
                assert isinstance(message, str) and message.strip(), (method, url, response.text)
                assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower()

        check()
        # the fuzzer got past validation and authorisation often enough to mean something
        assert sum(n for s, n in seen.items() if s < 300) >= examples // 10 and any(400 <= s < 500 for s in seen), seen


def test_the_api_never_answers_5xx_to_anything_its_schema_allows_or_not(tmp_path, db_url):
    with staff_server(tmp_path, db_url) as live:
        _fuzz(live.url, live.app.openapi(), examples=150 if db_url.startswith("sqlite") else 80)


def _minimal(schema: dict, spec: dict) -> Any:
    """A small value the schema accepts (the baseline one hostile field at a time is swapped into)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return _minimal(schema["anyOf"][0], spec)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: _minimal(v, spec) for k, v in schema.get("properties", {}).items()
                if k in schema.get("required", [])}
    return {"string": "hello there", "integer": 1, "number": 1.0, "boolean": True, "array": []}.get(kind)


def _string_fields(schema: dict, spec: dict) -> list[str]:
    schema = _resolve(schema, spec)
    return [name for name, prop in schema.get("properties", {}).items()
            if "string" in json.dumps(_resolve(prop, spec)) and "enum" not in json.dumps(_resolve(prop, spec))]


def test_every_text_field_of_every_operation_takes_hostile_strings(tmp_path, db_url):
    """Deterministic sweep beside the random one: each string field of each request body (and each header
    parameter) set to each HOSTILE string, everything else valid and authorised; no 5xx, no stored NUL."""
    with staff_server(tmp_path, db_url) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        spec = live.app.openapi()
        tried = 0
        for method, path, op in operations(spec):
            if path.endswith("/logout"):
                continue  # would end the session the rest of the sweep uses
            started = client.post("/api/v1/conversations", json={}).json()
            client.cookies.clear()
            login = client.post("/api/v1/login", json={"username": "ana", "password": "password123"},
                                headers={"Origin": live.url})
            assert login.status_code == 200, login.text
            base_headers = {"Authorization": f"Bearer {started['token']}", "Origin": live.url}
            url = path.replace("{conversation_id}", str(started["id"])).replace("{message_id}", "1")
            url = url.replace("{action}", "take-over")
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            body = _minimal(content["schema"], spec) if content else None
            cases: list[tuple[dict, Any]] = []
            for name in _string_fields(content["schema"], spec) if content else []:
                cases += [({}, {**body, name: text}) for text in HOSTILE]
            for param in op.get("parameters", []):
                if param["in"] == "header":
                    cases += [({param["name"]: text}, body) for text in HOSTILE if text.isprintable()
                              and text == text.strip() and all(ord(c) < 256 for c in text)]
            for extra_headers, payload in cases:
                headers = {**base_headers, **extra_headers, "Content-Type": "application/json"}
                response = client.request(method, url, content=json.dumps(payload).encode(),
                                          headers={k: v.encode("latin-1") for k, v in headers.items()})
                tried += 1
                assert response.status_code < 500, (method, url, extra_headers, payload, response.text)
                if response.status_code >= 400:
                    assert response.json()["error"].strip(), response.text
        assert tried > 50
        from sqlalchemy import select

        from chatbot.store.models import Message
        with live.service.store.transaction(read_only=True) as s:
            texts = s.scalars(select(Message.text)).all()
        assert len(texts) > 10 and not [t for t in texts if "\x00" in t or any(0xD800 <= ord(c) <= 0xDFFF for c in t)]


def test_the_login_form_outside_the_schema_takes_hostile_names(tmp_path, db_url):
    """``POST /login`` (the staff page's form, not in the OpenAPI schema): a NUL in the name once made
    PostgreSQL refuse the throttling query, a 500; every hostile name is now a plain wrong login."""
    with staff_server(tmp_path, db_url, login_max_failures_per_address=1000) as live, \
            httpx.Client(base_url=live.url, timeout=30) as client:
        bodies = [urlencode({"username": name, "password": "password123"}, errors="surrogatepass")
                  for name in [*HOSTILE, "x" * 151, "ana\x00"]] + ["username=%FF%FE&password=x", "username=ana"]
        for body in bodies:  # surrogates as their (invalid) UTF-8 bytes, and bytes that are no UTF-8 at all
            response = client.post("/login", content=body, headers={
                "Origin": live.url, "Content-Type": "application/x-www-form-urlencoded"})
            name = body
            assert response.status_code in (401, 422, 429), (repr(name[:20]), response.status_code, response.text[:300])
        assert client.post("/login", data={"username": "ana", "password": "password123"},
                           headers={"Origin": live.url}).status_code == 303  # the real account still signs in
