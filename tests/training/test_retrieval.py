from __future__ import annotations

import pytest

from training.retrieval import TfidfRetriever


def _ws(text: str) -> list[str]:
    return text.lower().split()


def test_retrieves_reply_of_most_similar_context():
    contexts = ["i want to book a flight to denver", "what is the weather in paris", "reserve a table for two"]
    replies = ["which day do you fly?", "it is sunny in paris.", "what time should the table be?"]
    retriever = TfidfRetriever(tokenizer=_ws, chunk_size=2).fit(contexts, replies)
    queries = ["weather paris tomorrow", "book flight denver friday", "table for two tonight", "unknown words"]
    assert retriever.predict(queries)[:3] == [replies[1], replies[0], replies[2]]
    assert retriever.nearest(["unknown words"]) == [0]  # no overlap: first entry, deterministically


def test_rare_words_weigh_more_than_common_ones():
    contexts = ["the the the denver", "the the the paris", "the the the the"]
    retriever = TfidfRetriever(tokenizer=_ws).fit(contexts, ["a", "b", "c"])
    assert retriever.predict(["the the paris"]) == ["b"]


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        TfidfRetriever(tokenizer=_ws).fit([], [])
    with pytest.raises(RuntimeError):
        TfidfRetriever(tokenizer=_ws).predict(["x"])
