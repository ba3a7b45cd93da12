"""A real (tiny) Seq2Seq trained until it knows a few replies by heart, shared by the reply tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from chatbot.model.batch import collate, encode_pair
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.text.context import encode_context
from chatbot.text.tokenize import tokenize
from chatbot.text.vocab import Vocab

PAIRS = [
    ([("customer", "where is my order")], "it ships today."),
    ([("customer", "i want a refund")], "you want a refund, it is on its way."),
    ([("customer", "hello"), ("agent", "hi how can i help"), ("customer", "cancel my booking please")],
     "your booking is cancelled."),
]


@dataclass
class Trained:
    model: Seq2Seq
    vocab: Vocab
    pairs: list


@pytest.fixture(scope="session")
def trained() -> Trained:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    sources = [encode_context(turns, "en") for turns, _ in PAIRS]
    targets = [tokenize(reply, "en") for _, reply in PAIRS]
    vocab = Vocab.build([*sources, *targets], min_freq=1)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=24, hidden=48, enc_layers=1, dropout=0.0))
    batch = collate([encode_pair(s, t, vocab) for s, t in zip(sources, targets)], vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        loss = model(batch)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, "the tiny model did not learn its replies"
    return Trained(model.eval(), vocab, PAIRS)
