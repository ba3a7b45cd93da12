"""Does the nightly loop learn what agents teach? Agents teach K facts through the REST API, one nightly runs.

    python benchmarks/learning.py --model chatbot/shipped/demo --k 1 3 10            # the shipped model
    python benchmarks/learning.py --model DIR --k 1 --replay-data jsonl:base.jsonl   # any base model
    python benchmarks/learning.py --replay-data --replay-recipe training/recipes/shipped.toml  # its whole mix

For each K, in a fresh data directory: the base model is registered and promoted, a real `chatbot serve` starts,
and for each of K facts (opening hours, return policy, ...) scripted customers ask it in ``--taught`` phrasings,
each in its own conversation, and a scripted agent edits every bot reply to the fact's answer
(``POST /api/v1/agent/messages/{id}/review``). Then one `chatbot nightly` runs (replaying ``--replay-data``,
gated on ``--eval-data``), the server hot-switches to the promoted model, and customers ask again: the
phrasings no agent ever answered (``unseen``) and questions that have nothing to do with any fact
(``unrelated``). A reply "gives a fact" when its chrF against the fact's answer is at least ``--match``.

Printed per K: the gate's decision, the share of unseen phrasings answered with their fact before and after,
the share of unrelated questions wrongly given a taught answer, chrF on ``--eval-data`` before and after (both
models decoded as they serve), and the nightly's wall time. Target: every fact learned on unseen phrasings,
no unrelated question given a taught answer, chrF within 1 point, nightly under 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
SGD = ROOT / ".." / "shared" / "data" / "sgd"
PASSWORD = "teach-the-bot-1"


@dataclass(frozen=True)
class Fact:
    answer: str
    taught: tuple[str, ...]  # phrasings agents answer
    unseen: tuple[str, ...]  # phrasings asked only after the nightly


FACTS = (
    Fact("We are open from 9 am to 5 pm, Monday to Friday.",
         ("What are your opening hours?", "When are you open?", "What time do you open?", "What are your hours?",
          "Are you open on weekdays?", "When do you close?", "What time do you close today?",
          "Tell me your business hours."),
         ("What hours are you open?", "When do you open in the morning?", "What are your office hours?",
          "Until what time are you open?")),
    Fact("You can return any item within 30 days for a full refund.",
         ("What is your return policy?", "Can I return an item?", "How do returns work?", "Can I get a refund?",
          "How long do I have to return something?", "Do you accept returns?", "I want to return my order.",
          "What's the refund policy?"),
         ("Is it possible to return a product?", "How many days do I have for a return?",
          "Can I send an item back?", "Do you give refunds?")),
    Fact("Standard delivery takes 3 to 5 working days.",
         ("How long does delivery take?", "When will my order arrive?", "How long is shipping?",
          "What is the delivery time?", "How fast do you ship?", "How many days for delivery?",
          "When do orders usually arrive?", "How long does shipping take?"),
         ("How quickly will I get my parcel?", "What's the usual shipping time?", "How long until it's delivered?",
          "How many days does delivery take?")),
    Fact("You can reach our support team at 555-0199.",
         ("What is your phone number?", "How can I call you?", "What number do I call?", "Can I phone support?",
          "What's the support phone number?", "How do I contact you by phone?", "Give me your phone number.",
          "Is there a number I can call?"),
         ("What number can I ring?", "Do you have a phone line?", "How do I call customer support?",
          "Which number should I call?")),
    Fact("We accept Visa, Mastercard and PayPal.",
         ("What payment methods do you accept?", "Can I pay with PayPal?", "Do you take credit cards?",
          "How can I pay?", "Which cards do you accept?", "What are the payment options?", "Can I pay by card?",
          "Do you accept Mastercard?"),
         ("What ways can I pay?", "Is Visa accepted?", "Which payment options are there?",
          "Can I use my credit card?")),
    Fact("Gift cards are valid for one year from purchase.",
         ("How long is a gift card valid?", "Do gift cards expire?", "When does my gift card expire?",
          "What is the gift card expiry?", "Is there an expiry date on gift cards?", "How long can I use a gift card?",
          "Are gift cards valid forever?", "Tell me about gift card validity."),
         ("Will my gift card run out?", "Does a gift card have a time limit?", "When do gift cards stop working?",
          "How long do gift cards last?")),
    Fact("Our store is at 12 Oak Street, next to the station.",
         ("Where is your store?", "What is your address?", "Where are you located?", "Where can I find your shop?",
          "What's the store address?", "How do I get to your store?", "Where is the shop?",
          "Do you have a physical store?"),
         ("Where is the store located?", "Can you tell me the shop address?", "Where exactly is your shop?",
          "What's your location?")),
    Fact("Members earn one point for every dollar they spend.",
         ("How do loyalty points work?", "How many points do I earn?", "What are the membership rewards?",
          "How do I earn points?", "Tell me about the loyalty program.", "Do members get points?",
          "What do I get as a member?", "How does the rewards program work?"),
         ("How are points earned?", "What does the loyalty scheme give me?", "How many points per dollar?",
          "What are loyalty points?")),
    Fact("Delivery is free on orders over 50 dollars.",
         ("Is delivery free?", "Do you charge for shipping?", "How much is delivery?", "Is there free shipping?",
          "What does shipping cost?", "When is delivery free?", "Do I pay for delivery?",
          "Is shipping free over a certain amount?"),
         ("How much does shipping cost?", "Do you offer free delivery?", "Is there a delivery fee?",
          "What's the shipping charge?")),
    Fact("You can change your password under Settings, then Security.",
         ("How do I change my password?", "How can I reset my password?", "I forgot my password.",
          "Where do I update my password?", "How do I set a new password?", "Can I change my password?",
          "How to change the password?", "My password needs changing."),
         ("Where can I change my password?", "How do I get a new password?", "I want a different password.",
          "How is the password changed?")),
)
UNRELATED = ("I'd like to book a table for two at 7 pm tonight.", "Can you find me a flight to Seattle next Friday?",
             "I need a hotel in London for three nights.", "What's the weather like in Paris tomorrow?",
             "Can I get a large latte with oat milk?", "Find me a bus to Sacramento on Monday.",
             "I want to see a movie this evening.", "Book me a rental car in Los Angeles.",
             "Hello, how are you today?", "Play some jazz music please.", "I need a dentist appointment.",
             "Are there any concerts in New York this weekend?")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gives_fact(reply: str, answer: str, threshold: float) -> bool:
    from training.metrics import chrf

    return chrf([reply], [answer]) >= threshold


@dataclass
class KResult:
    k: int
    decision: str = ""
    reasons: list[str] = field(default_factory=list)
    unseen_before: float = 0.0
    unseen_after: float = 0.0
    unrelated_before: float = 0.0
    unrelated_after: float = 0.0
    facts_learned: int = 0
    eval_chrf_before: float | None = None
    eval_chrf_after: float | None = None
    nightly_s: float = 0.0
    replies_after: dict[str, str] = field(default_factory=dict)


class Server:
    """A real `chatbot serve` in its own data directory."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(["chatbot", "serve", "--port", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.http.get("/api/v1/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chatbot serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.3)

    def ask(self, text: str) -> tuple[str, int | None]:
        """A new conversation with one customer message: (the bot's reply text, its message id)."""
        started = self.http.post("/api/v1/conversations", json={"language": "en"}).json()
        auth = {"Authorization": f"Bearer {started['token']}"}
        body = self.http.post(f"/api/v1/conversations/{started['id']}/messages", json={"text": text}, headers=auth)
        body.raise_for_status()
        reply = body.json().get("reply")
        return (reply["text"], reply["id"]) if reply else ("", None)

    def model(self) -> str | None:
        return self.http.get("/api/v1/healthz").json().get("model")

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def publish_facts(facts: tuple[Fact, ...], data_dir: Path) -> None:
    """The answers as company facts (what an admin keeps in `/admin`): the export then keeps the phone number
    and address agents write instead of redacting them, as it does for any company that lists its details."""
    from chatbot.settings import load_settings
    from chatbot.store import ConversationStore
    from chatbot.store.facts import add_fact

    store = ConversationStore(load_settings(data_dir=data_dir))
    try:
        with store.transaction() as session:
            for i, fact in enumerate(facts):
                add_fact(session, f"fact {i + 1}", fact.answer)
    finally:
        store.close()


