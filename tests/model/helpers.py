"""Tiny training and greedy-decoding loops for the model tests (the real trainer lives in training/)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from chatbot.model import Seq2Seq, Seq2SeqBatch, collate, encode_pair
from chatbot.text.vocab import Vocab


def make_batches(
    pairs: Sequence[tuple[list[str], list[str]]], vocab: Vocab, batch_size: int, seed: int | None = 0
) -> list[Seq2SeqBatch]:
    """Batches in a seeded random order; ``seed=None`` keeps the order of ``pairs``."""
    order = list(range(len(pairs)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    examples = [encode_pair(*pairs[i], vocab) for i in order]
    return [collate(examples[i : i + batch_size], vocab) for i in range(0, len(examples), batch_size)]


def train(model: Seq2Seq, batches: Sequence[Seq2SeqBatch], steps: int, lr: float = 3e-3) -> float:
    """Adam over the batches in a cycle; returns the last loss."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        loss = model(batches[step % len(batches)])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return float(loss.detach())


@torch.no_grad()
def greedy(model: Seq2Seq, batch: Seq2SeqBatch, vocab: Vocab, max_len: int = 30) -> list[list[str]]:
    """Argmax decoding on top of encode/step; returns tokens (copied OOVs resolved) without <eos>."""
    state = model.encode(batch)
    tokens = torch.full((len(batch),), vocab.bos_id, dtype=torch.long)
    out: list[list[int]] = [[] for _ in range(len(batch))]
    done = [False] * len(batch)
    for _ in range(max_len):
        log_probs, state = model.step(tokens, state)
        tokens = log_probs.argmax(-1)
        for i, t in enumerate(tokens.tolist()):
            if not done[i]:
                done[i] = t == vocab.eos_id
                if not done[i]:
                    out[i].append(t)
        if all(done):
            break
    return [batch.ids_to_tokens(i, ids, vocab) for i, ids in enumerate(out)]
