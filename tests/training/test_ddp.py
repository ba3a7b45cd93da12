"""`chatbot train` under torchrun with 2 gloo processes takes the same steps as one process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOML = """size = "tiny"
epochs = 2
max_tokens = 600
max_batch_size = 12
lr = 0.01
warmup_steps = 2
log_every = 1
vocab_min_freq = 1
dev_fraction = 0.1
"""


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tiny_jsonl, tmp_path: Path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    args = ["train", "--data", f"jsonl:{tiny_jsonl}", "--config", str(config)]
    single = subprocess.run(["chatbot", *args, "--out", str(tmp_path / "one")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "--no-python", "chatbot", *args,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "train_state.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "train_state.pt", weights_only=True)
    assert one["step"] == two["step"] > 4
    for name, w in one["model"].items():
        torch.testing.assert_close(two["model"][name], w, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