def chatbot(env: dict[str, str], *args: str, timeout: float = 1800) -> str:
    done = subprocess.run(["chatbot", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chatbot {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def eval_chrf(model_dir: Path, pairs: list[Any], env: dict[str, str]) -> float:
    from chatbot.settings import load_settings
    from training.evaluate import evaluate_model

    settings = load_settings(data_dir=Path(env["CHATBOT_DATA_DIR"]))
    return float(evaluate_model(model_dir, pairs, settings, progress=False).metrics["chrf"])


def run_k(k: int, base_model: Path, work: Path, *, replay_data: list[str], eval_data: list[str], eval_limit: int,
          taught: int, match: float, extra_env: dict[str, str] | None = None) -> KResult:
    """Teach ``k`` facts to a server on ``base_model``, run one nightly, measure before and after."""
    from training.sources import load_pairs, spread

    data_dir = work / f"k{k}"
    env = {**os.environ, "CHATBOT_DATA_DIR": str(data_dir), "CHATBOT_REVIEW_MODE": "auto",
           "CHATBOT_HANDOFF_MIN_SCORE": "-1e9",
           "CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB": "-1e9", "CHATBOT_HANDOFF_REPEATS": "false",
           "CHATBOT_GROUNDING": "false", "CHATBOT_TORCH_THREADS": "1",
           "CHATBOT_DECODERS": "1", "CHATBOT_ACCESS_LOG": "false",
           "CHATBOT_NIGHTLY_REPLAY_DATA": json.dumps(replay_data), "CHATBOT_NIGHTLY_EVAL_DATA": json.dumps(eval_data),
           "CHATBOT_NIGHTLY_EVAL_LIMIT": str(eval_limit), **(extra_env or {})}
    facts = FACTS[:k]
    result = KResult(k)
    chatbot(env, "db", "upgrade")
    base = json.loads(chatbot(env, "models", "register", str(base_model), "--name", "base", "--json"))
    chatbot(env, "models", "promote", str(base["id"]))
    chatbot(env, "users", "add", "teacher", "--role", "agent", "--password", PASSWORD)
    publish_facts(facts, data_dir)
    server = Server(env)
    try:
        def shares(replies: dict[str, str]) -> tuple[float, float, int]:
            unseen = [(q, f) for f in facts for q in f.unseen]
            hits = [gives_fact(replies[q], f.answer, match) for q, f in unseen]
            learned = sum(all(gives_fact(replies[q], f.answer, match) for q in f.unseen) for f in facts)
            wrong = [any(gives_fact(replies[q], f.answer, match) for f in facts) for q in UNRELATED]
            return sum(hits) / len(hits), sum(wrong) / len(wrong), learned

        questions = [q for f in facts for q in f.unseen] + list(UNRELATED)
        before = {q: server.ask(q)[0] for q in questions}
        result.unseen_before, result.unrelated_before, _ = shares(before)

        login = server.http.post("/api/v1/login", json={"username": "teacher", "password": PASSWORD})
        login.raise_for_status()
        for fact in facts:
            for question in fact.taught[:taught]:
                _, message_id = server.ask(question)
                if message_id is None:
                    raise RuntimeError(f"no bot reply to correct for {question!r} (handed off?)")
                review = server.http.post(f"/api/v1/agent/messages/{message_id}/review",
                                          json={"action": "edit", "text": fact.answer})
                review.raise_for_status()

        started = time.monotonic()
        report = json.loads(chatbot(env, "nightly", "--json"))
        result.nightly_s = time.monotonic() - started
        result.decision, result.reasons = report["decision"], report.get("reasons") or []
        if result.decision == "promoted":
            deadline = time.monotonic() + 60  # the server polls the registry and warms the new model
            while f"version {report['candidate_id']} " not in (server.model() or "") and time.monotonic() < deadline:
                time.sleep(0.5)
        after = {q: server.ask(q)[0] for q in questions}
        result.replies_after = after
        result.unseen_after, result.unrelated_after, result.facts_learned = shares(after)

        if eval_data:
            pairs = [p for spec in eval_data for p in spread(load_pairs([spec], 6), eval_limit)]
            result.eval_chrf_before = eval_chrf(base_model, pairs, env)
            candidate = Path(report["training"]["model_dir"]) if report.get("training") else None
            result.eval_chrf_after = eval_chrf(candidate, pairs, env) if candidate else None
    finally:
        server.close()
    return result


def print_table(results: list[KResult]) -> None:
    cols = ("K", "decision", "unseen answered (before -> after)", "facts learned", "unrelated given a fact",
            "eval chrF (before -> after)", "nightly s")
    print(" | ".join(cols))
    for r in results:
        chrf = ("-" if r.eval_chrf_before is None else
                f"{r.eval_chrf_before:.2f} -> {r.eval_chrf_after:.2f}" if r.eval_chrf_after is not None else "-")
        print(" | ".join((str(r.k), r.decision, f"{r.unseen_before:.0%} -> {r.unseen_after:.0%}",
                          f"{r.facts_learned}/{r.k}", f"{r.unrelated_before:.0%} -> {r.unrelated_after:.0%}",
                          chrf, f"{r.nightly_s:.0f}")))
        for reason in r.reasons:
            print(f"    not promoted: {reason}")


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "chatbot" / "shipped" / "demo", help="base model")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 10], choices=range(1, len(FACTS) + 1))
    parser.add_argument("--taught", type=int, default=8, help="phrasings answered by agents per fact (max 8)")
    parser.add_argument("--replay-data", nargs="*", default=[f"sgd:{SGD / 'train'}"])
    parser.add_argument("--replay-recipe", type=Path, help="also replay this recipe's data mix by its weights "
                        "(CHATBOT_NIGHTLY_REPLAY_RECIPE), e.g. training/recipes/shipped.toml for the shipped model")
    parser.add_argument("--eval-data", nargs="*", default=[f"sgd:{SGD / 'dev'}"])
    parser.add_argument("--eval-limit", type=int, default=300)
    parser.add_argument("--match", type=float, default=60.0, help="chrF against the answer that counts as giving it")
    parser.add_argument("--work", type=Path, help="keep the data directories here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="chatbot-learning-"))
    results = [run_k(k, args.model, work, replay_data=args.replay_data, eval_data=args.eval_data,
                     eval_limit=args.eval_limit, taught=args.taught, match=args.match,
                     extra_env={"CHATBOT_NIGHTLY_REPLAY_RECIPE": str(args.replay_recipe.resolve())}
                     if args.replay_recipe else None) for k in args.k]
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        print(f"base model {args.model}; {args.taught} taught phrasings per fact; work in {work}")
        print_table(results)


if __name__ == "__main__":
    main()
