"""Score processors: small pure callables that reshape next-token scores before a search picks tokens.

Each is called as ``proc(generated_ids: LongTensor[N, t], scores: FloatTensor[N, V]) -> FloatTensor[N, V]``
and never modifies its inputs. ``generated_ids`` holds the tokens generated so far for each row (no BOS);
all rows have the same length ``t``. Everything is vectorised over rows so one call serves every beam of
every waiting request.

Processors that carry per-request data (:class:`ContextNGramBlock`, :class:`ScriptConstraint`) take one
entry per batch row. The searches lay rows out batch-major (the beams of request ``b`` are rows
``b*k .. b*k+k-1``); when they drop finished requests they call ``for_rows(batch_index)`` to get a
processor matching the new row layout.

The searches take a faster path: every processor here also offers ``apply_(generated_ids, scores)``,
which edits a score table the search owns in place and touches only the entries it changes (the
repetition penalty rewrites the [N, t] generated ids, the n-gram blocks a few ids per row). ``__call__``
is that same code run on a copy, so the pure contract and the fast path cannot drift apart.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Protocol

import torch

from chatbot.generation.config import GenerationConfig

NEG_INF = float("-inf")


class Processor(Protocol):
    def __call__(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor: ...


class InPlaceProcessor:
    """A processor whose work is ``apply_``; calling it runs ``apply_`` on a copy of the scores."""

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Edit ``scores`` [N, V] in place (the caller owns it); ``generated_ids`` stays unchanged."""
        raise NotImplementedError

    def __call__(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = scores.clone()
        self.apply_(generated_ids, out)
        return out


def apply_processors_(processors: Sequence[Processor], generated_ids: torch.Tensor,
                      scores: torch.Tensor) -> torch.Tensor:
    """Run ``processors`` in order on ``scores``, which the caller owns and which may be edited in place;
    returns the processed table (``scores`` itself unless a processor without ``apply_`` is among them)."""
    for proc in processors:
        if isinstance(proc, InPlaceProcessor):
            proc.apply_(generated_ids, scores)
        else:
            scores = proc(generated_ids, scores)
    return scores


class PerRequestProcessor(InPlaceProcessor):
    """An in-place processor with one entry of ``self._table`` (a tensor [B, ...]) per batch row (request).

    Searches lay rows out batch-major and call ``for_rows`` when they drop finished requests; unbound, a
    table is spread evenly over the rows (the beams of request ``b`` are rows ``b*k .. b*k+k-1``).
    """

    _table: torch.Tensor
    _row_table: torch.Tensor | None = None  # [N, ...] once bound to a row layout

    def for_rows(self, batch_index: torch.Tensor) -> PerRequestProcessor:
        """The same processor for a row layout where row ``i`` belongs to batch row ``batch_index[i]``."""
        bound = copy.copy(self)
        bound._row_table = self._table.index_select(0, batch_index.to(self._table.device))
        return bound

    def _table_for(self, num_rows: int, device: torch.device) -> torch.Tensor:
        """The table row of every one of ``num_rows`` rows, on ``device`` (moved once per row layout)."""
        if self._row_table is not None:
            if self._row_table.size(0) != num_rows:
                raise ValueError(f"bound to {self._row_table.size(0)} rows, called with {num_rows}")
            if self._row_table.device != device:
                self._row_table = self._row_table.to(device)
            return self._row_table
        batch_rows = self._table.size(0)
        if num_rows % batch_rows:
            raise ValueError(f"{num_rows} rows do not split evenly over {batch_rows} contexts")
        return self._table.repeat_interleave(num_rows // batch_rows, dim=0).to(device)


class RepetitionPenalty(InPlaceProcessor):
    """CTRL / Hugging Face repetition penalty: tokens already generated in a row become less likely.

    A negative score is multiplied by ``penalty`` and a positive one divided by it, so ``penalty > 1``
    always lowers the score whatever its sign.
    """

    def __init__(self, penalty: float) -> None:
        if not penalty > 0:
            raise ValueError(f"repetition penalty must be > 0, got {penalty!r}")
        self.penalty = float(penalty)

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        if generated_ids.size(1) == 0 or self.penalty == 1.0:
            return
        seen = scores.gather(1, generated_ids)  # [N, t]; a repeated id gathers (and writes) one value
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)  # exactly as HF computes it
        scores.scatter_(1, generated_ids, seen)


def _ban_(scores: torch.Tensor, tokens: torch.Tensor, banned: torch.Tensor) -> None:
    """``scores[i, tokens[i, j]] = -inf`` wherever ``banned[i, j]``; tokens/banned are [N, W].

    Adding -inf (banned) or 0 (not) with ``scatter_add_`` is exact even when an id repeats in a row,
    and needs neither a copy of the scores nor a host sync to count the bans.
    """
    scores.scatter_add_(1, tokens, torch.zeros_like(tokens, dtype=scores.dtype).masked_fill_(banned, NEG_INF))


class NoRepeatNGram(InPlaceProcessor):
    """A token that would complete an n-gram already present in the row's generated text gets ``-inf``."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"no-repeat n-gram size must be >= 1, got {n!r}")
        self.n = n

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        n, t = self.n, generated_ids.size(1)
        if t < n:  # no complete n-gram yet
            return
        grams = generated_ids.unfold(1, n, 1)  # [N, t-n+1, n]
        prefix = generated_ids[:, t - n + 1:]  # [N, n-1]
        match = (grams[:, :, : n - 1] == prefix[:, None, :]).all(dim=2)  # [N, W]
        _ban_(scores, grams[:, :, n - 1], match)


class ContextNGramBlock(PerRequestProcessor):
    """Blocks n-grams copied from the customer's own words, so the bot does not parrot the customer.

    ``context_ids`` has one token-id sequence per batch row (ids as fed to the model, copied OOVs included);
    a negative id separates segments (turns), so no n-gram spans two of them.
    """

    def __init__(self, n: int, context_ids: Sequence[Sequence[int]] | Sequence[torch.Tensor]) -> None:
        if n < 1:
            raise ValueError(f"context n-gram size must be >= 1, got {n!r}")
        if len(context_ids) == 0:
            raise ValueError("context_ids needs one sequence per batch row")
        self.n = n
        # Context n-grams of every batch row, padded with -1 (never a token id): [B, W, n]
        rows = [torch.as_tensor(list(map(int, ids)), dtype=torch.long) for ids in context_ids]
        width = max(1, max(len(r) - n + 1 for r in rows))
        grams = torch.full((len(rows), width, n), -1, dtype=torch.long)
        for b, row in enumerate(rows):
            if len(row) >= n:
                grams[b, : len(row) - n + 1] = row.unfold(0, n, 1)
        self._table = grams

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        n, t = self.n, generated_ids.size(1)
        if t < n - 1:
            return
        grams = self._table_for(scores.size(0), scores.device)  # [N, W, n]
        prefix = generated_ids[:, t - n + 1:]  # [N, n-1]
        last = grams[:, :, n - 1]  # [N, W], -1 in padding
        match = (grams[:, :, : n - 1] == prefix[:, None, :]).all(dim=2) & (last >= 0)
        _ban_(scores, last.clamp_min(0), match)


class ScriptConstraint(PerRequestProcessor):
    """Per row, tokens of a script foreign to that row's language get ``-inf`` unless the row's conversation
    holds them, so a Chinese reply writes no Latin word and an English one no Chinese character that nobody
    wrote in the conversation (the model otherwise drifts: "你不是我you want me to什么?").

    ``foreign`` maps a language to a BoolTensor [V] over the base vocabulary (True: the token has a letter of
    a foreign script), built once per vocabulary by the caller; a language without an entry is
    unconstrained. ``languages`` and ``context_ids`` have one entry per batch row; a context id occurring in
    the row is allowed (negative ids are separators and ignored), and ids >= V (copied out-of-vocabulary
    words) are never banned: they come from the conversation by construction.

    The per-row masks are built once here (and gathered once per row layout by ``for_rows``), so a step
    costs one masked fill.
    """

    def __init__(self, foreign: Mapping[str, torch.Tensor], languages: Sequence[str],
                 context_ids: Sequence[Sequence[int]] | Sequence[torch.Tensor]) -> None:
        if len(languages) == 0 or len(languages) != len(context_ids):
            raise ValueError(f"need one language and one context per batch row, got {len(languages)} languages "
                             f"and {len(context_ids)} contexts")
        widths = {int(mask.numel()) for mask in foreign.values()}
        if len(widths) > 1 or any(mask.dtype != torch.bool or mask.dim() != 1 for mask in foreign.values()):
            raise ValueError("foreign-script masks must be 1-d bool tensors of one vocabulary size")
        width = widths.pop() if widths else 0
        banned = torch.zeros(len(languages), width, dtype=torch.bool)
        for b, (language, ids) in enumerate(zip(languages, context_ids)):
            mask = foreign.get(language)
            if mask is None:
                continue
            banned[b] = mask
            row = torch.as_tensor(ids if isinstance(ids, torch.Tensor) else list(map(int, ids)), dtype=torch.long)
            banned[b, row[(row >= 0) & (row < width)]] = False
        self._table = banned  # [B, V]

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        width = self._table.size(1)
        if width == 0:
            return
        if scores.size(1) < width:
            raise ValueError(f"scores cover {scores.size(1)} tokens, the masks a vocabulary of {width}")
        banned = self._table_for(scores.size(0), scores.device)
        scores[:, :width].masked_fill_(banned, NEG_INF)


class CopyBonus(PerRequestProcessor):
    """Adds ``bonus`` to the score of every detail word the customer wrote, so a reply confirms "Blue Bottle at
    7 pm" with the customer's own words instead of a likelier detail from training ("12 pm", "March 12th").

    A word the reply already holds gets none in a row marked ``once``; in the other rows only the word just
    written loses it. The bonus for a word already written made replies to questions the model does not know
    repeat the customer's words ("we don't refund policy policy", "a new password new password": 12 of 120
    such questions, 6 without it, decoded one at a time; SGD dev chrF 37.66 -> 37.68). In
    Chinese a customer's word is often part of several names ("北京" in "北京饭店" and "北京大学"), and
    withholding it from every written word shortened such lists (CrossWOZ dev entity-copy recall 0.352 ->
    0.318), so the service marks rows ``once`` by language.

    ``context_ids`` has one id sequence per batch row (the customer's words as fed to the model, copied
    out-of-vocabulary words included; negative ids are separators). Ids below ``common_ids`` get nothing:
    vocabularies are sorted by frequency, so those are specials, punctuation and function words, and
    favouring them would only make replies echo the customer. On 2,500 SGD dev pairs held apart from the
    reported ones, a bonus of 1.0 raised entity-copy recall 0.579 -> 0.649 at the same reply length.
    """

    def __init__(self, bonus: float, context_ids: Sequence[Sequence[int]] | Sequence[torch.Tensor],
                 common_ids: int = 100, once: Sequence[bool] | None = None) -> None:
        if not bonus >= 0:
            raise ValueError(f"copy bonus must be >= 0, got {bonus!r}")
        if len(context_ids) == 0:
            raise ValueError("context_ids needs one sequence per batch row")
        once = [False] * len(context_ids) if once is None else list(once)
        if len(once) != len(context_ids):
            raise ValueError(f"once has {len(once)} entries for {len(context_ids)} rows")
        self.bonus = float(bonus)
        rows = [sorted({int(i) for i in ids if int(i) >= common_ids}) for ids in context_ids]
        # [B, 1 + W]: column 0 says whether the row is ``once``, then its ids, -1 pads
        table = torch.full((len(rows), 1 + max(1, max(map(len, rows)))), -1, dtype=torch.long)
        for b, row in enumerate(rows):  # each id once per row, so scatter_add_ adds the bonus once
            table[b, 0] = int(bool(once[b]))
            table[b, 1 : 1 + len(row)] = torch.tensor(row, dtype=torch.long)
        self._table = table

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        table = self._table_for(scores.size(0), scores.device)  # [N, 1 + W]
        ids = table[:, 1:]  # [N, W]
        gain = (ids >= 0).to(scores.dtype) * self.bonus
        if generated_ids.size(1):
            just_written = ids == generated_ids[:, -1:]  # [N, W]
            written = (ids.unsqueeze(2) == generated_ids.unsqueeze(1)).any(2)  # [N, W]
            gain = gain * ~torch.where(table[:, :1].bool(), written, just_written)
        scores.scatter_add_(1, ids.clamp_min(0), gain)


class MinNewTokens(InPlaceProcessor):
    """EOS is impossible until ``min_new_tokens`` tokens have been generated."""

    def __init__(self, min_new_tokens: int, eos_token_id: int) -> None:
        if min_new_tokens < 0 or eos_token_id < 0:
            raise ValueError("min_new_tokens and eos_token_id must be >= 0")
        self.min_new_tokens = min_new_tokens
        self.eos_token_id = eos_token_id

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        if generated_ids.size(1) < self.min_new_tokens:
            scores.select(1, self.eos_token_id).fill_(NEG_INF)


class SuppressTokens(InPlaceProcessor):
    """Tokens that must never be written (padding, BOS, ``<unk>``, speaker and language markers) get ``-inf``."""

    def __init__(self, token_ids: Sequence[int]) -> None:
        if any(int(i) < 0 for i in token_ids):
            raise ValueError("token ids must be >= 0")
        self.token_ids = torch.as_tensor(sorted(set(map(int, token_ids))), dtype=torch.long)

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        scores.index_fill_(1, self.token_ids.to(scores.device), NEG_INF)


class ForceTokens(PerRequestProcessor):
    """Only the next token of each row's given reply may be written (then EOS): a greedy search with this
    last scores a reply the search did not find exactly as the search would have, every other processor
    applied first. A token they ruled out stays ``-inf``, and so does the reply's score."""

    def __init__(self, replies: Sequence[Sequence[int]], eos_token_id: int) -> None:
        if not replies:
            raise ValueError("no replies to force")
        width = 1 + max(len(r) for r in replies)
        table = torch.full((len(replies), width), int(eos_token_id), dtype=torch.long)
        for b, reply in enumerate(replies):
            if any(int(i) < 0 for i in reply):
                raise ValueError("token ids must be >= 0")
            table[b, : len(reply)] = torch.as_tensor(list(map(int, reply)), dtype=torch.long)
        self._table = table  # [B, L + 1]: the reply, then EOS

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        table = self._table_for(scores.size(0), scores.device)
        step = min(generated_ids.size(1), table.size(1) - 1)
        wanted = table[:, step : step + 1]  # [N, 1]
        kept = scores.gather(1, wanted)
        scores.fill_(NEG_INF).scatter_(1, wanted, kept)


