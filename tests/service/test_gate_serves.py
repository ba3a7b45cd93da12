"""The promotion gate measures what serving serves: the replies the gate scores for a candidate are the
replies a real ``chatbot serve`` (decoder processes, int8, the settings' decoding, the model's context
window) sends for the same conversations.

Grounding is off on the server: it may swap a reply for a grounded alternative after decoding, which the
gate does not model (the tiny model's random words would trip it); everything up to the decoded reply is
compared.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chatbot.settings import load_settings
from training.gate import run_gate
from training.sources import Pair

from .tiny import tiny_checkpoint

pytestmark = pytest.mark.slow
SERVE = [sys.executable, "-c", "from chatbot.cli import main; main()", "serve"]
# int8 and three beams (the serving defaults' shape, short), a decoder process, nobody handed off.
SERVING = {"quantize_int8": True, "num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 8,
           "repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "handoff_min_score": -1e9, "handoff_min_token_logprob": -1e9, "handoff_repeats": False, "grounding": False,
           "model_warmup": False, "decode_process": True, "decoders": 1, "torch_threads": 1}
FIRST_TURNS = ["hello where is my order", "my parcel arrived late", "refund please", "thanks we can help"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([*SERVE, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(url + "/api/v1/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"server did not come up: {log.read_text()[-2000:]}")


def _served(url: str, turns: list[str]) -> list[str]:
    """The bot's reply to each customer turn of one conversation, as the REST API sends it."""
    with httpx.Client(base_url=url, timeout=60) as client:
        started = client.post("/api/v1/conversations", json={"language": "en"}).json()
        auth = {"Authorization": f"Bearer {started['token']}"}
        replies = []
        for text in turns:
            answer = client.post(f"/api/v1/conversations/{started['id']}/messages", json={"text": text},
                                 headers=auth)
            assert answer.status_code == 200, answer.text
            assert answer.json()["reply"] is not None, answer.json()
            replies.append(answer.json()["reply"]["text"])
        return replies


def test_gate_candidate_replies_equal_what_chatbot_serve_sends(tmp_path: Path) -> None:
    model = tiny_checkpoint(tmp_path / "candidate", seed=7)
    data_dir = tmp_path / "data"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env = {**clean, **{f"CHATBOT_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                       for k, v in SERVING.items()},
           "CHATBOT_DATA_DIR": str(data_dir), "CHATBOT_MODEL_DIR": str(model)}
    proc, url = _serve(env, tmp_path / "serve.log")
    try:
        single = [_served(url, [text])[0] for text in FIRST_TURNS]
        two_turns = _served(url, FIRST_TURNS[:2])  # the second reply reads the first back from the store
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    contexts = [((("customer", text),)) for text in FIRST_TURNS]
    contexts.append((("customer", FIRST_TURNS[0]), ("bot", two_turns[0]), ("customer", FIRST_TURNS[1])))
    corrections = [Pair(context, "the agent's answer", "en", conversation=f"c{i}")
                   for i, context in enumerate(contexts)]
    settings = load_settings(data_dir=data_dir, model_dir=model, **SERVING)
    decision = run_gate(model, None, corrections[:2], corrections, settings)

    gate_replies = [row["reply"] for row in decision.candidate["corrections"]]
    assert gate_replies == [*single, two_turns[1]]
    assert decision.candidate["decoding"]["int8"] is True and decision.candidate["decoding"]["num_beams"] == 3
    assert len(set(single)) > 1  # different questions, different replies: the comparison can fail
