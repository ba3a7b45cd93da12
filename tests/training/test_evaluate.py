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