class Temperature(InPlaceProcessor):
    """Divides scores by ``temperature``: below 1 sharpens the sampling distribution, above 1 flattens it."""

    def __init__(self, temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        scores.div_(self.temperature)


class TopK(InPlaceProcessor):
    """Keeps the ``k`` best tokens of each row (ties at the k-th score are kept too); the rest get ``-inf``."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k!r}")
        self.k = k

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        k = min(self.k, scores.size(1))
        kth = scores.topk(k, dim=1).values[:, -1:]  # [N, 1]
        scores.masked_fill_(scores < kth, NEG_INF)


class TopP(InPlaceProcessor):
    """Nucleus filtering (Hugging Face semantics): keeps the smallest set of best tokens whose probability
    reaches ``top_p``; always keeps at least the best token."""

    def __init__(self, top_p: float) -> None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        self.top_p = float(top_p)

    def apply_(self, generated_ids: torch.Tensor, scores: torch.Tensor) -> None:
        sorted_scores, order = scores.sort(dim=1)  # ascending
        cumulative = sorted_scores.softmax(dim=1).cumsum(dim=1)
        drop_sorted = cumulative <= 1 - self.top_p
        drop_sorted[:, -1] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores.masked_fill_(drop, NEG_INF)


def build_processors(
    config: GenerationConfig, context_ids: Sequence[Sequence[int]] | None = None,
    copy_once: Sequence[bool] | None = None,
) -> list[Processor]:
    """The processors a config asks for, in Hugging Face order (penalties, blocks, then sampling warpers).

    With ``context_ids`` (one sequence per batch row, normally the customer's turns) n-grams of size
    ``encoder_no_repeat_ngram_size`` copied from the context are blocked and its detail words get
    ``copy_bonus`` as well (at most until written, in the rows ``copy_once`` marks: see ``CopyBonus``).
    """
    procs: list[Processor] = []
    if config.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(config.repetition_penalty))
    if config.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(config.no_repeat_ngram_size))
    if config.encoder_no_repeat_ngram_size > 0 and context_ids is not None:
        procs.append(ContextNGramBlock(config.encoder_no_repeat_ngram_size, context_ids))
    if config.copy_bonus > 0 and context_ids is not None:
        procs.append(CopyBonus(config.copy_bonus, context_ids, once=copy_once))
    if config.min_new_tokens > 0:
        procs.append(MinNewTokens(config.min_new_tokens, config.eos_token_id))
    if config.do_sample:
        if config.temperature != 1.0:
            procs.append(Temperature(config.temperature))
        if config.top_k > 0:
            procs.append(TopK(config.top_k))
        if config.top_p < 1.0:
            procs.append(TopP(config.top_p))
    return procs
