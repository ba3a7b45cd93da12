"""A fine-tune grows its base model's vocabulary with the words its new data uses (training/vocab_growth.py)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from chatbot.model.batch import collate
from chatbot.model.checkpoint import load_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.service.generator import ReplyGenerator
from chatbot.text.vocab import SPECIAL_TOKENS, UNK_ID, Vocab
from training.dataset import encode_pairs
from training.sources import Pair, load_pairs
from training.train import train
from training.vocab_growth import answer_word_starts, first_new_word, grow_checkpoint, grow_vocabulary, new_words

WORDS = ["i", "want", "a", "flight", "to", "paris", "ok", "."]


def _pair(conversation: str, question: str, answer: str) -> Pair:
    return Pair((("customer", question),), answer, conversation=conversation)


def test_new_words_are_the_missing_ones_enough_conversations_use():
    vocab = Vocab([*SPECIAL_TOKENS, *WORDS])
    pairs = [_pair("c1", "a refund to paris", "ok . refund"), _pair("c1", "refund refund", "ok"),  # one customer
             _pair("c2", "a refund please", "ok ."), _pair("c3", "gift please", "gift ."),
             _pair("c4", "gift card", "ok"), _pair("c5", "please", "zebra")]
    assert new_words(pairs, vocab, min_conversations=2, limit=10) == ["please", "gift", "refund"]
    assert new_words(pairs, vocab, min_conversations=3, limit=10) == ["please"]
    assert new_words(pairs, vocab, min_conversations=1, limit=2) == ["please", "gift"]
    assert new_words(pairs, Vocab([*SPECIAL_TOKENS, *WORDS, "please", "gift", "refund", "card", "zebra"]),
                     min_conversations=1, limit=10) == []


def test_the_grown_model_gives_every_old_word_the_probability_it_had():
    torch.manual_seed(0)
    vocab = Vocab([*SPECIAL_TOKENS, *WORDS])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=24, copy=True)).eval()
    with torch.no_grad():
        model.out_bias.normal_()  # a trained model's biases are not all zero
    grown, grown_vocab = grow_vocabulary(model, vocab, ["refund", "gift"])
    assert grown_vocab.tokens[-2:] == ["refund", "gift"] and grown.config.vocab_size == len(vocab) + 2

    pairs = [_pair("c", "i want a flight to paris", "ok , a flight to paris ."), _pair("d", "to paris", "ok .")]
    batch = collate(encode_pairs(pairs, vocab, 6, 50, 20), vocab)
    old = model.sequence_log_probs(batch)
    new = grown.sequence_log_probs(collate(encode_pairs(pairs, grown_vocab, 6, 50, 20), grown_vocab))
    unk = batch.tgt_out == UNK_ID  # "," is unknown to both
    assert int(unk.sum()) == 1
    assert torch.allclose(old[~unk], new[~unk], atol=1e-5)  # every other word scores as before
    assert torch.allclose(new[unk], old[unk] - math.log(3), atol=1e-5)  # <unk> shares with the 2 new words

    hidden = torch.randn(3, 24)
    with torch.no_grad():
        p_old, p_new = model._logits(hidden).softmax(-1), grown._logits(hidden).softmax(-1)
    old_words = torch.arange(len(vocab)) != UNK_ID
    assert torch.allclose(p_old[:, old_words], p_new[:, : len(vocab)][:, old_words], atol=1e-6)
    assert torch.allclose(p_old[:, UNK_ID], p_new[:, [UNK_ID, -2, -1]].sum(-1), atol=1e-6)  # <unk>'s share
    assert math.isclose(float(p_new[0, -1]), float(p_new[0, UNK_ID]), rel_tol=1e-5)


QUESTION_WORDS = ["can", "i", "pay", "by", "card", "how", "do", "you", "when", "open", "close", "?", "we",
                  "take", "is", "fine", "at", "nine", "five", "cards", "get", "hello"]


def test_a_word_only_replies_use_starts_with_the_meaning_of_the_questions_it_answered():
    torch.manual_seed(0)
    vocab = Vocab([*SPECIAL_TOKENS, *QUESTION_WORDS])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=24)).eval()
    embedding = model.embedding.weight.detach()
    pairs = [_pair("c1", "can i pay by card ?", "we take visa ."), _pair("c2", "how do i pay ?", "visa is fine ."),
             _pair("c3", "when do you open ?", "at nine ."), _pair("c4", "when do you close ?", "at five ."),
             _pair("c5", "can i get gift cards ?", "gift cards , visa : fine ."), _pair("c6", "gift ?", "gift .")]
    background = [_pair(f"b{i}", "hello , can i do it ?", "ok") for i in range(20)]  # earlier data: "can" is common
    words = new_words(pairs, vocab, min_conversations=2, limit=10)
    assert set(words) == {"visa", "gift", "."}

    starts = answer_word_starts(pairs, vocab, words, embedding, background)
    assert set(starts) == {"visa", "."}  # a customer wrote "gift": it learns from the input side as it is

    def closeness(word: str) -> float:
        return float(torch.cosine_similarity(starts["visa"], embedding[vocab.index(word)], dim=0))

    assert closeness("pay") > 0.5  # in both payment questions, and rare
    assert max(closeness(w) for w in ("when", "open", "close", "you")) < closeness("pay")  # other questions' words
    assert closeness("can") < closeness("pay")  # common in the earlier data: it means little
    norms = embedding[[vocab.index(w) for w in ("can", "i", "pay", "by", "card", "how", "do", "get", "cards")]].norm(dim=-1)
    assert float(norms.min()) <= float(starts["visa"].norm()) <= float(norms.max())  # a word's length, not a mean's

    with torch.no_grad():
        shifted = embedding.clone()
        shifted[vocab.index("?")] += 5.0  # every question has it: it carries no meaning
    assert torch.allclose(answer_word_starts(pairs, vocab, words, shifted, background)["visa"], starts["visa"])
    assert answer_word_starts(pairs, vocab, ["gift"], embedding, background) == {}

    grown, grown_vocab = grow_vocabulary(model, vocab, words, starts)
    rows = grown.embedding.weight.detach()
    assert torch.equal(rows[grown_vocab.index("visa")], starts["visa"])
    assert torch.equal(rows[grown_vocab.index("gift")], embedding[UNK_ID])
    assert torch.equal(rows[: len(vocab)], embedding)  # the trained words are untouched


def test_grow_checkpoint_starts_answer_words_from_their_questions_unless_told_not_to(
        tmp_path: Path, tiny_jsonl: Path, tiny_config):
    base = train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "base", tiny_config, progress=False)
    taught = [_pair(f"db:{i}", question, "you get a full refund .")
              for i, question in enumerate(["i want my money back", "can i get my money back ?", "money back ?"])]
    unk = load_checkpoint(base.model_dir).model.embedding.weight.detach()[UNK_ID]

    def rows(out: str, **kwargs) -> dict[str, torch.Tensor]:
        grown, _ = grow_checkpoint(base.model_dir, taught, tmp_path / out, limit=100, min_conversations=2, **kwargs)
        loaded = load_checkpoint(grown)
        weight = loaded.model.embedding.weight.detach()
        return {word: weight[loaded.vocab.index(word)] for word in ("refund", "full", "money", "back")}

    started, plain = rows("started"), rows("plain", answer_words_from_questions=False)
    assert all(torch.equal(row, unk) for row in plain.values())
    assert not torch.equal(started["refund"], unk) and torch.equal(started["refund"], started["full"])
    assert torch.equal(started["money"], unk) and torch.equal(started["back"], unk)  # customers wrote them


def test_a_fine_tune_writes_a_word_its_base_model_never_had(tmp_path: Path, tiny_jsonl: Path, tiny_config):
    base = train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "base", tiny_config, progress=False)
    assert load_checkpoint(base.model_dir).vocab.index("refund") == UNK_ID
    taught = [_pair(f"db:{i}", question, "you get a full refund .")
              for i, question in enumerate(["money back ?", "can i get my money back ?", "i want my money back"])]
    cfg = tiny_config.model_copy(update={"epochs": 60, "lr": 1e-2})

    def fine_tune(init: Path, out: str) -> str:
        result = train(taught * 4, [], tmp_path / out, cfg, init_from=init, progress=False)
        generator = ReplyGenerator.from_checkpoint(result.model_dir, num_beams=2, max_new_tokens=12)
        return generator.generate([[("customer", "money back ?")]], language="en")[0].text

    grown, added = grow_checkpoint(base.model_dir, taught, tmp_path / "grown", limit=100, min_conversations=2)
    assert grown == tmp_path / "grown" and added == 7
    assert set(load_checkpoint(grown).vocab.tokens[-7:]) == {"money", "back", "get", "full", "refund", "?", "my"}
    assert "refund" in fine_tune(grown, "with-growth")
    assert "refund" not in fine_tune(base.model_dir, "without")  # <unk> is never written, nor copied from here
    assert grow_checkpoint(grown, taught, tmp_path / "again", limit=100, min_conversations=2) == (grown, 0)  # nothing left to add


def test_chatbot_train_init_from_grows_the_vocabulary_when_asked(tmp_path: Path, tiny_jsonl: Path, tiny_config):
    import os
    import subprocess

    from .conftest import write_jsonl
    from .test_train import TINY_TOML

    base = train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "base", tiny_config, progress=False)
    rows = [{"id": f"r{i}", "language": "en", "messages": [{"role": "customer", "text": "money back ?"},
                                                          {"role": "agent", "text": "a full refund ."}]}
            for i in range(12)]
    data = write_jsonl(tmp_path / "refunds.jsonl", rows)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML.format(epochs=2, ckpt=60))
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(tmp_path / "data")}

    def chatbot(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["chatbot", "train", "--data", f"jsonl:{data}", "--config", str(config), *args],
                              env=env, capture_output=True, text=True, timeout=300)

    done = chatbot("--out", str(tmp_path / "grown"), "--init-from", str(base.model_dir), "--new-words", "3")
    assert done.returncode == 0, done.stderr
    grown = load_checkpoint(tmp_path / "grown" / "model")
    assert len(grown.vocab) == len(load_checkpoint(base.model_dir).vocab) + 3  # the limit, of 5 missing words
    assert grown.vocab.tokens[-3:] == ["?", "back", "full"]  # as widely used as money, refund: alphabetical
    assert grown.config["manifest"]["words_added"] == 3
    kept = chatbot("--out", str(tmp_path / "kept"), "--init-from", str(base.model_dir))  # the default: as it was
    assert kept.returncode == 0 and load_checkpoint(tmp_path / "kept" / "model").vocab.index("refund") == UNK_ID
    refused = chatbot("--out", str(tmp_path / "new"), "--new-words", "3")
    assert refused.returncode != 0 and "pass --init-from" in refused.stderr
    assert not (tmp_path / "new" / "model").exists()  # refused before training


def test_appended_words_learn_faster_and_the_rest_exactly_as_before(tmp_path: Path, tiny_jsonl: Path, tiny_config):
    base = train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "base", tiny_config, progress=False)
    taught = [_pair(f"db:{i}", question, "you get a full refund .")
              for i, question in enumerate(["money back ?", "can i get my money back ?", "i want my money back"])]
    grown, added = grow_checkpoint(base.model_dir, taught, tmp_path / "grown", limit=100, min_conversations=2)
    start = first_new_word(grown, added)
    assert start == len(load_checkpoint(base.model_dir).vocab)
    before = load_checkpoint(grown).model.embedding.weight.detach()

    def moved(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = tiny_config.model_copy(update={"epochs": 1, "max_steps": 4, "lr": 1e-3, "warmup_steps": 0,
                                             "new_words_from": start, "new_word_lr_scale": scale})
        result = train(taught * 4, [], tmp_path / f"x{scale}", cfg, init_from=grown, progress=False)
        after = load_checkpoint(result.model_dir).model.embedding.weight.detach()
        return (after - before)[:start].abs().sum(1), (after - before)[start:].abs().sum(1)

    old_rows, new_rows = moved(1.0)
    old_fast, new_fast = moved(10.0)
    assert new_rows.max() > 0
    assert torch.allclose(old_fast, old_rows, rtol=0.05, atol=1e-6)  # the trained words: steps as without it
    assert torch.allclose(new_fast, 10 * new_rows, rtol=1e-3, atol=1e-7)


def test_answer_words_keep_the_meaning_they_start_with_while_their_output_bias_learns_fast(
        tmp_path: Path, tiny_jsonl: Path, tiny_config):
    from training.vocab_growth import answer_word_ids

    base = train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "base", tiny_config, progress=False)
    taught = [_pair(f"db:{i}", question, "you get a full refund .")
              for i, question in enumerate(["money back ?", "can i get my money back ?", "i want my money back"])]
    grown, added = grow_checkpoint(base.model_dir, taught, tmp_path / "grown", limit=100, min_conversations=2)
    start, loaded = first_new_word(grown, added), load_checkpoint(grown)
    anchored = answer_word_ids(grown)
    assert sorted(loaded.vocab.token(i) for i in anchored) == ["full", "refund"]  # no customer wrote them
    before_rows, before_bias = loaded.model.embedding.weight.detach(), loaded.model.out_bias.detach()

    def moved(**update) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = tiny_config.model_copy(update={"epochs": 1, "max_steps": 4, "lr": 1e-3, "warmup_steps": 0,
                                             "new_words_from": start, "new_word_lr_scale": 10.0, **update})
        result = train(taught * 4, [], tmp_path / f"x{len(update)}", cfg, init_from=grown, progress=False)
        after = load_checkpoint(result.model_dir).model
        return ((after.embedding.weight.detach() - before_rows).abs().sum(1),
                (after.out_bias.detach() - before_bias).abs())

    rows, bias = moved()
    rows_kept, bias_kept = moved(answer_words=anchored, answer_word_lr_scale=1.0)
    others = [i for i in range(start, len(loaded.vocab)) if i not in anchored]
    assert rows[anchored].min() > 0
    assert torch.allclose(rows_kept[anchored], rows[anchored] / 10, rtol=0.05, atol=1e-7)  # at the trained pace
    assert torch.allclose(rows_kept[others], rows[others], rtol=0.05, atol=1e-7)
    assert torch.allclose(bias_kept, bias, rtol=0.05, atol=1e-7)  # how often to write them: still fast


def test_new_words_from_past_the_vocabulary_is_refused(tmp_path: Path, tiny_jsonl: Path, tiny_config):
    import pytest

    from training.train import TrainError

    cfg = tiny_config.model_copy(update={"new_words_from": 10_000, "new_word_lr_scale": 5.0})
    with pytest.raises(TrainError, match="past the vocabulary"):
        train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "x", cfg, progress=False)


def test_answer_words_that_are_not_appended_words_are_refused(tmp_path: Path, tiny_jsonl: Path, tiny_config):
    import pytest

    from training.train import TrainError

    cfg = tiny_config.model_copy(update={"new_words_from": 6, "new_word_lr_scale": 5.0, "answer_words": [2]})
    with pytest.raises(TrainError, match="answer_words must be appended words"):
        train(load_pairs([f"jsonl:{tiny_jsonl}"], 6), [], tmp_path / "x", cfg, progress=False)
