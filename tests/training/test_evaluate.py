"""Entity-copy recall counts only what the model was shown: the turns inside its context window."""

from __future__ import annotations

import torch

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.settings import load_settings
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab
from training.evaluate import evaluate_model, visible_context
from training.sources import Pair

PAIR = Pair(context=(("customer", "I fly to Denver"), ("bot", "When do you leave?"), ("customer", "tomorrow")),
            reply="Booking a flight to Denver tomorrow.", slot_values=("Denver", "tomorrow"))


def _checkpoint(directory, max_turns: int):
    torch.manual_seed(0)
    vocab = Vocab([*SPECIAL_TOKENS, "i", "fly", "to", "denver", "when", "do", "you", "leave", "?", "tomorrow"])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    return save_checkpoint(directory, model, vocab, decoding={"num_beams": 2, "max_new_tokens": 4},
                           extra={"train_config": {"max_turns": max_turns, "max_src_tokens": 200}})


def test_visible_context_is_the_models_last_turns():
    assert visible_context(PAIR, 2) == "When do you leave?\ntomorrow"
    assert visible_context(PAIR, 6) == "I fly to Denver\nWhen do you leave?\ntomorrow"


def test_values_outside_the_models_window_are_not_counted_as_copyable(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    for max_turns, copyable in ((2, 1), (3, 2)):  # "Denver" is only in the third-last turn
        report = evaluate_model(_checkpoint(tmp_path / f"m{max_turns}", max_turns), [PAIR], settings, progress=False)
        [row] = report.rows
        assert row["entities_copyable"] == copyable, max_turns
        assert row["context"] == visible_context(PAIR, max_turns)


def test_mixing_rate_judges_each_pair_in_its_own_language(tmp_path):
    """A model that always writes "denver": that mixes scripts in the Chinese pair only, and not at all once
    the decoding constraint is on."""
    from training.metrics import mixes_scripts

    torch.manual_seed(0)
    vocab = Vocab([*SPECIAL_TOKENS, "i", "fly", "to", "denver", "我", "飞", "去", "北京"])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    with torch.no_grad():
        model.out_bias[vocab.index("denver")] = 30.0
        model.copy_gate.bias.fill_(30.0)  # generate, never copy
    pairs = [Pair(context=(("customer", "i fly to denver"),), reply="to denver", language="en", conversation="a"),
             Pair(context=(("customer", "我 飞 去 北京"),), reply="去 北京", language="zh", conversation="b")]
    directory = save_checkpoint(tmp_path / "m", model, vocab, extra={"train_config": {"max_turns": 2}})
    reports = {}
    for on in (False, True):  # the serving setting (CHATBOT_SCRIPT_CONSTRAINT) decides, as in production
        settings = load_settings(data_dir=tmp_path / "data", num_beams=2, num_return_sequences=2, max_new_tokens=3,
                                 script_constraint=on)
        reports[on] = evaluate_model(directory, pairs, settings, progress=False)
    off = reports[False]
    assert [("denver" in row["hypothesis"]) for row in off.rows] == [True, True]
    assert [mixes_scripts(r["hypothesis"], r["context"], r["language"]) for r in off.rows] == [False, True]
    assert off.metrics["mixing_rate"] == 0.5
    assert reports[True].metrics["mixing_rate"] == 0.0
    assert "denver" not in reports[True].rows[1]["hypothesis"]
