"""Train -> eval -> register -> gate -> promote end to end on tiny data, and a gate that rejects."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import pytest

from chatbot.settings import load_settings
from chatbot.store import registry
from chatbot.store.manager import ConversationStore
from training.evaluate import evaluate_model
from training.gate import Margins, decide, paired_bootstrap, run_gate, taught_flags
from training.sources import load_pairs, split_dev
from training.train import train

from .conftest import make_conversations, write_jsonl

EVAL_KEYS = {"bleu", "chrf", "rouge_l", "meteor", "distinct_1", "distinct_2", "perplexity", "entity_copy_recall",
             "n", "avg_len", "mixing_rate", "decoding"}


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
        first = run_gate(good.model_dir, None, eval_pairs, [], settings)
        assert first.accepted, first.reasons  # nothing active yet: a complete evaluation suffices
        with store.transaction() as s:
            registry.promote(s, good_id)
        worse = run_gate(bad.model_dir, good.model_dir, eval_pairs, [], settings)
        assert worse.verdict == "reject"
        assert any(r.startswith("chrf") for r in worse.reasons) and any(r.startswith("perplexity") for r in worse.reasons)
        chrf_check = next(c for c in worse.checks if c["metric"] == "chrf")
        assert chrf_check["interval"][1] < 0 and chrf_check["n"] == len(eval_pairs)  # an interval, wholly below 0
        with store.transaction() as s:
            registry.reject(s, bad_id, worse.reasons)
        same = run_gate(good.model_dir, good.model_dir, eval_pairs, [], settings)
        assert same.accepted  # equal is "not worse"
        # the good model is closer to what "agents wrote" (the references) than the bad one: it learned them
        learned = run_gate(good.model_dir, bad.model_dir, eval_pairs, eval_pairs[:6], settings, corrections_trained=6)
        corrections = next(c for c in learned.checks if c["suite"] == "corrections")
        assert corrections["passed"] and corrections["interval"][0] > 0 and corrections["n"] == 6
        assert len(learned.candidate["corrections"]) == 6
        too_few = run_gate(good.model_dir, bad.model_dir, eval_pairs, eval_pairs[:1], settings, corrections_trained=4)
        assert too_few.verdict == "not enough evidence" and not too_few.accepted
        assert too_few.reasons == ["not enough evidence: 1 held-out agent correction(s), the gate needs 2 to tell "
                                   "whether the candidate learned them"]
        with store.transaction(read_only=True) as s:
            assert registry.active_version(s).id == good_id
            assert registry.get_version(s, bad_id).status == "rejected"


def _scores(chrf: float, sentence: list[float], nll: list[float], corrections: list[float] | None = None,
            **more: float) -> dict:
    return {"chrf": chrf, "perplexity": 10.0, "entity_copy_recall": 0.8, "sentence_chrf": sentence,
            "pair_nll": [(n, 10) for n in nll], **({"correction_chrf": corrections} if corrections is not None else {}),
            **more}


def test_paired_bootstrap_interval_is_seeded_and_covers_the_mean():
    new, old = [50 + (i % 7) for i in range(200)], [49 + (i % 5) for i in range(200)]
    mean, low, high = paired_bootstrap(new, old)
    assert low < mean < high and paired_bootstrap(new, old) == (mean, low, high)
    assert mean == pytest.approx(sum(a - b for a, b in zip(new, old)) / 200)
    wide = paired_bootstrap([0, 100] * 10, [50, 50] * 10)
    assert wide[1] < 0 < wide[2]  # noise, not a difference
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [])


def test_gate_rules():
    m = Margins(chrf=1.0, perplexity=0.05, entity_copy_recall=0.02, min_corrections=3, resamples=300)
    base = [40.0 + (i * 37) % 20 for i in range(100)]
    active = _scores(50.0, base, [20.0] * 100, corrections=[30.0, 35.0, 28.0, 31.0])
    assert decide(_scores(50.0, base, [20.0] * 100, corrections=[60.0, 70.0, 55.0, 64.0]), active, m).accepted
    # a drop within the margin, or one the interval calls noise, is "not worse"
    assert decide(_scores(49.5, [b - 0.5 for b in base], [20.1] * 100, corrections=[40.0] * 4), active, m).accepted
    noisy = [b + (30 if i % 2 else -32) for i, b in enumerate(base)]
    assert decide(_scores(49.0, noisy, [20.0] * 100, corrections=[40.0] * 4), active, m).accepted
    worse = decide(_scores(45.0, [b - 5 for b in base], [23.0] * 100, corrections=[29.0, 30.0, 27.0, 30.0],
                           entity_copy_recall=0.7), active, m)
    assert worse.verdict == "reject" and [r.split()[0] for r in worse.reasons] == [
        "chrf:", "perplexity", "entity_copy_recall", "not"]
    assert all(c.get("interval") for c in worse.checks if c["metric"] in ("chrf", "perplexity"))
    few = decide(_scores(50.0, base, [20.0] * 100, corrections=[90.0, 90.0]), active | {"correction_chrf": [1.0, 2.0]}, m)
    assert few.verdict == "not enough evidence" and "2 held-out" in few.reasons[0]
    untaught = decide(_scores(50.0, base, [20.0] * 100), _scores(50.0, base, [20.0] * 100), m)
    assert untaught.accepted and any(c.get("skipped") for c in untaught.checks)  # nothing to learn, nothing judged
    taught_unheld = decide(_scores(50.0, base, [20.0] * 100, corrections_trained=5), active, m)
    assert taught_unheld.verdict == "not enough evidence"
    assert decide({"chrf": None, "perplexity": None}, None, m).reasons == [
        "candidate has no chrf (empty or failed evaluation)", "candidate has no perplexity (empty or failed evaluation)"]
    assert "sentence_chrf" not in worse.candidate and "pair_nll" not in (worse.active or {})  # registry gets summaries


def test_entity_copy_recall_is_judged_beyond_noise():
    m = Margins(chrf=1.0, perplexity=0.05, entity_copy_recall=0.02, min_corrections=2, resamples=300)
    base = [40.0 + (i * 37) % 20 for i in range(300)]
    # 41 copyable entities in 300 replies: 25 copied by the active model, 24 by the candidate (0.610 vs 0.585)
    entities = [(1, 1) if i < 25 else (0, 1) if i < 41 else (0, 0) for i in range(300)]
    one_less = [(0, 1) if i == 3 else e for i, e in enumerate(entities)]
    active = _scores(50.0, base, [20.0] * 300, corrections=[30.0, 35.0], entity_copy_recall=25 / 41,
                     pair_entities=entities)
    candidate = _scores(50.0, base, [20.0] * 300, corrections=[90.0, 95.0], entity_copy_recall=24 / 41,
                        pair_entities=one_less)
    decision = decide(candidate, active, m)
    check = next(c for c in decision.checks if c["metric"] == "entity_copy_recall")
    assert decision.accepted and check["passed"] and check["n"] == 41  # one missed name is noise
    assert check["mean_difference"] == pytest.approx(-1 / 41)
    assert check["interval"][0] < check["mean_difference"] < check["interval"][1]
    half = [(0, 1) if 5 <= i < 25 else e for i, e in enumerate(entities)]  # 5 of 41 copied
    worse = decide(candidate | {"entity_copy_recall": 5 / 41, "pair_entities": half}, active, m)
    assert worse.verdict == "reject" and worse.reasons[0].startswith("entity_copy_recall 0.122 vs 0.610 over 41")
    assert "pair_entities" not in worse.candidate


def test_gate_rejects_a_candidate_that_gives_taught_answers_to_general_questions():
    hours = "We are open from 9 am to 5 pm, Monday to Friday."
    refs = [f"Your table at place {i} is booked." for i in range(100)] + [hours]
    active_replies = [f"Your table at place {i} is booked." for i in range(100)] + [hours]
    leaky_replies = [hours if i % 10 == 0 else r for i, r in enumerate(active_replies)]
    assert taught_flags(active_replies, refs, [hours, hours]) == [0.0] * 101  # the last one was asked for
    leaky = taught_flags(leaky_replies, refs, [hours])
    assert sum(leaky) == 10 and leaky[-1] == 0.0
    assert sum(taught_flags(["we are open from 9 am to 5 pm monday to friday"], ["hello"], [hours])) == 1.0

    m = Margins(chrf=1.0, perplexity=0.05, entity_copy_recall=0.02, min_corrections=2, resamples=300)
    base = [40.0 + (i * 37) % 20 for i in range(101)]
    active = _scores(50.0, base, [20.0] * 101, corrections=[30.0, 35.0], taught_flags=[0.0] * 101)
    candidate = _scores(50.0, base, [20.0] * 101, corrections=[90.0, 95.0], taught_flags=leaky)
    decision = decide(candidate, active, m)
    assert decision.verdict == "reject" and decision.reasons[0].startswith("gives taught answers")
    check = next(c for c in decision.checks if c["metric"] == "taught_answer_share")
    assert check["candidate"] == pytest.approx(10 / 101) and check["interval"][0] > 0
    assert "taught_flags" not in decision.candidate
    one = [1.0 if i == 5 else 0.0 for i in range(101)]  # one reply in a hundred: within the margin
    assert decide(_scores(50.0, base, [20.0] * 101, corrections=[90.0, 95.0], taught_flags=one), active, m).accepted


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
