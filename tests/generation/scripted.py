"""A step model that reads its log-probs from a script keyed on (batch row, generated prefix).

This is the test design of the decoding issue: search behaviour can be checked exactly against hand-made
or random tables, with no network in the way. It keeps the step interface's conventions: a dataclass state
whose leading dimension is the row count, reordered by index, with the last step's attention.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

BOS, EOS = 0, 1
Script = Callable[[int, tuple[int, ...]], Sequence[float]]  # (batch row, prefix) -> probabilities over V


@dataclass
class ScriptedState:
    row: torch.Tensor  # [N] batch row whose script drives this row
    prefix: torch.Tensor  # [N, t] tokens fed so far (BOS first)
    attention: torch.Tensor | None = None  # [N, S]


class ScriptedModel:
    def __init__(self, script: Script, vocab_size: int, source_len: int = 5) -> None:
        self.script, self.vocab_size, self.source_len = script, vocab_size, source_len
        self.step_calls = 0
        self.rows_stepped = 0

    def start(self, rows: Sequence[int]) -> ScriptedState:
        n = len(rows)
        return ScriptedState(torch.tensor(list(rows), dtype=torch.long), torch.zeros(n, 0, dtype=torch.long))

    def attention_for(self, generated: Sequence[int]) -> torch.Tensor:
        """The attention reported while predicting the token after ``generated``: one-hot, prefix-dependent."""
        out = torch.zeros(self.source_len)
        out[sum((i + 1) * tok for i, tok in enumerate(generated)) % self.source_len] = 1.0
        return out

    def step(self, tokens: torch.Tensor, state: ScriptedState) -> tuple[torch.Tensor, ScriptedState]:
        self.step_calls += 1
        self.rows_stepped += tokens.numel()
        prefix = torch.cat([state.prefix, tokens[:, None]], dim=1)
        rows = []
        attention = []
        for row, fed in zip(state.row.tolist(), prefix.tolist()):
            assert fed[0] == BOS
            generated = tuple(fed[1:])
            probs = self.script(row, generated)
            assert len(probs) == self.vocab_size
            rows.append([math.log(p) if p > 0 else -math.inf for p in probs])
            attention.append(self.attention_for(generated))
        log_probs = torch.tensor(rows, dtype=torch.float32)
        return log_probs, ScriptedState(state.row, prefix, torch.stack(attention))

    def reorder(self, state: ScriptedState, index: torch.Tensor) -> ScriptedState:
        attention = state.attention[index] if state.attention is not None else None
        return ScriptedState(state.row[index], state.prefix[index], attention)


def table(entries: dict[tuple[int, ...], Sequence[float]], vocab_size: int) -> Script:
    """A script from explicit prefixes; any other prefix ends the reply (EOS with probability 1)."""
    end = [0.0] * vocab_size
    end[EOS] = 1.0

    def script(row: int, prefix: tuple[int, ...]) -> Sequence[float]:
        return entries.get(prefix, end)

    return script


def random_script(seed: int, vocab_size: int) -> Script:
    """Random but fixed distributions per (seed, row, prefix); BOS is never produced."""

    def script(row: int, prefix: tuple[int, ...]) -> Sequence[float]:
        rng = random.Random(hash((seed, row, prefix)))
        weights = [0.0] + [rng.random() + 0.05 for _ in range(vocab_size - 1)]
        total = sum(weights)
        return [w / total for w in weights]

    return script
