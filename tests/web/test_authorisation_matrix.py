"""Issue 19, "Prove: authorisation matrix", over real HTTP on SQLite and PostgreSQL.

Every REST route of the app and every Gradio event of ``/``, ``/agent`` and ``/admin`` is tried as each of
eight principals: anonymous, customer A (the token of the conversation the request targets), customer B (the
token of another conversation), agent 1 (who handles that conversation), agent 2, admin, a demoted admin (an
admin whose role was set to agent in the database behind the service's back, cookie kept) and a logged-out
session (a cookie saved before logout). The keys come from the app itself — its route table and the Gradio
pages' configs — so a new route or event without a rule here fails the test, and so does a rule for
something that no longer exists. Every state-changing request carries the server's own ``Origin`` (CSRF
protection is on); each cell gets fresh conversations so no cell depends on another's side effects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from staff_server import StaffServer, staff_server

pytestmark = pytest.mark.slow

PRINCIPALS = ("anonymous", "customer A", "customer B", "agent 1", "agent 2", "admin", "demoted admin",
              "logged out")
STAFF = ("agent 1", "agent 2", "admin", "demoted admin")  # the demoted admin is an agent now
MARKER = "matrix-secret-words"  # what customer A wrote: only A and staff may read it


# --- the world each cell runs in -------------------------------------------------------------------------
@dataclass
class World:
    """Sessions of the staff principals (made once) and, per cell, fresh conversations A and B."""

    live: StaffServer
    cookies: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)

    def login(self, username: str) -> str:
        response = httpx.post(f"{self.live.url}/api/v1/login", json={"username": username, "password": "password123"},
                              headers={"Origin": self.live.url}, timeout=15)
        assert response.status_code == 200, response.text
        return response.cookies["chatbot_session"]

    def conversation(self, handled_by: str | None = "agent 1") -> Conv:
        """A conversation with a customer message and a bot reply; ``handled_by`` took it over."""
        service = self.live.service
        cid, token = service.start_conversation("en")
        service.send(cid, f"hello, {MARKER}")
        _, rows = service.customer_messages(cid)
        bot = next(m.id for m in rows if m.role == "bot")
        if handled_by is not None:
            service.take_over(service.staff.principal(self.cookies[handled_by]), cid)
        return Conv(cid, token, bot)

    def snapshot(self, cid: int) -> tuple[str, int]:
        status, rows = self.live.service.customer_messages(cid)
        return status, len(rows)


@dataclass
class Conv:
    id: int
    token: str
    bot_message: int


@dataclass
class Cell:
    """What one principal sends in one cell: its cookie and the token it holds."""

    cookie: str | None
    token: str | None


def cell_for(world: World, principal: str, a: Conv, b: Conv, fresh_session: bool = False) -> Cell:
    if principal == "customer A":
        return Cell(None, a.token)
    if principal == "customer B":
        return Cell(None, b.token)
    if principal == "anonymous":
        return Cell(None, None)
    if fresh_session and principal != "logged out":  # for cells that end the session they use
        return Cell(world.login(USERNAMES[principal]), None)
    return Cell(world.cookies[principal], None)


USERNAMES = {"agent 1": "ana", "agent 2": "bob", "admin": "root", "demoted admin": "dora", "logged out": "lou"}


@pytest.fixture
def world(tmp_path, db_url):
    with staff_server(tmp_path, db_url) as live:
        live.service.add_user("dora", "password123", "admin")
        live.service.add_user("lou", "password123", "agent")
        w = World(live)
        for principal, username in USERNAMES.items():
            w.cookies[principal] = w.login(username)
        # Demoted in the database behind the service's back: the role must come from the store, not the cookie.
        with live.service.store.transaction() as s:
            s.execute(text("UPDATE users SET role = 'agent' WHERE username = 'dora'"))
        out = httpx.post(f"{live.url}/api/v1/logout", cookies={"chatbot_session": w.cookies["logged out"]},
                         headers={"Origin": live.url}, timeout=15)
        assert out.status_code == 200
        for principal in STAFF:
            w.user_ids[principal] = live.service.staff.principal(w.cookies[principal]).user_id
        yield w


# --- REST --------------------------------------------------------------------------------------------------
def route_keys(app: Any) -> set[tuple[str, str]]:
    """(METHOD, path) of every route, through nested routers; ("MOUNT", path) for each mounted app."""
    keys: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included router: its routes, under its prefix
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif type(route).__name__ == "Mount":
                keys.add(("MOUNT", prefix + route.path))
            else:
                keys.update((m, prefix + route.path) for m in route.methods if m != "HEAD")

    walk(app.routes, "")
    return keys


@dataclass
class Rest:
    """One request: ``request(a, b)`` gives (path, json body or None, form data or None); ``expect`` the
    status per principal (a principal not named gets ``default``)."""

    method: str
    request: Callable[[Conv, Conv], tuple[str, Any, Any]]
    expect: dict[str, int]
    default: int = 401
    handled_by: str | None = "agent 1"
    fresh_session: bool = False


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PRINCIPALS, status)


def staff(status: int = 200, **others: int) -> dict[str, int]:
    table = dict.fromkeys(STAFF, status)
    table.update({k.replace("_", " "): v for k, v in others.items()})
    return table


OWNER_OR_ADMIN = staff(200, agent_2=403, demoted_admin=403)  # agent 2 and the demoted admin are other agents
CUSTOMER_A = {"customer A": 200}  # every other principal: 401 (no token, or the token of another conversation)
C = "/api/v1/conversations"
AGENT_C = "/api/v1/agent/conversations"

REST_RULES: dict[tuple[str, str], list[Rest]] = {
    ("GET", "/api/v1/openapi.json"): [Rest("GET", lambda a, b: ("/api/v1/openapi.json", None, None), everyone(200))],
    ("GET", "/api/v1/docs"): [Rest("GET", lambda a, b: ("/api/v1/docs", None, None), everyone(200))],
    ("GET", "/docs/oauth2-redirect"): [Rest("GET", lambda a, b: ("/docs/oauth2-redirect", None, None), everyone(200))],
    ("GET", "/api/v1/healthz"): [Rest("GET", lambda a, b: ("/api/v1/healthz", None, None), everyone(200))],
    ("POST", C): [Rest("POST", lambda a, b: (C, {"language": "en"}, None), everyone(201))],
    ("POST", C + "/{conversation_id}/messages"): [
        Rest("POST", lambda a, b: (f"{C}/{a.id}/messages", {"text": "more"}, None), CUSTOMER_A, handled_by=None)],
    ("GET", C + "/{conversation_id}/messages"): [
        Rest("GET", lambda a, b: (f"{C}/{a.id}/messages", None, None), CUSTOMER_A)],
    ("POST", C + "/{conversation_id}/handoff"): [
        Rest("POST", lambda a, b: (f"{C}/{a.id}/handoff", None, None), CUSTOMER_A, handled_by=None)],
    ("POST", C + "/{conversation_id}/messages/{message_id}/rating"): [
        Rest("POST", lambda a, b: (f"{C}/{a.id}/messages/{a.bot_message}/rating", {"liked": True}, None),
             CUSTOMER_A)],
    ("POST", C + "/{conversation_id}/close"): [
        Rest("POST", lambda a, b: (f"{C}/{a.id}/close", {"csat": 5}, None), CUSTOMER_A)],
    ("POST", "/api/v1/login"): [Rest("POST", lambda a, b: ("/api/v1/login", {"username": "ana",
                                                                             "password": "password123"}, None),
                                     everyone(200))],
    ("POST", "/api/v1/logout"): [Rest("POST", lambda a, b: ("/api/v1/logout", None, None), everyone(200),
                                      fresh_session=True)],
    ("GET", "/api/v1/queue"): [Rest("GET", lambda a, b: ("/api/v1/queue", None, None), staff())],
    ("GET", AGENT_C + "/{conversation_id}"): [Rest("GET", lambda a, b: (f"{AGENT_C}/{a.id}", None, None), staff())],
    ("POST", AGENT_C + "/{conversation_id}/messages"): [
        Rest("POST", lambda a, b: (f"{AGENT_C}/{a.id}/messages", {"text": "an agent writes"}, None), OWNER_OR_ADMIN)],
    ("POST", AGENT_C + "/{conversation_id}/{action}"): [
        # Taking over what another agent handles is a conflict for everyone, admins included (they assign).
        Rest("POST", lambda a, b: (f"{AGENT_C}/{a.id}/take-over", None, None), staff(409, agent_1=200)),
        Rest("POST", lambda a, b: (f"{AGENT_C}/{a.id}/take-over", None, None), staff(200), handled_by=None),
        Rest("POST", lambda a, b: (f"{AGENT_C}/{a.id}/hand-back", None, None), OWNER_OR_ADMIN),
        Rest("POST", lambda a, b: (f"{AGENT_C}/{a.id}/close", None, None), OWNER_OR_ADMIN),
    ],
    ("POST", "/api/v1/agent/messages/{message_id}/review"): [  # reviewing is team work: any agent
        Rest("POST", lambda a, b: (f"/api/v1/agent/messages/{a.bot_message}/review", {"action": "approve"}, None),
             staff())],
    ("GET", "/login"): [Rest("GET", lambda a, b: ("/login", None, None), everyone(200))],
    ("POST", "/login"): [Rest("POST", lambda a, b: ("/login", None, {"username": "ana", "password": "password123"}),
                              everyone(303))],
    ("GET", "/logout"): [Rest("GET", lambda a, b: ("/logout", None, None), everyone(303), fresh_session=True)],
    ("POST", "/logout"): [Rest("POST", lambda a, b: ("/logout", None, None), everyone(303), fresh_session=True)],
    # Mounted Gradio apps: the page and its config (every Gradio route asks the same question; the events
    # are the second half of this file).
    ("MOUNT", "/agent"): [Rest("GET", lambda a, b: ("/agent/", None, None), staff(), default=303),
                          Rest("GET", lambda a, b: ("/agent/config", None, None), staff())],
    ("MOUNT", "/admin"): [Rest("GET", lambda a, b: ("/admin/", None, None), {"admin": 200}, default=303),
                          Rest("GET", lambda a, b: ("/admin/config", None, None), {"admin": 200})],
    ("MOUNT", ""): [Rest("GET", lambda a, b: ("/", None, None), everyone(200)),
                    Rest("GET", lambda a, b: ("/config", None, None), everyone(200))],
}


def _send(world: World, rule: Rest, cell: Cell, a: Conv, b: Conv) -> httpx.Response:
    path, body, form = rule.request(a, b)
    headers = {"Origin": world.live.url}
    if cell.token:
        headers["Authorization"] = f"Bearer {cell.token}"
    cookies = {"chatbot_session": cell.cookie} if cell.cookie else {}
    with httpx.Client(base_url=world.live.url, timeout=15, cookies=cookies, follow_redirects=False) as client:
        return client.request(rule.method, path, json=body, data=form, headers=headers)


def test_every_rest_route_has_a_rule_and_every_principal_gets_what_it_says(world):
    from web.app import create_app

    keys = route_keys(create_app(world.live.service.settings, world.live.service))
    assert keys - REST_RULES.keys() == set(), "routes without a rule in the authorisation matrix"
    assert REST_RULES.keys() - keys == set(), "rules for routes that no longer exist"
    wrong = []
    b = world.conversation(None)  # customer B's own conversation: nothing here may change it
    shared = {who: world.conversation(who) for who in ("agent 1", None)}  # the target of refused requests
    for key, rules in REST_RULES.items():
        for rule in rules:
            for principal in PRINCIPALS:
                expected = rule.expect.get(principal, rule.default)
                # An allowed request may change its target: it gets a fresh one; a refused one must not.
                a = world.conversation(rule.handled_by) if expected < 400 else shared[rule.handled_by]
                before_a, before_b = world.snapshot(a.id), world.snapshot(b.id)
                response = _send(world, rule, cell_for(world, principal, a, b, rule.fresh_session), a, b)
                if response.status_code != expected:
                    wrong.append(f"{key} {rule.request(a, b)[0]} as {principal}: {response.status_code} "
                                 f"(expected {expected}) {response.text[:120]}")
                if MARKER in response.text and principal not in ("customer A", *STAFF):
                    wrong.append(f"{key} as {principal}: customer A's words in the answer")
                if world.snapshot(b.id) != before_b:
                    wrong.append(f"{key} as {principal}: conversation B changed")
                if expected >= 400 and world.snapshot(a.id) != before_a:
                    wrong.append(f"{key} as {principal}: refused, yet the conversation changed")
    assert not wrong, "\n".join(wrong)


# --- Gradio events -------------------------------------------------------------------------------------------
@dataclass
class Event:
    """One Gradio event: ``data(world, a)`` gives its inputs; ``expect`` overrides the page's rule for a
    principal ("ran" or "refused"); ``event_data`` for select/like events; ``domain_error``: a refusal of the
    service (not of the principal) that an allowed principal may meet with these inputs."""

    data: Callable[[World, Conv], list[Any]] = lambda w, a: []
    expect: dict[str, str] = field(default_factory=dict)
    event_data: Any = None
    handled_by: str | None = "agent 1"
    domain_error: str | None = None
    js_only: bool = False
    prepare: tuple[str, ...] = ()  # events the page runs first in the same session (they fill a dropdown's choices)


JS_ONLY = Event(js_only=True)
OWNER = {"agent 2": "refused", "demoted admin": "refused"}
TAKEN = {"agent 2": "refused", "demoted admin": "refused", "admin": "refused"}
ANOTHER_AGENT = "handled by another agent"


def _select(index: Any, value: Any = None) -> dict[str, Any]:
    return {"index": index, "value": value, "selected": True}


def _conv(w: World, a: Conv) -> list[Any]:
    return [a.id, None]


CUSTOMER_EVENTS: dict[str, Event] = {
    "load_example": Event(lambda w, a: [0], event_data=_select(0, ["What are your opening hours?"])),
    "resume": Event(lambda w, a: [None, "en"]),
    "relabel": Event(lambda w, a: ["zh", None]),
    "send": Event(lambda w, a: ["one more thing", None, "en"]),
    "send_1": Event(lambda w, a: ["one more thing", None, "en"]),
    "refresh": Event(lambda w, a: [None]),
    "ask_human": Event(lambda w, a: [None, "en"], handled_by=None),
    "like": Event(lambda w, a: [None, None], event_data={"index": [1, None], "value": "x", "liked": True}),
    "finish": Event(lambda w, a: [None, 5, "en"]),
}
AGENT_EVENTS: dict[str, Event] = {
    "js_fn": JS_ONLY,
    **{name: Event(lambda w, a: [None, ""]) for name in ("inbox", "inbox_1", "inbox_2", "inbox_3", "inbox_4",
                                                           "inbox_5", "inbox_6", "inbox_7")},
    "versions": Event(),
    "staff_choices": Event(),
    **{name: Event(lambda w, a: ["/", a.id]) for name in ("saved_matches", "saved_matches_1", "saved_matches_2",
                                                          "saved_matches_3", "saved_matches_4")},
    **{name: Event(lambda w, a: [None]) for name in ("review_refresh", "review_refresh_1")},
    **{f"open_conversation{s}": Event(_conv) for s in ("", *(f"_{i}" for i in range(1, 11)))},
    "pick_row": Event(lambda w, a: [{"headers": ["id", "preview", "waiting", "language", "status", "agent"],
                                     "data": [[a.id, "x", "", "en", "human", "ana"]], "metadata": None}],
                      event_data=_select([0, 1], "x")),
    "show_reply": Event(lambda w, a: [a.id, a.bot_message], prepare=("open_conversation",)),
    "lambda": Event(lambda w, a: ["text"]),
    "take_over": Event(lambda w, a: [a.id], expect=TAKEN, domain_error=None),  # what agent 1 handles
    "hand_back": Event(lambda w, a: [a.id], expect=OWNER),
    "close": Event(lambda w, a: [a.id], expect=OWNER),
    "assign": Event(lambda w, a: [a.id, w.user_ids["agent 2"]], expect=OWNER, prepare=("staff_choices",)),
    **{name: Event(lambda w, a: [a.bot_message, "a corrected reply"], prepare=("open_conversation",))
       for name in ("approve_reply", "edit_reply", "reject_reply")},
    **{name: Event(lambda w, a: [None], event_data=_select(0)) for name in ("insert_choice", "insert_choice_1")},
    **{name: Event(lambda w, a: [a.id, "an agent writes", None, None, None], expect=OWNER)
       for name in ("send", "send_1")},
    "replay": Event(lambda w, a: [a.bot_message, 0, 1, 1.0, 1.0], domain_error="model",
                    prepare=("open_conversation", "versions")),
    **{name: Event(lambda w, a: [None, "a corrected reply"]) for name in ("queue_approve", "queue_edit", "queue_reject")},
    "review_candidate": Event(lambda w, a: [None], event_data=_select(0)),
}
ADMIN_EVENTS: dict[str, Event] = {
    "shadow_on": Event(lambda w, a: [1], domain_error="version"),
    "shadow_off": Event(),
    "promote": Event(lambda w, a: [1], domain_error="version"),
    **{name: Event() for name in ("refresh", "refresh_1", "refresh_2", "refresh_3", "overview", "overview_1",
                                  "overview_2", "overview_3", "overview_4", "serving", "list_facts",
                                  "list_facts_1", "list_facts_2", "list_facts_3")},
    "promote_version": Event(lambda w, a: [999], domain_error="version"),
    "roll_back": Event(lambda w, a: [None], domain_error="roll"),
    "erase": Event(lambda w, a: [a.id, True]),
    "pick_fact": Event(lambda w, a: [{"headers": ["id", "key", "value", "language"], "data": [], "metadata": None}],
                       event_data=_select([0, 0])),
    "add_fact": Event(lambda w, a: [f"key-{uuid.uuid4().hex[:8]}", "a value", "en"]),
    "save_fact": Event(lambda w, a: [None, "k", "v", "en"], domain_error="fact"),
    "delete_fact": Event(lambda w, a: [None], domain_error="fact"),
}
PAGES = {"": (CUSTOMER_EVENTS, PRINCIPALS), "/agent": (AGENT_EVENTS, STAFF), "/admin": (ADMIN_EVENTS, ("admin",))}


def _call(world: World, page: str, dep: dict[str, Any], event: Event, cell: Cell, data: list[Any],
          session: str) -> tuple[int, dict[str, Any] | None]:
    """Join Gradio's queue for one event as ``cell``; (HTTP status of the join, the completed message)."""
    body = {"data": data, "fn_index": dep["id"], "trigger_id": dep["targets"][0][0] if dep["targets"] else None,
            "session_hash": session, "event_data": event.event_data}
    cookies = {"chatbot_session": cell.cookie} if cell.cookie else {}
    with httpx.Client(base_url=world.live.url, timeout=30, cookies=cookies,
                      headers={"Origin": world.live.url}) as client:
        joined = client.post(f"{page}/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return joined.status_code, None
        with client.stream("GET", f"{page}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    message = json.loads(line.removeprefix("data: "))
                    if message.get("msg") == "process_completed":
                        return 200, message
    return 200, None


def _customer_state(principal: str, a: Conv, b: Conv) -> dict[str, Any]:
    """The browser state each principal sends: A's conversation, with the token it holds."""
    return {"id": a.id, "token": {"customer A": a.token, "customer B": b.token}.get(principal)}


def test_every_gradio_event_has_a_rule_and_every_principal_gets_what_it_says(world):
    live = world.live
    configs = {page: httpx.get(f"{live.url}{page}/config", cookies={"chatbot_session": world.cookies["admin"]},
                               timeout=15).json() for page in PAGES}
    wrong = []
    b = world.conversation(None)
    shared = {who: world.conversation(who) for who in ("agent 1", None)}
    for page, (rules, allowed) in PAGES.items():
        names = {dep["api_name"] for dep in configs[page]["dependencies"]}
        assert names - rules.keys() == set(), f"events of {page or '/'} without a rule in the matrix"
        assert rules.keys() - names == set(), f"rules for events of {page or '/'} that no longer exist"
        by_name = {dep["api_name"]: dep for dep in configs[page]["dependencies"]}
        for dep in configs[page]["dependencies"]:
            event = rules[dep["api_name"]]
            if event.js_only:
                assert not dep["backend_fn"], f"{page}:{dep['api_name']} runs on the server: give it a rule"
                continue
            for principal in PRINCIPALS:
                expected = "denied" if principal not in allowed else event.expect.get(principal, "ran")
                a = shared[event.handled_by] if expected == "denied" else world.conversation(event.handled_by)
                before_a, before_b = world.snapshot(a.id), world.snapshot(b.id)
                data = event.data(world, a)
                if page == "":  # the customer page's BrowserState is its first input named None here
                    data = [(_customer_state(principal, a, b) if v is None and i == _state_index(dep, configs[page])
                             else v) for i, v in enumerate(data)]
                cell, session = cell_for(world, principal, a, b), uuid.uuid4().hex
                for name in event.prepare:
                    first = by_name[name]
                    _call(world, page, first, rules[name], cell, rules[name].data(world, a), session)
                status, done = _call(world, page, dep, event, cell, data, session)
                got = _outcome(status, done, event)
                label = f"{page or '/'}:{dep['api_name']} as {principal}"
                if got != expected:
                    wrong.append(f"{label}: {got} (expected {expected}) {json.dumps(done)[:200] if done else status}")
                output = json.dumps((done or {}).get("output"), ensure_ascii=False)
                own = page == "" and principal == "customer A" and dep["api_name"] in ("resume", "refresh")
                if own and MARKER not in output:
                    wrong.append(f"{label}: customer A does not see their own conversation")
                if expected == "denied" and world.snapshot(a.id) != before_a:
                    wrong.append(f"{label}: denied, yet the conversation changed")
                if page == "" and principal != "customer A":
                    if MARKER in output:
                        wrong.append(f"{label}: customer A's words reached another principal")
                    if world.snapshot(a.id) != before_a:
                        wrong.append(f"{label}: changed customer A's conversation")
                if world.snapshot(b.id) != before_b and page != "":
                    wrong.append(f"{label}: changed an unrelated conversation")
    assert not wrong, "\n".join(wrong)


def _state_index(dep: dict[str, Any], config: dict[str, Any]) -> int:
    types = {c["id"]: c["type"] for c in config["components"]}
    kinds = [types[i] for i in dep["inputs"]]
    return kinds.index("browserstate") if "browserstate" in kinds else -1


def _outcome(status: int, done: dict[str, Any] | None, event: Event) -> str:
    if status in (401, 403):
        return "denied"
    if status != 200 or done is None:
        return f"http {status}"
    if done.get("success"):
        return "ran"
    error = json.dumps(done.get("output", {}).get("error"))
    if ANOTHER_AGENT in error:
        return "refused"
    if "sign in as" in error:
        return "denied"
    if event.domain_error and event.domain_error in error.lower():
        return "ran"  # the principal got through; the service refused the input itself
    return f"error {error[:160]}"
