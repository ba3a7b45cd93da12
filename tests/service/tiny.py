"""Tiny random-weight checkpoints: real models (real vocab, encoder, attention, beam search) that load in
milliseconds. Two seeds give two different versions for hot reload and replay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

WORDS = ["hello", "where", "is", "my", "order", "refund", "please", "thanks", "the", "parcel", "arrived", "late",
         "sorry", "we", "can", "help"]

# Small beams and short replies: every decode stays in the millisecond range on one thread. Random weights
# are never confident and write placeholders and numbers nobody gave, so neither the low-confidence nor the
# grounding handoff applies to them; grounding is tested with scripted candidates (test_grounding.py).
# No warm-up either: it initialises five languages' tokenizers in every decoder process (seconds each);
# test_warmup.py turns it on.
TINY_DECODING = {"quantize_int8": False, "num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 6,
                 "handoff_min_score": -1e9, "handoff_min_token_logprob": -1e9, "handoff_repeats": False, "grounding": False, "model_warmup": False}


def tiny_checkpoint(directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    vocab = Vocab([*SPECIAL_TOKENS, *WORDS])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    return save_checkpoint(directory, model, vocab)


@dataclass(frozen=True)
class TinyModels:
    first: Path
    second: Path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Two tiny checkpoints (seeds 1 and 2), written once per test session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return TinyModels(tiny_checkpoint(root / "m1", 1), tiny_checkpoint(root / "m2", 2))
