"""The learning loop end to end (`benchmarks/learning.py` at K = 1 on a tiny model): agents teach one fact
through the REST API of a real `chatbot serve`, one `chatbot nightly` runs, and the served model now gives the
fact to phrasings nobody taught while unrelated questions keep their old answers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from chatbot.text.taught import load_taught
from training.sources import load_pairs, split_dev
from training.train import TrainConfig, train

from .conftest import make_conversations, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("learning_benchmark", ROOT / "benchmarks" / "learning.py")
learning = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = learning  # dataclasses look their module up while the class is made
spec.loader.exec_module(learning)  # type: ignore[union-attr]

NOT_YET = "let me check that for you ."


def _base_data(path: Path) -> Path:
    """Flights, plus the questions of the test: taught phrasings and unrelated ones get a non-answer (the base
    does not know the fact), the unseen phrasings appear nowhere. One notice carries the answer's words, so the
    tiny vocabulary can write it; which question it answers is what the agents teach."""
    fact = learning.FACTS[0]
    rows = make_conversations(150, seed=11)
    for i, question in enumerate((*fact.taught, *learning.UNRELATED)):
        rows.append({"id": f"q{i}", "language": "en", "messages": [
            {"role": "customer", "text": question}, {"role": "agent", "text": NOT_YET}]})
    rows.append({"id": "notice", "language": "en", "messages": [
        {"role": "customer", "text": "read me the notice"}, {"role": "agent", "text": fact.answer}]})
    return write_jsonl(path, rows)


@pytest.mark.slow
def test_one_taught_fact_is_learned_on_unseen_phrasings_without_leaking(tmp_path: Path) -> None:
    data = _base_data(tmp_path / "base.jsonl")
    cfg = TrainConfig(size="tiny", epochs=30, max_tokens=2000, max_batch_size=32, lr=0.01, warmup_steps=10,
                      eval_every=100, vocab_min_freq=1, max_tgt_tokens=24, dev_fraction=0.05)
    base = train(*split_dev(load_pairs([f"jsonl:{data}"], 6), 0.05), tmp_path / "base", cfg, progress=False,
                 decoding={"num_beams": 2, "max_new_tokens": 24})
    dev = write_jsonl(tmp_path / "dev.jsonl", make_conversations(30, seed=12))
    result = learning.run_k(1, base.model_dir, tmp_path / "work", replay_data=[f"jsonl:{data}"],
                            eval_data=[f"jsonl:{dev}"], eval_limit=60, taught=8, match=60.0,
                            extra_env={"CHATBOT_NUM_BEAMS": "2", "CHATBOT_MAX_NEW_TOKENS": "24",
                                       "CHATBOT_QUANTIZE_INT8": "false", "CHATBOT_DECODE_PROCESS": "false",
                                       # this 30k-parameter model with ~200 replay pairs: the product's
                                       # defaults (tuned on the shipped model) make it answer unrelated
                                       # questions with the fact; it learns without leaking at these
                                       "CHATBOT_NIGHTLY_STEPS": "200", "CHATBOT_NIGHTLY_LR": "1e-3",
                                       "CHATBOT_NIGHTLY_CORRECTION_REPEAT": "3"})
    assert result.unseen_before == 0.0  # the base never gave the fact
    assert result.decision == "promoted", (result.reasons, result.replies_after)
    assert result.unseen_after == 1.0, result.replies_after
    # The benchmark's target on the shipped model is none; this 30k-parameter model, trained on 200 pairs, may
    # confuse one of the twelve (it has turned "Hello, how are you today?" into "let are open from 9 am ...").
    assert result.unrelated_after <= 1 / 12, {q: result.replies_after[q] for q in learning.UNRELATED}
    assert result.eval_chrf_after >= result.eval_chrf_before - 1.0
    report = json.loads(next((tmp_path / "work" / "k1" / "nightly").glob("job-*/report.json")).read_text())
    assert report["data"]["heldout_corrections"] == 2 and report["data"]["corrections_trained"] == 6
    assert report["data"]["replay_pairs"] > 0
    corrections = next(c for c in report["checks"] if c["suite"] == "corrections")
    assert corrections["passed"] and corrections["interval"][0] > 0
    leak = next(c for c in report["checks"] if c["metric"] == "taught_answer_share")  # the gate looked for it
    assert leak["passed"] and leak["n"] == report["data"]["extra_eval_pairs"] + report["data"]["heldout_pairs"]
    # The candidate keeps what it was taught beside its weights, the gate's held-out corrections left out
    taught = load_taught(Path(report["training"]["model_dir"]))
    held = {row["customer"] for row in report["metrics"]["candidate"]["corrections"]}
    assert taught is not None and report["data"]["taught_answers"] == len(taught) == 6 and len(held) == 2
    assert {e.question for e in taught.entries} == set(learning.FACTS[0].taught) - held
    assert {e.answer for e in taught.entries} == {learning.FACTS[0].answer}
    assert all(isinstance(e.conversation_id, int) for e in taught.entries)
