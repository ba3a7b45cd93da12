"""The model learns: it overfits 20 pairs exactly, and the copy gate reproduces unseen order ids and names.

Small models and short runs (one thread) so the suite stays fast; `benchmarks/model.py --copy` runs the
copy task at a larger budget for the figures in the report.
"""

from __future__ import annotations

import random

import pytest
import torch

from chatbot.model import Seq2Seq, Seq2SeqConfig
from chatbot.text.context import encode_context
from chatbot.text.tokenize import tokenize
from chatbot.text.vocab import Vocab

from .helpers import greedy, make_batches, train

pytestmark = pytest.mark.slow

PAIRS_20 = [
    ("Hi, I need help with my order.", "Sure, what is your order number?"),
    ("Where is my package?", "Let me check the tracking for you."),
    ("My card was charged twice.", "I'm sorry about that, I will refund the extra charge."),
    ("Can I change my delivery address?", "Yes, please send me the new address."),
    ("How do I reset my password?", "Click 'forgot password' on the login page."),
    ("The item arrived broken.", "I'm sorry! We will send a replacement."),
    ("Do you ship to Canada?", "Yes, we ship to Canada within 7 days."),
    ("I want to cancel my subscription.", "Done, your subscription is cancelled."),
    ("What are your opening hours?", "We are open from 9 am to 5 pm."),
    ("Is the blue jacket in stock?", "The blue jacket is back in stock."),
    ("Can I pay with PayPal?", "Yes, PayPal is accepted at checkout."),
    ("My discount code doesn't work.", "Please try the code again, it's valid now."),
    ("How long does a refund take?", "Refunds take 3 to 5 business days."),
    ("I forgot my username.", "Your username was sent to <EMAIL>."),
    ("Can I speak to a person?", "Of course, connecting you to an agent."),
    ("Thanks for your help!", "You're welcome, have a nice day!"),
    ("Where can I find the invoice?", "Invoices are under 'My orders'."),
    ("The app keeps crashing.", "Please update the app to the latest version."),
    ("Do you have a store in Berlin?", "No, we only sell online."),
    ("Can I return shoes I wore once?", "Only unworn shoes can be returned."),
]


def _tokenized(pairs):
    return [(encode_context([("customer", c)], "en"), tokenize(a, "en")) for c, a in pairs]


def test_overfits_twenty_pairs_to_exact_greedy_replies() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pairs = _tokenized(PAIRS_20)
    vocab = Vocab.build((tokens for pair in pairs for tokens in pair), min_freq=1)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=48, hidden=96, enc_layers=1, dropout=0.0))
    batches = make_batches(pairs, vocab, batch_size=20, seed=None)
    train(model, batches, steps=150, lr=1e-2)
    replies = greedy(model, batches[0], vocab)
    wrong = [(reply, target) for reply, (_, target) in zip(replies, pairs) if reply != target]
    assert not wrong


# --- copy task -----------------------------------------------------------------------------------

SYLLABLES = "ka lo mi re tu sa ne vi do ra pe li go zu ha".split()
SOURCE_TEMPLATES = [
    "hi , this is {name} . where is my order {oid} ?",
    "my name is {name} and order {oid} has not arrived",
    "order {oid} is late , {name} here",
    "can you check order {oid} for me ? thanks , {name}",
]
TARGET = "sorry {name} , order {oid} ships today ."


def copy_pairs(n: int, rng: random.Random, id_prefix: str) -> list[tuple[list[str], list[str]]]:
    """Order ids and names are random strings, so each one is out of vocabulary."""
    pairs = []
    for _ in range(n):
        name = "".join(rng.choices(SYLLABLES, k=3)).capitalize()
        oid = id_prefix + "".join(rng.choices("0123456789", k=5))
        src = rng.choice(SOURCE_TEMPLATES).format(name=name, oid=oid).split()
        pairs.append((["<lang:en>", "<customer>", *src], TARGET.format(name=name, oid=oid).split()))
    return pairs


def copy_accuracy(copy: bool, *, n_train: int, steps: int, n_test: int = 100, seed: int = 0) -> float:
    """Fraction of replies to unseen ids/names that are exactly right (both copied correctly)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    train_pairs = copy_pairs(n_train, rng, id_prefix="A")
    test_pairs = copy_pairs(n_test, rng, id_prefix="Q")  # ids never seen in training
    vocab = Vocab.build((t for pair in train_pairs for t in pair), min_freq=5)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=32, hidden=64, enc_layers=1, dropout=0.0, copy=copy))
    train(model, make_batches(train_pairs, vocab, batch_size=32, seed=seed), steps=steps, lr=5e-3)
    replies = greedy(model, make_batches(test_pairs, vocab, batch_size=n_test, seed=None)[0], vocab)
    return sum(reply == target for reply, (_, target) in zip(replies, test_pairs)) / n_test


def test_copy_gate_reproduces_unseen_ids_and_names() -> None:
    torch.set_num_threads(1)
    with_copy = copy_accuracy(True, n_train=512, steps=250)
    without_copy = copy_accuracy(False, n_train=512, steps=250)
    print(f"\ncopy accuracy on unseen ids/names: with copy gate {with_copy:.2f}, without {without_copy:.2f}")
    assert with_copy >= 0.9
    assert without_copy <= 0.05


def test_trains_on_exported_jsonl_pairs_and_round_trips(tmp_path) -> None:
    """The export format (one JSON pair per line) -> context encoding -> training -> checkpoint -> same replies."""
    import json

    from chatbot.model import load_checkpoint, save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    lines = [
        {"context": [{"role": "customer", "text": c}], "response": a, "language": "en", "kind": "agent"}
        for c, a in PAIRS_20[:8]
    ]
    lines.append({"context": [{"role": "customer", "text": "我的订单在哪里?"}], "response": "正在配送。", "language": "zh"})
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    pairs = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(raw)
        turns = [(t["role"], t["text"]) for t in row["context"]]
        pairs.append((encode_context(turns, row["language"]), tokenize(row["response"], row["language"])))
    vocab = Vocab.build((tokens for pair in pairs for tokens in pair), min_freq=1)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=32, hidden=64, enc_layers=1, dropout=0.1))
    batches = make_batches(pairs, vocab, batch_size=len(pairs), seed=None)
    with torch.no_grad():
        first = float(model.eval()(batches[0]))
    last = train(model, batches, steps=60, lr=1e-2)
    assert last < first / 4
    loaded = load_checkpoint(save_checkpoint(tmp_path / "model", model, vocab, manifest={"file": path.name}))
    assert greedy(loaded.model, batches[0], vocab) == greedy(model, batches[0], vocab)
    assert loaded.config["manifest"] == {"file": "pairs.jsonl"}
