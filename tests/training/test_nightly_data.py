"""What a nightly trains on and what its gate holds out: pure functions, no models."""

from __future__ import annotations

from collections import Counter

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.settings import load_settings
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab
from training.nightly import _window, held_out_corrections, replay_sample
from training.sources import Pair


def _pair(conversation: str, question: str, answer: str, kind: str = "agent", seq: int = 2) -> Pair:
    return Pair((("customer", question),), answer, conversation=conversation, meta={"kind": kind, "seq": seq})


def test_every_kth_corrected_conversation_is_held_out_whole_and_once():
    pairs = [_pair(f"db:{i}", f"question {i}", "fixed", "corrected", seq) for i in range(12) for seq in (2, 4)]
    pairs += pairs  # the export repeats a correction by its weight
    pairs += [_pair("db:x", "question x", "ok", "approved")]
    held = held_out_corrections(pairs, 0.25)
    conversations = Counter(p.conversation for p in held)
    assert len(conversations) == 3  # 12 corrected conversations, every 4th
    assert set(conversations.values()) == {2}  # the whole conversation goes, each correction once
    assert all(p.meta["kind"] == "corrected" for p in held)
    assert held_out_corrections(pairs, 0.25) == held  # the same split every night
    assert held_out_corrections([_pair("db:1", "q", "a", "corrected")], 0.25) == []  # 1 of 1: nothing to hold


def test_replay_is_a_fixed_sample_without_answers_agents_corrected():
    earlier = [_pair(f"db:{i}", f"Question {i}?", "old") for i in range(50)]
    corpus = [_pair(f"sgd:{i}", f"corpus {i}", "reply") for i in range(50)]
    corrected = [_pair("db:new", "  question 3? ", "new answer", "corrected")]
    sample = replay_sample(earlier, corpus, 60, seed=7, corrected=corrected)
    assert len(sample) == 60 and len(set(sample)) == 60
    assert all(p.context[0][1] != "Question 3?" for p in sample)  # superseded by the correction (case, spaces)
    assert replay_sample(earlier, corpus, 60, seed=7, corrected=corrected) == sample
    assert len(replay_sample(earlier, corpus, 500, seed=7)) == 100  # as many as there are
    assert replay_sample(earlier, [], 0, seed=7) == [] and replay_sample([], [], 10, seed=7) == []


def test_a_fine_tune_keeps_its_base_models_context_window(tmp_path):
    vocab = Vocab([*SPECIAL_TOKENS, "hi"])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=8, hidden=16, enc_layers=1, dropout=0.0))
    base = save_checkpoint(tmp_path / "m", model, vocab, extra={"train_config": {"max_turns": 3, "max_src_tokens": 96}})
    settings = load_settings(data_dir=tmp_path / "data", context_turns=6, context_max_tokens=200)
    assert _window(base, settings) == {"max_turns": 3, "max_src_tokens": 96}
    assert _window(None, settings) == {"max_turns": 6, "max_src_tokens": 200}  # --full: the serving settings
