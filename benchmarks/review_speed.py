"""How fast an agent approves a draft in the agent console: clicks and seconds from the draft arriving
(the customer's message stored, the bot's reply waiting as a draft) to its approval, by a scripted agent in
headless Chromium (Debian's ``/usr/bin/chromium``) against a real server (``create_app``, SQLite, draft
review mode; the bot echoes "re: <message>" so no model is loaded).

    python benchmarks/review_speed.py               # 5 drafts, one after another
    python benchmarks/review_speed.py --drafts 9 --json
    python benchmarks/review_speed.py --before 244b676   # also the console at that commit, side by side

``--before REV`` checks REV out into a temporary git worktree and runs this same script against that tree
(``--source``) in a subprocess first, so both consoles are measured in one run on the same machine.

The agent works as the console lets it, and the script picks the way by what the page offers:

* ``id box`` (the console before issue 21): wait for the conversation in the queue, click the id box, type
  the id, click Open, wait for the reply in the editor, click Approve;
* ``review queue`` (issue 21): stay on the review queue, where the oldest draft opens by itself; wait for
  it, press ``a``.

A click is a mouse click; a key is a shortcut pressed (typing an id counts as one click on the box, not
as keys). Seconds include the console's live refresh (a draft is only seen when the page learns of it).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
AGENT, PASSWORD = "ana", "password123"


@dataclass
class _Reply:
    text: str
    language: str | None
    confidence: float
    candidates: list[tuple[str, float]]
    attention: Any
    decoding: dict[str, Any]


class EchoReplies:
    """The generator behind the worker: "re: <last customer text>" and a runner-up, instantly."""

    def generate(self, contexts: list[list[tuple[str, str]]], language: str | None = None) -> list[_Reply]:
        out = []
        for context in contexts:
            text = f"re: {context[-1][1]}"
            out.append(_Reply(text, language, -0.5, [(text, -0.5), ("other", -2.0)], None, {"num_beams": 2}))
        return out


@dataclass
class Counter:
    clicks: int = 0
    keys: int = 0
    log: list[str] = field(default_factory=list)

    def click(self, locator: Any) -> None:
        self.clicks += 1
        locator.click()

    seen_at: float | None = None  # when the draft was on the agent's screen, ready to act on

    def seen(self) -> None:
        self.seen_at = time.monotonic()

    def key(self, page: Any, key: str) -> None:
        self.keys += 1
        page.keyboard.press(key)


def start_server(data_dir: Path) -> tuple[Any, str, Any]:
    import uvicorn

    from chatbot.service.batching import GenerationWorker
    from chatbot.service.chat import ChatService
    from chatbot.service.models import ModelRef
    from chatbot.settings import load_settings
    from chatbot.store.manager import ConversationStore
    from web.app import create_app

    settings = load_settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'bench.db'}",
                             review_mode="draft", grounding=False, access_log=False)
    store = ConversationStore(settings)
    store.ensure_schema()
    replies = EchoReplies()
    worker = GenerationWorker(lambda ref: replies, lambda: ModelRef(None, "echo"), max_wait_ms=2)
    service = ChatService(store, settings, worker)
    service.add_user(AGENT, PASSWORD, "agent")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, service), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}", service


def approve_with_id_box(page: Any, counter: Counter, conversation_id: int, draft_text: str) -> None:
    """The console before issue 21: find the id in the queue, type it, Open, Approve."""
    from playwright.sync_api import expect

    # the row is in the queue (its id alone in a cell): only then does the agent know it is there
    page.wait_for_function(
        "id => new RegExp('\\n' + id + '\\n(bot|pending|human|closed)\\n')"
        ".test(document.querySelector('#agent-queue').innerText)", arg=conversation_id, timeout=30_000)
    box = page.locator("#agent-conversation input")
    counter.click(box)
    box.fill(str(conversation_id))
    counter.click(page.locator("#agent-open"))
    expect(page.locator("#agent-corrected textarea")).to_have_value(draft_text, timeout=30_000)
    counter.seen()
    counter.click(page.locator("#agent-approve"))
    page.locator("#agent-info").get_by_text("is now approved").wait_for(timeout=30_000)


def approve_in_review_queue(page: Any, counter: Counter, conversation_id: int, draft_text: str) -> None:
    """The review queue (issue 21): the oldest draft opens by itself; ``a`` approves it."""
    from playwright.sync_api import expect

    expect(page.locator("#review-editor textarea")).to_have_value(draft_text, timeout=30_000)
    page.locator("#review-current").get_by_text(f"conversation {conversation_id}").wait_for(timeout=30_000)
    counter.seen()
    counter.key(page, "a")  # focus is never in a text field here: the agent only presses keys


def run(drafts: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server, url, service = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(url + "/agent")
                page.fill("#username", AGENT)
                page.fill("#password", PASSWORD)
                page.click("#sign-in")
                page.wait_for_url("**/agent/")
                page.locator("#agent-queue").wait_for(timeout=30_000)
                review_queue = page.get_by_role("tab", name="Review queue").count() > 0
                console = "review queue" if review_queue else "id box"
                if review_queue:
                    page.get_by_role("tab", name="Review queue").click()  # once, not per draft
                    page.locator("#review-editor").wait_for(timeout=30_000)
                approve = approve_in_review_queue if review_queue else approve_with_id_box
                rows = []
                for i in range(drafts):
                    conversation_id, _ = service.start_conversation("en")
                    message = f"where is my parcel number {i + 1}?"
                    result = service.send(conversation_id, message)
                    assert result.awaiting_review, "the server is not in draft mode"
                    arrived = time.monotonic()
                    counter = Counter()
                    approve(page, counter, conversation_id, f"re: {message}")
                    _wait_approved(service, conversation_id)
                    done = time.monotonic()
                    rows.append({"conversation": conversation_id, "clicks": counter.clicks, "keys": counter.keys,
                                 "seconds": round(done - arrived, 2),
                                 "on_screen_s": round((counter.seen_at or done) - arrived, 2)})
                browser.close()
        finally:
            server.should_exit = True
    return {
        "console": console, "drafts": drafts, "rows": rows,
        "median_clicks": statistics.median(r["clicks"] for r in rows),
        "median_keys": statistics.median(r["keys"] for r in rows),
        "median_seconds": round(statistics.median(r["seconds"] for r in rows), 2),
        "median_on_screen_s": round(statistics.median(r["on_screen_s"] for r in rows), 2),
    }


def _wait_approved(service: Any, conversation_id: int, timeout_s: float = 30.0) -> None:
    """The approval counts once the service has stored it (the customer can see the reply)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, messages = service.customer_messages(conversation_id)
        if any(m.role == "bot" for m in messages):
            return
        time.sleep(0.02)
    raise SystemExit(f"the draft of conversation {conversation_id} was not approved")


