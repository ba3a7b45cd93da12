"""Train -> eval -> register -> gate -> promote end to end on tiny data, and a gate that rejects."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from chatbot.settings import load_settings
from chatbot.store import registry
from chatbot.store.manager import ConversationStore
from training.evaluate import evaluate_model
from training.gate import Margins, decide, run_gate
from training.sources import load_pairs, split_dev
from training.train import train

from .conftest import make_conversations, write_jsonl

EVAL_KEYS = {"bleu", "chrf", "rouge_l", "meteor", "distinct_1", "distinct_2", "perplexity", "entity_copy_recall",
             "n", "avg_len"}


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path / "data", num_beams=2, max_new_tokens=16, torch_threads=1)


@pytest.mark.slow
def test_train_eval_register_gate_promote_and_reject(tmp_path, tiny_jsonl, tiny_config, settings):
    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    train_pairs, dev_pairs = split_dev(pairs, 0.1)
    good = train(train_pairs, dev_pairs, tmp_path / "good", tiny_config.model_copy(update={"epochs": 8}),
                 progress=False, decoding={"num_beams": 2, "max_new_tokens": 16})
    eval_pairs = load_pairs([f"jsonl:{write_jsonl(tmp_path / 'dev.jsonl', make_conversations(20, seed=7))}"], 6)

    report = evaluate_model(good.model_dir, eval_pairs, settings, progress=False)
    assert set(report.metrics) == EVAL_KEYS
    assert report.metrics["n"] == len(eval_pairs) == len(report.rows)
    assert report.metrics["chrf"] > 40 and report.metrics["entity_copy_recall"] > 0.5
    report.write_csv(tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(eval_pairs) and rows[0]["reference"] == eval_pairs[0].reply

    # a deliberately worse model: one step of training
    bad = train(train_pairs, dev_pairs, tmp_path / "bad", tiny_config.model_copy(update={"epochs": 1, "max_batch_size": 200, "max_tokens": 100000}),
                progress=False, decoding={"num_beams": 2, "max_new_tokens": 16})

    with ConversationStore(settings) as store:
        with store.transaction() as s:
            good_id = registry.register(s, "good", str(good.model_dir)).id
            bad_id = registry.register(s, "bad", str(bad.model_dir)).id
        first = run_gate(good.model_dir, None, eval_pairs, eval_pairs[:5], settings)
        assert first.accepted, first.reasons  # nothing active yet: a complete evaluation suffices
        with store.transaction() as s:
            registry.promote(s, good_id)
        worse = run_gate(bad.model_dir, good.model_dir, eval_pairs, eval_pairs[:5], settings)
        assert not worse.accepted
        assert any(r.startswith("chrf") for r in worse.reasons) and any(r.startswith("perplexity") for r in worse.reasons)
        with store.transaction() as s:
            registry.reject(s, bad_id, worse.reasons)
        same = run_gate(good.model_dir, good.model_dir, eval_pairs, eval_pairs[:5], settings)
        assert same.accepted  # equal is "not worse"
        with store.transaction(read_only=True) as s:
            assert registry.active_version(s).id == good_id
            assert registry.get_version(s, bad_id).status == "rejected"


def test_gate_rules():
    active = {"chrf": 50.0, "perplexity": 10.0, "entity_copy_recall": 0.8, "regression_chrf": 60.0}
    m = Margins(chrf=1.0, perplexity=0.05, entity_copy_recall=0.02, regression_chrf=2.0)
    assert decide(dict(active), active, m).accepted
    within = {"chrf": 49.5, "perplexity": 10.4, "entity_copy_recall": 0.79, "regression_chrf": 58.5}
    assert decide(within, active, m).accepted
    worse = {"chrf": 48.0, "perplexity": 11.0, "entity_copy_recall": 0.7, "regression_chrf": 50.0}
    d = decide(worse, active, m)
    assert not d.accepted and len(d.reasons) == 4
    assert decide({"chrf": None, "perplexity": None}, None, m).reasons == [
        "candidate has no chrf (empty or failed evaluation)", "candidate has no perplexity (empty or failed evaluation)"]


def test_cli_eval_json_and_csv(tmp_path, tiny_jsonl, tiny_config):
    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    result = train(*split_dev(pairs, 0.1), tmp_path / "run", tiny_config, progress=False,
                   decoding={"num_beams": 2, "max_new_tokens": 12})
    env = {**os.environ, "CHATBOT_DATA_DIR": str(tmp_path / "data"), "CHATBOT_TORCH_THREADS": "1"}
    proc = subprocess.run(["chatbot", "eval", "--model", str(result.model_dir), "--data", f"jsonl:{tiny_jsonl}",
                           "--limit", "10", "--json", "--out", str(tmp_path / "e.csv")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert set(metrics) == EVAL_KEYS and metrics["n"] == 10
    assert (tmp_path / "e.csv").exists()
    missing = subprocess.run(["chatbot", "eval", "--model", str(tmp_path / "nope"), "--data", f"jsonl:{tiny_jsonl}"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "checkpoint directory not found" in missing.stderr


def test_train_from_db_registers_with_its_export_manifest_and_forget_finds_it(tmp_path, tiny_config):
    """`chatbot train --data db` keeps the export manifest in the checkpoint; `models register` carries it to
    the registry, so erasing a customer names the model trained on their conversations."""
    conversations = make_conversations(40, seed=3)
    for i, c in enumerate(conversations):
        c["customer_id"] = f"cust-{i % 4}"
    data = write_jsonl(tmp_path / "logged.jsonl", conversations)
    (tmp_path / "train.toml").write_text(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in tiny_config.model_dump().items()
                  if isinstance(v, (int, float, str)) and not isinstance(v, bool)) + "\n")
    env = {**os.environ, "CHATBOT_DATA_DIR": str(tmp_path / "data"), "CHATBOT_TORCH_THREADS": "1"}

    def chatbot(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(["chatbot", *args], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc

    chatbot("import", "jsonl", str(data), "--json")
    chatbot("train", "--data", "db", "--out", str(tmp_path / "run"), "--config", str(tmp_path / "train.toml"))
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["manifest"]["data"] == ["db"] and config["manifest"]["export"]["conversations"] == 40
    version = json.loads(chatbot("models", "register", str(tmp_path / "run" / "model"), "--name", "from-db",
                                 "--json").stdout)
    assert version["status"] == "candidate"
    again = subprocess.run(["chatbot", "models", "register", str(tmp_path / "run" / "model"), "--name", "from-db"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "already registered" in again.stderr
    erased = json.loads(chatbot("forget", "--customer", "jsonl:cust-1", "--json").stdout)
    assert [v["name"] for v in erased["model_versions"]] == ["from-db"]
    assert erased["conversations"] == 10
