"""Length-bucketed batching: every example once per epoch, within the budget, reproducible, little padding."""

from __future__ import annotations

import random

import pytest

from chatbot.model.batch import encode_pair
from chatbot.text.vocab import Vocab
from training.dataset import BucketBatchSampler, example_lengths


def _lengths(n: int = 3000, seed: int = 0) -> list[tuple[int, int]]:
    """Source and target lengths drawn independently, like contexts and replies (long sources dominate)."""
    rng = random.Random(seed)
    return [(rng.randint(5, 200), rng.randint(2, 61)) for _ in range(n)]


def _padding_efficiency(batches: list[list[int]], lengths: list[tuple[int, int]], side: int) -> float:
    real = sum(lengths[i][side] for b in batches for i in b)
    padded = sum(len(b) * max(lengths[i][side] for i in b) for b in batches)
    return real / padded


def test_example_lengths_count_the_end_of_sequence_token():
    vocab = Vocab.build([["hi", "there"]], min_freq=1)
    assert example_lengths(encode_pair(["hi", "there", "you"], ["hi"], vocab)) == (3, 2)


def test_every_example_once_within_budget_and_batch_size():
    lengths = _lengths()
    sampler = BucketBatchSampler(lengths, max_tokens=4000, max_batch_size=64, seed=7)
    batches = sampler.global_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 64
        assert len(b) == 1 or len(b) * max(max(lengths[i]) for i in b) <= 4000


def test_order_is_a_function_of_seed_and_epoch():
    lengths = _lengths()
    a = BucketBatchSampler(lengths, 4000, 64, seed=7)
    assert a.global_batches(3) == BucketBatchSampler(lengths, 4000, 64, seed=7).global_batches(3)
    assert a.global_batches(3) != a.global_batches(4)
    assert a.global_batches(3) != BucketBatchSampler(lengths, 4000, 64, seed=8).global_batches(3)
    assert next(iter(a.batches(3, start=5)))[0] == a.global_batches(3)[5]


def test_batches_keep_target_padding_low_and_source_padding_moderate():
    """The decoder is the costly side: targets of a batch have near-equal lengths, sources stay bucketed."""
    lengths = _lengths()
    batches = BucketBatchSampler(lengths, 6000, 96, seed=1).global_batches(0)
    assert _padding_efficiency(batches, lengths, side=1) > 0.85
    assert _padding_efficiency(batches, lengths, side=0) > 0.75
    shuffled = list(range(len(lengths)))
    random.Random(0).shuffle(shuffled)
    size = round(len(lengths) / len(batches))
    unsorted = [shuffled[i : i + size] for i in range(0, len(shuffled), size)]
    assert _padding_efficiency(unsorted, lengths, side=1) < 0.6  # what bucketing saves


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_split_every_global_batch(world_size: int):
    lengths = _lengths(500)
    samplers = [BucketBatchSampler(lengths, 2000, 32, seed=3, rank=r, world_size=world_size)
                for r in range(world_size)]
    shares = [list(s.batches(0)) for s in samplers]
    for k, global_batch in enumerate(samplers[0].global_batches(0)):
        parts = [shares[r][k] for r in range(world_size)]
        assert all(size == len(global_batch) and idx for idx, size in parts)  # no rank ever gets nothing
        assert sorted(i for idx, _ in parts for i in idx) == sorted(global_batch)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="positive"):
        BucketBatchSampler([(3, 3)], max_tokens=0, max_batch_size=4, seed=0)
    with pytest.raises(ValueError, match="outside world size"):
        BucketBatchSampler([(3, 3)], 100, 4, seed=0, rank=2, world_size=2)