def measure_at(rev: str, drafts: int) -> dict[str, Any]:
    """Run this script against the tree of ``rev`` (a temporary git worktree) and return its report."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), rev],
                       check=True, capture_output=True)
        try:
            done = subprocess.run([sys.executable, __file__, "--source", str(tree), "--drafts", str(drafts), "--json"],
                                  check=False, capture_output=True, text=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False,
                           capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring the console at {rev} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    report["console"] += f" (at {rev})"
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"console: {report['console']}  drafts: {report['drafts']}")
    print("conversation  clicks  keys  seconds  (on screen after)")
    for r in report["rows"]:
        print(f"{r['conversation']:>12}  {r['clicks']:>6}  {r['keys']:>4}  {r['seconds']:>7.2f}  ({r['on_screen_s']:.2f})")
    print(f"median        {report['median_clicks']:>6}  {report['median_keys']:>4}  {report['median_seconds']:>7.2f}"
          f"  ({report['median_on_screen_s']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafts", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--before", metavar="REV", help="also measure the console at this git revision, first")
    parser.add_argument("--source", type=Path, default=ROOT, help="the source tree to serve (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.source.resolve()))
    from web.app import GRADIO_OFFLINE_ENV

    os.environ.update(GRADIO_OFFLINE_ENV)
    reports = [measure_at(args.before, args.drafts)] if args.before else []
    reports.append(run(args.drafts))
    if args.json:
        print(json.dumps(reports if args.before else reports[0], indent=2))
        return
    for report in reports:
        print_report(report)
        print()
    if args.before:
        print("| console | median clicks per approval | keys | seconds from draft stored to approved | on screen after |")
        print("| --- | --- | --- | --- | --- |")
        for r in reports:
            print(f"| {r['console']} | {r['median_clicks']} | {r['median_keys']} | {r['median_seconds']:.2f} | "
                  f"{r['median_on_screen_s']:.2f} |")
        before, after = reports
        print(f"\n{after['console']} vs {before['console']}: x{after['median_seconds'] / before['median_seconds']:.2f} "
              f"the seconds, {after['median_clicks']} vs {before['median_clicks']} clicks")


if __name__ == "__main__":
    main()
