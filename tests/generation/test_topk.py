"""row_topk: the chunked top-k the beam search uses must pick exactly what torch.topk picks."""

from __future__ import annotations

import pytest
import torch

from chatbot.generation.search import row_topk


def _distinct(rows: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(width, generator=gen) for _ in range(rows)]).float() / width - 3.0


@pytest.mark.parametrize("width", [50, 640, 12000, 12007])
@pytest.mark.parametrize("k", [1, 4, 10])
def test_matches_torch_topk(width: int, k: int) -> None:
    scores = _distinct(7, width, seed=width + k)
    expected = scores.topk(k, dim=1)
    values, ids = row_topk(scores, k)
    assert torch.equal(values, expected.values) and torch.equal(ids, expected.indices)


def test_winners_crowded_into_one_chunk_or_in_the_ragged_tail() -> None:
    scores = _distinct(3, 1000, seed=1)
    scores[0, 128:138] += 10.0  # all ten best in one chunk of 64
    scores[1, 990:] += 10.0  # all in the tail after the last whole chunk
    scores[2, ::100] += 10.0  # one per chunk, spread out
    values, ids = row_topk(scores, 10)
    assert torch.equal(values, scores.topk(10, dim=1).values)
    assert torch.equal(scores.gather(1, ids), values)
    assert sorted(ids[0].tolist()) == list(range(128, 138)) and sorted(ids[1].tolist()) == list(range(990, 1000))


def test_blocked_scores_and_input_unchanged() -> None:
    scores = _distinct(2, 2000, seed=2)
    scores[0, 3:] = float("-inf")  # only three candidates left, as after heavy n-gram blocking
    before = scores.clone()
    values, ids = row_topk(scores, 6)
    assert torch.equal(scores, before)
    assert torch.equal(values, scores.topk(6, dim=1).values)  # -inf fill where fewer are possible
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]
    assert torch.equal(scores.gather(1, ids), values)
