"""Training on tiny data: learning, files written, exact resume after kill -9, clear errors."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from training.sources import SourceError, load_pairs, split_dev
from training.train import METRICS_FILE, STATE_FILE, TrainConfig, TrainError, lr_lambda, train

TINY_TOML = """size = "tiny"
epochs = {epochs}
max_tokens = 400
max_batch_size = 16
lr = 0.01
warmup_steps = 2
eval_every = 10
log_every = 1
checkpoint_minutes = {ckpt}
vocab_min_freq = 1
dev_fraction = 0.1
max_tgt_tokens = 20
"""


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def test_train_learns_and_writes_metrics_plots_and_model(tiny_jsonl, tiny_config, tmp_path):
    from chatbot.model.checkpoint import load_checkpoint

    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    train_pairs, dev_pairs = split_dev(pairs, 0.1)
    result = train(train_pairs, dev_pairs, tmp_path / "run", tiny_config, progress=False)
    rows = _rows(tmp_path / "run")
    train_losses = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    dev_losses = [float(r["dev_loss"]) for r in rows if r["dev_loss"]]
    assert train_losses[-1] < train_losses[0] * 0.7
    assert dev_losses[-1] < dev_losses[0]
    assert result.best_dev_loss == pytest.approx(min(dev_losses), rel=1e-4)
    assert set(rows[0]) == {"step", "epoch", "train_loss", "dev_loss", "dev_perplexity", "lr", "tokens_per_s"}
    assert all(float(r["tokens_per_s"]) > 0 for r in rows if r["train_loss"])
    for png in ("loss.png", "lr.png"):
        assert (tmp_path / "run" / png).read_bytes()[:4] == b"\x89PNG"
    loaded = load_checkpoint(result.model_dir)
    assert loaded.config["extra"]["train"]["dev_loss"] == pytest.approx(result.best_dev_loss)
    with pytest.raises(TrainError, match="already holds a training run"):
        train(train_pairs, dev_pairs, tmp_path / "run", tiny_config, progress=False)


def test_lr_warms_up_then_decays(tiny_jsonl, tiny_config, tmp_path):
    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    cfg = tiny_config.model_copy(update={"warmup_steps": 4})
    train(*split_dev(pairs, 0.1), tmp_path / "run", cfg, progress=False)
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "run") if r["train_loss"]]
    assert lrs[0] < lrs[2] < lrs[3] == pytest.approx(cfg.lr)  # warmup
    assert lrs[-1] < lrs[4]  # decay


def test_max_steps_ends_the_schedule_and_keeps_the_last_steps(tiny_jsonl, tiny_config, tmp_path):
    from chatbot.model.checkpoint import load_checkpoint

    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    cfg = tiny_config.model_copy(update={"epochs": 50, "max_steps": 13, "eval_every": 1000, "min_lr_ratio": 0.1})
    result = train(*split_dev(pairs, 0.1), tmp_path / "run", cfg, progress=False)
    rows = _rows(tmp_path / "run")
    lrs = [float(r["lr"]) for r in rows if r["train_loss"]]
    assert result.stopped == "max_steps" and result.steps == 13 and len(lrs) == 13
    # the cosine decays over max_steps, not over the 50 epochs: the last step is one step from its floor
    expected = [cfg.lr * lr_lambda(cfg.warmup_steps, 13, cfg.min_lr_ratio)(i) for i in range(13)]
    assert lrs == pytest.approx(expected, rel=1e-4) and lrs[-1] < cfg.lr * 0.15
    # the steps after the last scheduled evaluation are evaluated and kept, not thrown away
    assert [int(r["step"]) for r in rows if r["dev_loss"]][-1] == 13
    assert load_checkpoint(result.model_dir).config["extra"]["train"]["step"] == 13
    with pytest.raises(TrainError, match="already finished"):
        train(*split_dev(pairs, 0.1), tmp_path / "run", cfg, resume=True, progress=False)


def test_early_stopping_on_dev_loss(tiny_jsonl, tiny_config, tmp_path):
    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    # a learning rate far too high makes dev loss stop improving quickly
    cfg = tiny_config.model_copy(update={"epochs": 40, "lr": 0.5, "patience": 1, "warmup_steps": 0})
    result = train(*split_dev(pairs, 0.1), tmp_path / "run", cfg, progress=False)
    assert result.stopped == "early_stopping"
    assert result.epochs_done < 40


def _cli(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(cwd / "data")}
    return subprocess.Popen(["chatbot", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_same_next_losses(tiny_jsonl, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML.format(epochs=12, ckpt=0))
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    reference = _cli("train", "--data", f"jsonl:{tiny_jsonl}", "--out", str(ref), "--config", str(config), cwd=tmp_path)
    victim = _cli("train", "--data", f"jsonl:{tiny_jsonl}", "--out", str(crashed), "--config", str(config), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once it is well into training (past an epoch and an eval)
        if (crashed / METRICS_FILE).exists() and len(_rows(crashed)) >= 30 and (crashed / STATE_FILE).exists():
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    killed_at = len(_rows(crashed))
    resumed = _cli("train", "--data", f"jsonl:{tiny_jsonl}", "--out", str(crashed), "--config", str(config),
                   "--resume", cwd=tmp_path)
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    want, got = _rows(ref), _rows(crashed)
    assert len(want) > killed_at  # the kill really happened before the end
    strip = lambda rows: [(r["step"], r["epoch"], r["train_loss"], r["dev_loss"], r["lr"]) for r in rows]
    assert strip(got) == strip(want)


def test_bad_input_gives_clear_errors(tmp_path, tiny_jsonl, tiny_config):
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(tiny_jsonl.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(SourceError, match=r"corrupt training data: .*corrupt.jsonl.*line 2"):
        load_pairs([f"jsonl:{corrupt}"], max_turns=6)
    with pytest.raises(SourceError, match="unknown format 'nope'"):
        load_pairs(["nope:x"], max_turns=6)
    with pytest.raises(SourceError, match="FORMAT:PATH"):
        load_pairs(["sgd"], max_turns=6)
    with pytest.raises(SourceError, match="no such file"):
        load_pairs([f"jsonl:{tmp_path / 'missing.jsonl'}"], max_turns=6)
    with pytest.raises(TrainError, match="no STATE_FILE|no train_state.pt"):
        pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
        train(pairs, [], tmp_path / "fresh", tiny_config, resume=True, progress=False)
    with pytest.raises(TrainError, match="invalid training config"):
        TrainConfig.from_toml(None, lr=-1)


def test_cli_train_reports_clear_error_for_corrupt_file(tmp_path):
    corrupt = tmp_path / "bad.jsonl"
    corrupt.write_text("{broken\n")
    proc = _cli("train", "--data", f"jsonl:{corrupt}", "--out", str(tmp_path / "o"), cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("error: corrupt training data:") and "Traceback" not in err


def test_bf16_precision_learns_like_fp32_and_saves_fp32_weights(tiny_jsonl, tiny_config, tmp_path):
    from chatbot.model.checkpoint import load_checkpoint

    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config.model_copy(update={"precision": precision})
        results[precision] = train(*split_dev(pairs, 0.1), tmp_path / precision, cfg, progress=False)
        losses = [float(r["train_loss"]) for r in _rows(tmp_path / precision) if r["train_loss"]]
        assert losses[-1] < losses[0] * 0.7, precision
    # autocast changes rounding, not what is learned: dev losses within a few percent of each other
    assert results["bf16"].best_dev_loss == pytest.approx(results["fp32"].best_dev_loss, rel=0.05)
    weights = load_checkpoint(results["bf16"].model_dir).model.state_dict()
    assert {t.dtype for t in weights.values()} == {torch.float32}
