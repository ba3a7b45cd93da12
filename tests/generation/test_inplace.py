"""The searches' in-place path (``apply_`` / ``apply_processors_``) against the pure ``__call__`` contract
and against plain-Python references, on random tables with repeated ids."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.generation import (
    ContextNGramBlock,
    GenerationConfig,
    MinNewTokens,
    NoRepeatNGram,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    beam_search,
)
from chatbot.generation.processors import SuppressTokens, apply_processors_

from .scripted import BOS, EOS, ScriptedModel

V = 7


def tables(seed: int, rows: int = 4, t: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated ids drawn from a tiny vocabulary (so ids and n-grams repeat) and mixed-sign scores."""
    gen = torch.Generator().manual_seed(seed)
    generated = torch.randint(0, 3, (rows, t), generator=gen)
    scores = torch.randn(rows, V, generator=gen) * 3
    return generated, scores


PROCESSORS = [
    RepetitionPenalty(1.7),
    RepetitionPenalty(0.6),
    NoRepeatNGram(1),
    NoRepeatNGram(2),
    NoRepeatNGram(3),
    ContextNGramBlock(2, [[0, 1, 2, -1, 2, 0], [1, 1], [], [2, 2, 2, 0]]),
    MinNewTokens(10, 4),
    MinNewTokens(2, 4),
    SuppressTokens([0, 5]),
    Temperature(0.7),
    TopK(3),
    TopP(0.8),
]


@pytest.mark.parametrize("proc", PROCESSORS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("seed", range(5))
def test_apply_in_place_equals_the_pure_call(proc, seed):
    generated, scores = tables(seed)
    expected = proc(generated, scores)
    before = generated.clone()
    edited = scores.clone()
    proc.apply_(generated, edited)
    assert torch.equal(edited, expected)
    assert torch.equal(generated, before)


def reference_no_repeat(generated: list[list[int]], scores: torch.Tensor, n: int) -> torch.Tensor:
    out = scores.clone()
    for i, row in enumerate(generated):
        prefix = tuple(row[len(row) - n + 1:]) if n > 1 else ()
        for j in range(len(row) - n + 1):
            if tuple(row[j:j + n - 1]) == prefix:
                out[i, row[j + n - 1]] = -math.inf
    return out


@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), t=st.integers(0, 9))
@settings(max_examples=60, deadline=None)
def test_no_repeat_ngram_matches_a_python_reference_with_repeated_ids(seed, n, t):
    generated, scores = tables(seed, t=t)
    edited = scores.clone()
    NoRepeatNGram(n).apply_(generated, edited)
    if t < n:
        assert torch.equal(edited, scores)
    else:
        assert torch.equal(edited, reference_no_repeat(generated.tolist(), scores, n))


def test_apply_processors_mixes_in_place_and_plain_callables_in_order():
    generated, scores = tables(3)

    def shift(ids: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # a caller's own pure processor
        return s + 1.0

    procs = [RepetitionPenalty(2.0), shift, NoRepeatNGram(2), MinNewTokens(10, 4)]
    expected = scores
    for proc in procs:
        expected = proc(generated, expected)
    assert torch.equal(apply_processors_(procs, generated, scores.clone()), expected)


class SharedTableModel(ScriptedModel):
    """Returns rows of one table it keeps (as a model with cached outputs could): a search that edited
    the log-probs it is given in place would corrupt it."""

    def __init__(self) -> None:
        self.table = torch.log_softmax(torch.randn(64, V, generator=torch.Generator().manual_seed(0)), dim=1)
        self.original = self.table.clone()
        super().__init__(lambda row, prefix: [1.0 / V] * V, V)

    def step(self, tokens, state):
        _, state = super().step(tokens, state)
        return self.table[: tokens.numel()], state


def test_search_never_edits_the_models_log_probs():
    model = SharedTableModel()
    config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, num_beams=3, max_new_tokens=6,
                              min_new_tokens=3, repetition_penalty=1.5, no_repeat_ngram_size=2)
    result = beam_search(model, model.start([0, 1]), config)
    assert all(len(hyps) == 1 for hyps in result)
    assert torch.equal(model.table, model.original)
