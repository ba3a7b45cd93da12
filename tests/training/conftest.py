"""Tiny, learnable training data and a tiny model config so training tests run in seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

CITIES = ["denver", "paris", "boston", "austin", "oslo", "lima", "quito", "perth", "cairo", "dublin",
          "zurich", "kyoto", "havana", "nairobi", "sofia", "tunis"]
DAYS = ["monday", "tuesday", "friday", "sunday"]


def _reply_message(template: str, **values: str) -> dict:
    """An agent message whose slot values carry SGD-style character spans."""
    text = template.format(**values)
    slots = []
    for name, value in values.items():
        start = text.find(value)
        slots.append({"slot": name, "start": start, "exclusive_end": start + len(value)})
    return {"role": "agent", "text": text, "meta": {"slots": slots}}


def make_conversations(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city, day = rng.choice(CITIES), rng.choice(DAYS)
        messages = [
            {"role": "customer", "text": f"i want to fly to {city} on {day}"},
            _reply_message("ok , a flight to {city} on {day} .", city=city, day=day),
            {"role": "customer", "text": "thanks , that is all"},
            {"role": "agent", "text": "you are welcome , goodbye ."},
        ]
        out.append({"id": f"c{seed}-{i}", "language": "en", "messages": messages})
    return out


def write_jsonl(path: Path, conversations: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", make_conversations(60, seed=1))


@pytest.fixture
def tiny_config():
    from training.train import TrainConfig

    return TrainConfig(size="tiny", epochs=3, max_tokens=400, max_batch_size=16, lr=1e-2, warmup_steps=2,
                       eval_every=10, log_every=1, checkpoint_minutes=60, vocab_min_freq=1, dev_fraction=0.1,
                       max_tgt_tokens=20)
