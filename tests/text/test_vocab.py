"""Vocabulary building, fixed special ids, persistence and refusal of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.text.special import BOS, EOS, PAD, PLACEHOLDERS, SPEAKER_TOKENS, UNK, language_token
from chatbot.text.tokenize import SUPPORTED_LANGUAGES
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab, VocabError

CORPUS = [["order", "is", "late"], ["order", "is", "here"], ["order", "late", "?"], ["hi"]]


def test_specials_first_with_fixed_ids() -> None:
    vocab = Vocab.build(CORPUS)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.decode([0, 1, 2, 3]) == [PAD, BOS, EOS, UNK]
    for token in [*SPEAKER_TOKENS.values(), *PLACEHOLDERS, *(language_token(l) for l in SUPPORTED_LANGUAGES)]:
        assert token in vocab


def test_build_min_freq_and_order() -> None:
    vocab = Vocab.build(CORPUS, min_freq=2)
    assert vocab.tokens[len(SPECIAL_TOKENS) :] == ["order", "is", "late"]  # by count, ties alphabetical
    assert vocab.encode(["order", "here", "late"]) == [vocab.index("order"), vocab.unk_id, vocab.index("late")]
    assert len(Vocab.build(CORPUS, min_freq=1)) == len(SPECIAL_TOKENS) + 6


def test_build_max_size_counts_specials() -> None:
    vocab = Vocab.build(CORPUS, min_freq=1, max_size=len(SPECIAL_TOKENS) + 2)
    assert vocab.tokens[len(SPECIAL_TOKENS) :] == ["order", "is"]
    with pytest.raises(VocabError, match="max_size"):
        Vocab.build(CORPUS, max_size=3)


def test_save_load_round_trip_and_hash(tmp_path: Path) -> None:
    vocab = Vocab.build(CORPUS + [["订单", "😊"]], min_freq=1)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocab.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.sha256() == vocab.sha256()
    assert Vocab.build(CORPUS, min_freq=1).sha256() != vocab.sha256()
    assert loaded.decode(loaded.encode(["订单", "😊"])) == ["订单", "😊"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"tokens": ["a"]}', "not a chatbot-vocab file"),
        ('{"format": "chatbot-vocab", "version": 99, "tokens": []}', "version 99"),
        ('{"format": "chatbot-vocab", "version": 1, "tokens": ["a", "b"]}', "special tokens"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(VocabError, match=message):
        Vocab.load(path)


def test_duplicates_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"format": "chatbot-vocab", "version": 1, "tokens": [*SPECIAL_TOKENS, "a", "a"]}))
    with pytest.raises(VocabError, match="duplicate token"):
        Vocab.load(path)
    with pytest.raises(VocabError, match="not found"):
        Vocab.load(tmp_path / "missing.json")
