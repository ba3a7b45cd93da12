"""Training pairs -> token-id examples -> length-bucketed batches.

Batches group examples of similar length under a token budget instead of padding everything to the
longest sequence. A padded target position costs 2-3x a source one (the decoder's sequential loop and the
output layer), so examples are sorted by target length first -- in bins of ``TARGET_BIN`` tokens -- and by
source length within a bin: on SGD dev that keeps ~80% of the padded target positions real (sorting by
the longer side, i.e. the source, left 38%, barely better than random batches' 35%) and ~84% of the source
ones (96% before, 44% random). The source side still matters: contexts are 4x longer than replies.
The order is a pure function of (seed, epoch), so a resumed or distributed run sees exactly the same
batches: the data position is just (epoch, batch index). Under DDP every rank builds the same global
batches and takes a strided share of each one (a distributed sampler that keeps the global batch equal
to a 1-process run).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from chatbot.model.batch import Example, encode_pair
from chatbot.text.vocab import Vocab
from training.sources import Pair

TARGET_BIN = 8  # target lengths that share a bucket; wider bins trade target padding for source padding


def example_lengths(example: Example) -> tuple[int, int]:
    """(source length, target length + eos): what the example costs on each side of a batch."""
    return len(example.src_ids), len(example.tgt_ids or ()) + 1


def encode_pairs(pairs: Sequence[Pair], vocab: Vocab, max_turns: int, max_src_tokens: int,
                 max_tgt_tokens: int) -> list[Example]:
    """Model examples in pair order; a reply longer than ``max_tgt_tokens`` is cut, the context from the left."""
    from chatbot.text.context import encode_context
    from chatbot.text.tokenize import tokenize

    out = []
    for pair in pairs:
        src = encode_context(pair.context, pair.language, max_turns=max_turns, max_tokens=max_src_tokens)
        tgt = tokenize(pair.reply, pair.language)[:max_tgt_tokens]
        out.append(encode_pair(src, tgt, vocab))
    return out


class BucketBatchSampler:
    """Token-budget batches of similar-length examples, in a (seed, epoch)-determined order.

    ``max_tokens`` bounds batch size x the longer padded side (source or target).
    """

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]],
        max_tokens: int,
        max_batch_size: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if max_tokens < 1 or max_batch_size < 1:
            raise ValueError("max_tokens and max_batch_size must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.lengths = list(lengths)
        self.sizes = [max(src, tgt) for src, tgt in self.lengths]
        self.max_tokens, self.max_batch_size = max_tokens, max_batch_size
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All batches of the epoch (every rank's share together), in training order."""
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=gen).tolist() if self.shuffle else list(range(n))
        # stable: random order among equal keys
        order.sort(key=lambda i: (self.lengths[i][1] // TARGET_BIN, self.lengths[i][0]))
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            longest = max(longest, self.sizes[i])
            if current and (longest * (len(current) + 1) > self.max_tokens or len(current) >= self.max_batch_size):
                batches.append(current)
                current, longest = [], self.sizes[i]
            current.append(i)
        if current:
            batches.append(current)
        # every rank needs at least one example of each global batch: fold short ones into a neighbour
        merged: list[list[int]] = []
        for b in batches:
            if merged and len(b) < self.world_size:
                merged[-1].extend(b)
            else:
                merged.append(b)
        if merged and len(merged[0]) < self.world_size and len(merged) > 1:
            merged[1][:0] = merged.pop(0)
        batches = merged
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=gen).tolist()
            batches = [batches[p] for p in perm]
        return batches

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[list[int], int]]:
        """(this rank's indices, global batch size) for batches ``start..`` of ``epoch``."""
        for batch in self.global_batches(epoch)[start:]:
            yield batch[self.rank :: self.world_size], len(batch)

    def __len__(self) -> int:
        return len(self.global_batches(0))
