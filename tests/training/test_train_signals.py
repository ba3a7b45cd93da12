"""Ctrl-C (SIGINT) or SIGTERM during `chatbot train` saves the resumable state and `--resume` continues.

Issue 18, item 5: the run used to exit 130 without ``train_state.pt`` and up to ``checkpoint_minutes`` of
work was lost. Real processes: the periodic checkpoint is an hour away, so any state on disk after the
signal was written because of it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from training.train import METRICS_FILE, STATE_FILE

TINY_TOML = """size = "tiny"
epochs = 30
max_tokens = 400
max_batch_size = 16
lr = 0.01
warmup_steps = 2
eval_every = 1000
patience = 1000
log_every = 1
checkpoint_minutes = 60
vocab_min_freq = 1
dev_fraction = 0.1
max_tgt_tokens = 20
"""


def _train_rows(out: Path) -> list[dict[str, str]]:
    """The training-loss rows of metrics.csv (dev-loss rows share their step)."""
    if not (out / METRICS_FILE).exists():
        return []
    with open(out / METRICS_FILE, newline="") as f:
        return [r for r in csv.DictReader(f) if r["train_loss"]]


def _train(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    return subprocess.Popen(["chatbot", "train", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_the_state_and_resume_continues_from_that_step(tiny_jsonl, tmp_path, signum):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    out = tmp_path / "run"
    args = ["--data", f"jsonl:{tiny_jsonl}", "--out", str(out), "--config", str(config)]
    run = _train(tmp_path, *args)
    deadline = time.monotonic() + 120
    while len(_train_rows(out)) < 5 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.poll() is None, run.stderr.read()  # still training: the signal comes mid-run
    assert not (out / STATE_FILE).exists()  # no periodic checkpoint yet
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=120)

    assert run.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    state = torch.load(out / STATE_FILE, weights_only=True)
    stopped = state["step"]
    assert stopped >= 5 and state["finished"] == ""  # resumable
    assert f"interrupted by {name} at step {stopped} of " in stderr
    assert "--resume" in stderr.splitlines()[-1]  # the last line says how to continue
    assert f"{name}: saving the training state at step {stopped}" in stderr
    rows_before = [int(r["step"]) for r in _train_rows(out)]
    assert rows_before == list(range(1, stopped + 1))  # every step up to the saved one is logged

    resumed = _train(tmp_path, *args, "--resume", "--json")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    result = json.loads(stdout)
    total = result["steps"]
    assert total > stopped and result["stopped"] in ("epochs", "max_steps")
    # One row per step, the resumed run's first one right after the interrupted run's last: nothing
    # redone, nothing skipped.
    assert [int(r["step"]) for r in _train_rows(out)] == list(range(1, total + 1))
    final = torch.load(out / STATE_FILE, weights_only=True)
    assert final["step"] == total and final["finished"] == result["stopped"]
    assert (out / "model" / "config.json").exists()
