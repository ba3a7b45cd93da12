"""One eval run, several languages: each scored on its own beside the whole, and --limit spreads per spec."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.settings import load_settings
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab
from training.evaluate import evaluate_model
from training.sources import Pair, spread

EN = [Pair((("customer", f"book a table for {i}"),), f"A table for {i} is booked.", "en", conversation=f"e:{i}")
      for i in range(6)]
ZH = [Pair((("customer", f"我要订{i}个人的桌子"),), f"好的，{i}个人。", "zh", conversation=f"z:{i}") for i in range(4)]


def _checkpoint(directory: Path) -> Path:
    torch.manual_seed(0)
    vocab = Vocab([*SPECIAL_TOKENS, "a", "table", "for", "is", "booked", ".", "好的", "，", "个", "人", "。"])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    return save_checkpoint(directory, model, vocab, decoding={"num_beams": 2, "max_new_tokens": 6},
                           extra={"train_config": {"max_turns": 3, "max_src_tokens": 60}})


def test_each_language_is_scored_on_its_own_and_the_whole_run_beside_them(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    report = evaluate_model(_checkpoint(tmp_path / "m"), EN + ZH, settings, progress=False)
    by_language = report.metrics["by_language"]
    assert set(by_language) == {"en", "zh"}
    assert (by_language["en"]["n"], by_language["zh"]["n"], report.metrics["n"]) == (6, 4, 10)
    alone = evaluate_model(_checkpoint(tmp_path / "m2"), ZH, settings, progress=False).metrics
    assert "by_language" not in alone
    for key in ("bleu", "chrf", "perplexity", "entity_copy_recall"):
        assert by_language["zh"][key] == pytest.approx(alone[key]), key  # same as a Chinese-only run


def test_spread_takes_pairs_from_the_whole_list() -> None:
    assert [p.conversation for p in spread(EN, 3)] == ["e:0", "e:2", "e:4"]
    assert spread(EN, 100) == EN


@pytest.mark.slow
def test_eval_cli_reports_both_languages_in_one_run(tmp_path: Path) -> None:
    rows = lambda pairs: "".join(json.dumps({"id": p.conversation, "language": p.language, "messages": [
        {"role": "customer", "text": p.context[0][1]}, {"role": "agent", "text": p.reply}]}, ensure_ascii=False) + "\n"
        for p in pairs)
    (tmp_path / "en.jsonl").write_text(rows(EN), encoding="utf-8")
    (tmp_path / "zh.jsonl").write_text(rows(ZH), encoding="utf-8")
    model = _checkpoint(tmp_path / "m")
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    args = ["chatbot", "eval", "--model", str(model), "--data", f"jsonl:{tmp_path / 'en.jsonl'}",
            "--data", f"jsonl:{tmp_path / 'zh.jsonl'}", "--limit", "3"]
    done = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert (metrics["n"], metrics["by_language"]["en"]["n"], metrics["by_language"]["zh"]["n"]) == (6, 3, 3)
    table = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["all", "en", "zh"]
    assert any(line.split()[0] == "chrf" and len(line.split()) == 4 for line in lines)
