"""What a nightly trains on and what its gate holds out: pure functions, no models."""

from __future__ import annotations

from collections import Counter

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.settings import load_settings
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab
from training.nightly import NightlyError, _window, held_out_corrections, replay_corpora, replay_sample, replay_size
from training.sources import Pair, is_dev, load_pairs


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


def test_each_taught_answer_keeps_most_of_its_phrasings_for_training():
    answers = {"hours": 8, "refunds": 8, "gift cards": 8, "password": 3}
    pairs = [_pair(f"db:{a}:{i}", f"question {i} about {a}", f"  About {a}. ", "corrected")
             for a, n in answers.items() for i in range(n)]
    pairs += [_pair(f"db:edit:{i}", f"question {i}", f"a one-off edit {i}", "corrected") for i in range(8)]
    held = Counter("one-off" if p.reply.startswith("a one-off") else p.reply.strip()
                   for p in held_out_corrections(pairs, 0.25))
    # every 4th phrasing of each answer, not every 4th in one hash order that can take 5 of one answer's 8;
    # an answer taught 3 times is all trained on; one-off edits share one order and give the gate 2 of 8
    assert held == {"About hours.": 2, "About refunds.": 2, "About gift cards.": 2, "one-off": 2}
    first_only = [_pair(f"db:{i}", "q", "Same answer", "corrected", 2) for i in range(4)]
    first_only += [_pair(f"db:{i}", "q2", f"later {i}", "corrected", 4) for i in range(4)]  # grouped by the first
    assert len({p.conversation for p in held_out_corrections(first_only, 0.25)}) == 1


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


def test_the_replay_fills_a_fine_tunes_steps_without_rehearsing_a_pair_twice(tmp_path, tiny_config):
    from training.train import train

    settings = load_settings(data_dir=tmp_path, nightly_replay_ratio=4, nightly_replay_min=10)
    cfg = tiny_config.model_copy(update={"epochs": 1000, "max_steps": 30, "eval_every": 1000})
    assert replay_size(50, settings, cfg) == 30 * 16 - 50  # the step budget, not 4 x 50
    assert replay_size(500, settings, cfg) == 2000  # the ratio when it asks for more
    assert replay_size(1, load_settings(data_dir=tmp_path, nightly_replay_min=5000), cfg) == 5000
    assert replay_size(10, settings, cfg.model_copy(update={"max_steps": None})) == 40  # no budget: the ratio

    new = [_pair(f"db:n{i}", f"new question {i}", "new answer", "corrected") for i in range(20)]
    corpus = [_pair(f"sgd:{i}", f"corpus question {i}", f"reply {i}") for i in range(2000)]
    replay = replay_sample([], corpus, replay_size(len(new), settings, cfg), seed=1)
    result = train(new + replay, [], tmp_path / "run", cfg, progress=False)
    assert result.steps == 30 and result.epochs_done <= 1.0  # every step drew pairs it had not trained on


def test_the_replay_draws_from_a_recipes_training_mix_by_its_weights(tmp_path, tiny_jsonl):
    import pytest

    from .conftest import make_conversations, write_jsonl

    small_talk = write_jsonl(tmp_path / "small.jsonl", make_conversations(10, seed=5))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'dev_fraction = 0.2\n[[data]]\nspec = "jsonl:{tiny_jsonl}"\n'
                      f'[[data]]\nspec = "jsonl:{small_talk}"\nweight = 3.0\n')
    settings = load_settings(data_dir=tmp_path, nightly_replay_recipe=recipe, nightly_replay_data=[f"jsonl:{tiny_jsonl}"])
    pairs = replay_corpora(settings, 6)
    by_source = Counter(p.conversation.split("-")[0] for p in pairs)  # conversation ids c<seed>-<i>
    train_part = lambda path: [p for p in load_pairs([f"jsonl:{path}"], 6) if not is_dev(p, 0.2)]
    assert by_source["jsonl:c1"] == 120 + len(train_part(tiny_jsonl))  # the spec whole, the recipe's train part
    assert by_source["jsonl:c5"] == 3 * len(train_part(small_talk)) > 0  # weighted up three times
    recipe.write_text("lr = 0.001\n")
    with pytest.raises(NightlyError, match="no \\[\\[data\\]\\] tables"):
        replay_corpora(settings, 6)


def test_a_fine_tune_keeps_its_base_models_context_window(tmp_path):
    vocab = Vocab([*SPECIAL_TOKENS, "hi"])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=8, hidden=16, enc_layers=1, dropout=0.0))
    base = save_checkpoint(tmp_path / "m", model, vocab, extra={"train_config": {"max_turns": 3, "max_src_tokens": 96}})
    settings = load_settings(data_dir=tmp_path / "data", context_turns=6, context_max_tokens=200)
    assert _window(base, settings) == {"max_turns": 3, "max_src_tokens": 96}
    assert _window(None, settings) == {"max_turns": 6, "max_src_tokens": 200}  # --full: the serving settings
