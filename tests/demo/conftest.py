"""A tiny real checkpoint that knows one English and one Chinese reply by heart, and CLI helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from training.sources import Pair
from training.train import TrainConfig, train

PAIRS = [
    ("en", "where is my order", "it ships today."),
    ("en", "i want a refund", "your refund is on its way."),
    ("zh", "我的订单在哪里", "您的订单今天发货。"),
    ("en", "can i book a table", "your table is booked for 7 pm."),
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained by the product's own training loop, so the checkpoint is exactly what `chatbot train` writes."""
    torch.set_num_threads(1)
    pairs = [Pair((("customer", text),), reply, lang, conversation=f"tiny:{i}")
             for i, (lang, text, reply) in enumerate(PAIRS)]
    cfg = TrainConfig(size="tiny", epochs=150, lr=0.02, warmup_steps=0, label_smoothing=0.0, vocab_min_freq=1,
                      checkpoint_minutes=60, min_lr_ratio=1.0)
    out = tmp_path_factory.mktemp("tiny")
    result = train(pairs, [], out, cfg, progress=False, decoding={"num_beams": 3, "max_new_tokens": 12})
    return result.model_dir


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Settings for one test: its own data directory (SQLite file inside), one torch thread."""
    return {"CHATBOT_DATA_DIR": str(tmp_path / "data"), "CHATBOT_TORCH_THREADS": "1",
            "CHATBOT_NUM_BEAMS": "3", "CHATBOT_MAX_NEW_TOKENS": "12"}


@pytest.fixture
def cli(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """``cli(*args, input=None)`` runs the real ``chatbot`` app in-process with ``env``."""
    from chatbot.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)

    return run


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env}
