"""Beam, greedy and sampling search over any model that offers the step interface.

The searches know nothing about GRUs or attention layers: a model only has to advance a batch of rows by
one token (``step``) and select/duplicate rows of its state (``reorder``). All beams of all requests share
one ``step`` call per generated token (the first on one row per request, since its beams start identical);
rows whose request is finished are dropped from the state so they cost nothing afterwards. Processors edit
the search's own copy of each step's log-probs in place (``apply_``), never the model's tensor.
Everything per step is tensor work over rows -- there is no Python loop over hypotheses.

Scores: a hypothesis scores the sum of the processed log-probs of its generated tokens, EOS included,
divided by ``scored_tokens ** length_penalty`` where ``scored_tokens = len(tokens) + 1`` for a reply that
ended with EOS and ``len(tokens)`` for one cut at ``max_new_tokens`` (``finished=False``). Sampling scores
a token by its log-prob under the (processed) distribution it was drawn from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from chatbot.generation.config import GenerationConfig
from chatbot.generation.processors import NEG_INF, ForceTokens, Processor, apply_processors_, build_processors


class StepModel(Protocol):
    """What a search needs from a model. ``state`` is opaque here except for two conventions: it is a
    dataclass (or has ``__len__``) whose leading tensor dimension is the row count, and after ``step`` its
    ``attention`` field holds that step's attention over source positions ``[N, S]`` (or ``None``).

    A model whose ``step`` returns a new log-prob tensor every call, referenced nowhere else, may say so
    with a true ``step_output_is_fresh`` attribute: the processors then edit that tensor in place instead
    of a copy, one pass over ``[N, V]`` fewer per token."""

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """tokens: LongTensor[N] (the previous token of each row) -> (log_probs FloatTensor[N, V], state)."""
        ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        """The state whose row ``i`` is row ``index[i]`` of ``state`` (rows may repeat or be dropped)."""
        ...


@dataclass
class Hypothesis:
    """One decoded reply: generated ids without BOS/EOS, its length-normalised score, and optionally the
    attention of each generated token over source positions (``FloatTensor[len(tokens), S]``)."""

    tokens: list[int]
    score: float
    finished: bool = True
    attention: torch.Tensor | None = None


def _leading_tensor(state: Any) -> torch.Tensor:
    """The state's first tensor with a row dimension: the state itself when it is a bare tensor."""
    if isinstance(state, torch.Tensor) and state.dim() > 0:
        return state
    values = (getattr(state, f.name) for f in dataclasses.fields(state)) if dataclasses.is_dataclass(state) \
        else iter(state if isinstance(state, (tuple, list)) else ())
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value
    raise TypeError(f"cannot find the row dimension of state of type {type(state).__name__}")


def num_rows(state: Any) -> int:
    """How many rows a model state holds (``len(state)`` if defined, else its first tensor's size(0))."""
    if hasattr(state, "__len__") and not isinstance(state, (tuple, list)):
        return len(state)
    return _leading_tensor(state).size(0)


def _attention(state: Any) -> torch.Tensor:
    attention = getattr(state, "attention", None)
    if attention is None:
        raise ValueError("return_attention=True but the model state reports no attention")
    return attention.float()


def _bind(processors: Sequence[Processor], row_batch: torch.Tensor) -> list[Processor]:
    """Processors fitted to the current row layout (row i belongs to batch row row_batch[i])."""
    return [p.for_rows(row_batch) if hasattr(p, "for_rows") else p for p in processors]


class _Scratch:
    """The search's own copy of each step's log-probs, for the processors to edit in place: the model's
    tensor is never touched (unless the model says it is fresh), and the buffer is reused while the row
    count stays the same."""

    def __init__(self, processors: Sequence[Processor], model: StepModel) -> None:
        self.processors = processors
        self.buffer: torch.Tensor | None = None
        self.in_place = bool(getattr(model, "step_output_is_fresh", False))

    def bind(self, processors: Sequence[Processor]) -> None:
        self.processors = processors

    def __call__(self, generated: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        if not self.processors:
            return log_probs
        if self.in_place:
            return apply_processors_(self.processors, generated, log_probs)
        if self.buffer is None or self.buffer.shape != log_probs.shape or self.buffer.dtype != log_probs.dtype:
            self.buffer = torch.empty_like(log_probs)
        self.buffer.copy_(log_probs)
        return apply_processors_(self.processors, generated, self.buffer)


def _resolve(config: GenerationConfig, processors: Sequence[Processor] | None) -> list[Processor]:
    return build_processors(config) if processors is None else list(processors)


class _Kept:
    """The best ``size`` hypotheses of each batch row, held as tensors so merging is one sort per step.

    Attention is not copied along: a kept hypothesis records ``origin``, the row that generated its last
    token at step ``length - 1``, and :class:`_AttentionTrail` walks the back-pointers from there once,
    for the hypotheses returned only.
    """

    def __init__(self, batch: int, size: int, max_len: int, device: torch.device) -> None:
        self.size, self.max_len = size, max_len
        self.scores = torch.full((batch, size), NEG_INF, device=device)  # [B, K]
        self.tokens = torch.zeros(batch, size, max_len, dtype=torch.long, device=device)  # [B, K, T]
        self.lengths = torch.zeros(batch, size, dtype=torch.long, device=device)
        self.finished = torch.zeros(batch, size, dtype=torch.bool, device=device)
        self.origin = torch.zeros(batch, size, dtype=torch.long, device=device)  # [B, K] row at step length-1

    def worst(self, rows: torch.Tensor) -> torch.Tensor:
        return self.scores[rows, -1]

    def merge(self, rows: torch.Tensor, scores: torch.Tensor, tokens: torch.Tensor, finished: bool,
              origin: torch.Tensor | None = None) -> None:
        """rows: [R] batch rows (distinct); scores: [R, C]; tokens: [R, C, t]; origin: [R, C] (see class)."""
        r, c, t = tokens.shape
        all_scores = torch.cat([self.scores[rows], scores], dim=1)  # [R, K+C]
        # stable: on ties, what was kept earlier stays ahead
        order = all_scores.sort(dim=1, descending=True, stable=True).indices[:, : self.size]  # [R, K]
        padded = tokens.new_zeros(r, c, self.max_len)
        padded[:, :, :t] = tokens
        self.scores[rows] = all_scores.gather(1, order)
        self.tokens[rows] = _pick(torch.cat([self.tokens[rows], padded], dim=1), order)
        self.lengths[rows] = torch.cat([self.lengths[rows], self.lengths.new_full((r, c), t)], 1).gather(1, order)
        self.finished[rows] = torch.cat(
            [self.finished[rows], self.finished.new_full((r, c), finished)], 1).gather(1, order)
        if origin is None:
            origin = self.origin.new_zeros(r, c)
        self.origin[rows] = torch.cat([self.origin[rows], origin], 1).gather(1, order)

    def results(self, count: int, trail: _AttentionTrail | None = None) -> list[list[Hypothesis]]:
        attention = trail.follow(self.origin[:, :count], self.lengths[:, :count]) if trail is not None else None
        out = []
        for b in range(self.scores.size(0)):
            hyps = [self._hypothesis(b, j, attention) for j in range(count)
                    if j == 0 or self.scores[b, j] > NEG_INF]
            out.append(hyps)
        return out

    def _hypothesis(self, b: int, j: int, attention: torch.Tensor | None) -> Hypothesis:
        n = int(self.lengths[b, j])
        return Hypothesis(self.tokens[b, j, :n].tolist(), float(self.scores[b, j]), bool(self.finished[b, j]),
                          attention[b, j, :n].cpu() if attention is not None else None)


class _AttentionTrail:
    """Every step's attention and the back-pointers between steps' rows, so a hypothesis's attention is
    gathered once at the end instead of being copied along with every live beam at every step (which
    costs O(T^2 * S) per beam and showed up as a tenth of a batch's decoding time)."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []  # step j: [N_j, S], the attention of each row at step j
        self.parents: list[torch.Tensor] = []  # parents[j]: [N_{j+1}], the step-j row each step-(j+1) row continues

    def record(self, attention: torch.Tensor) -> None:
        self.steps.append(attention)

    def advance(self, parent: torch.Tensor) -> None:
        self.parents.append(parent)

    def parent_of(self, rows: torch.Tensor, step: int) -> torch.Tensor:
        """The step ``step - 1`` row that the step-``step`` ``rows`` continue (``rows`` itself at step 0)."""
        return self.parents[step - 1][rows] if step > 0 else rows

    def follow(self, origin: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Attention [..., T, S] of hypotheses whose token ``length - 1`` came from row ``origin`` of that
        step (shapes [...]); rows past a hypothesis's length are 0."""
        flat_origin, flat_len = origin.reshape(-1), lengths.reshape(-1)  # [M]
        longest = int(flat_len.max()) if flat_len.numel() else 0
        out = self.steps[0].new_zeros(flat_origin.numel(), max(longest, 1), self.steps[0].size(-1))  # [M, T, S]
        row = torch.zeros_like(flat_origin)  # each chain's row at step j (0, a valid row, until it starts)
        for j in range(longest - 1, -1, -1):
            if j < longest - 1:  # chains begun at a later step move back to the row they continue
                row = torch.where(flat_len - 1 > j, self.parents[j][row], row)
            row = torch.where(flat_len - 1 == j, flat_origin, row)
            out[:, j] = torch.where((flat_len > j)[:, None], self.steps[j][row], 0.0)
        return out.view(*origin.shape, out.size(1), out.size(2))


def _pick(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """values[r, order[r, j], ...] for every r, j."""
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand(*order.shape, *values.shape[2:])
    return values.gather(1, index)


_CHUNK = 64


def row_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores.topk(k, dim=1)`` for wide rows, several times faster on CPU (sorted, best first).

    ``topk`` over a whole vocabulary costs about as much as the output layer. The k best scores lie in
    the k chunks of 64 with the highest maxima, so one cheap vectorised ``amax`` pass selects k chunks
    (plus the ragged tail) and ``topk`` runs over those few candidates only.
    """
    n, width = scores.shape
    main = width - width % _CHUNK
    if main // _CHUNK <= k:  # too narrow to gain anything
        return scores.topk(k, dim=1)
    maxima = scores[:, :main].view(n, main // _CHUNK, _CHUNK).amax(dim=2)  # [N, M]
    chunks = maxima.topk(k, dim=1).indices  # [N, k]
    offsets = torch.arange(_CHUNK, device=scores.device)
    index = (chunks[:, :, None] * _CHUNK + offsets).view(n, k * _CHUNK)  # [N, k * 64] candidate ids
    if main < width:
        index = torch.cat([index, torch.arange(main, width, device=scores.device).expand(n, -1)], dim=1)
    values, picked = scores.gather(1, index).topk(k, dim=1)
    return values, index.gather(1, picked)


def _best_possible(best: torch.Tensor, generated: int, max_len: int, config: GenerationConfig) -> torch.Tensor:
    """Highest score a live beam with summed score ``best`` and ``generated`` tokens could still reach."""
    lp = config.length_penalty
    if config.early_stopping == "never":
        # future log-probs are <= 0, so over final lengths L in [generated+1, max_len] the normalised score
        # is bounded by best / L**lp, which is monotone in L: check both ends.
        shortest = min(generated + 1, max_len)
        return torch.maximum(best / shortest**lp, best / max_len**lp)
    return best / generated**lp  # HF heuristic: as if the beam ended now


@torch.inference_mode()
def beam_search(
    model: StepModel,
    state: Any,
    config: GenerationConfig,
    processors: Sequence[Processor] | None = None,
    *,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Batched beam search: one list per batch row of ``state``, best first, ``num_return_sequences`` long
    (shorter only when fewer replies have a finite score). ``processors`` default to the config's."""
    if config.do_sample:
        raise ValueError("config.do_sample is set: use sample()")
    if config.num_beams == 1:
        return greedy_search(model, state, config, processors, return_attention=return_attention)
    procs = _resolve(config, processors)
    batch, k, max_len = num_rows(state), config.num_beams, config.max_new_tokens
    device = _leading_tensor(state).device
    eos, lp = config.eos_token_id, config.length_penalty

    active = torch.arange(batch, device=device)  # batch rows still searching
    row_batch = active.repeat_interleave(k)  # [N] batch row of each live beam
    process = _Scratch(_bind(procs, row_batch), model)
    beam_scores = torch.full((batch, k), NEG_INF, device=device)
    beam_scores[:, 0] = 0.0  # all beams start identical: keep one so candidates are distinct
    beam_scores = beam_scores.view(-1)  # [N]
    tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)  # [N, t]
    last = torch.full((batch,), config.bos_token_id, dtype=torch.long, device=device)
    kept = _Kept(batch, k, max_len, device)
    first_beam = torch.arange(batch, device=device) * k  # [A] first beam row of each active request
    trail = _AttentionTrail() if return_attention else None

    for t in range(max_len):
        log_probs, state = model.step(last, state)  # [N, V]
        if t == 0:  # the k beams of a request start identical: step once per request, then expand
            log_probs, state = log_probs.index_select(0, row_batch), model.reorder(state, row_batch)
        scores = process(tokens, log_probs)
        n_rows, width = active.numel(), min(2 * k, scores.size(1))
        # The 2k best continuations of a request lie among the 2k best of each of its beams: two small
        # top-k passes instead of one over k * V scores per request.
        beam_top, beam_ids = row_topk(scores, width)  # [N, W]
        total = (beam_top + beam_scores[:, None]).view(n_rows, k * width)
        top_scores, top_ids = total.topk(min(2 * k, k * width), dim=1)  # [A, C]
        parent = top_ids // width + first_beam[:, None]  # [A, C] beam row
        token = beam_ids.view(n_rows, k * width).gather(1, top_ids)
        is_eos = token == eos
        any_eos = bool(is_eos.any())  # rare until replies end: skip the EOS bookkeeping without one
        if trail is not None:
            trail.record(_attention(state))  # [N, S]

        # EOS among the k best candidates ends a hypothesis (t tokens + EOS scored)
        ends = is_eos[:, :k] & torch.isfinite(top_scores[:, :k]) if any_eos else None
        if ends is not None and bool(ends.any()):
            ended_parent = parent[:, :k]
            kept.merge(active, torch.where(ends, top_scores[:, :k] / (t + 1) ** lp, NEG_INF),
                       tokens[ended_parent], True, trail.parent_of(ended_parent, t) if trail is not None else None)

        # the k best non-EOS candidates live on (EOS ones are pushed behind, order otherwise kept)
        if any_eos:
            rank = torch.arange(top_ids.size(1), device=device)
            pick = (is_eos.long() * top_ids.size(1) + rank).argsort(dim=1)[:, :k]  # [A, k]
            live_scores = top_scores.gather(1, pick).masked_fill(is_eos.gather(1, pick), NEG_INF)
            parent, token = parent.gather(1, pick), token.gather(1, pick)
        else:
            live_scores, parent, token = top_scores[:, :k], parent[:, :k], token[:, :k]

        if t + 1 == max_len:  # out of room: the live beams compete as cut-off replies
            kept.merge(active, live_scores / max_len**lp, torch.cat([tokens[parent], token[:, :, None]], dim=2),
                       False, parent)
            break

        if config.early_stopping is True:
            done = torch.isfinite(kept.worst(active))
        else:
            done = kept.worst(active) >= _best_possible(live_scores.max(dim=1).values, t + 1, max_len, config)
        if bool(done.any()):
            keep = ~done
            active, parent, token, live_scores = active[keep], parent[keep], token[keep], live_scores[keep]
            if active.numel() == 0:
                break
            first_beam = torch.arange(active.numel(), device=device) * k
            process.bind(_bind(procs, active.repeat_interleave(k)))

        flat = parent.reshape(-1)  # [N'] source row of every surviving beam
        tokens = torch.cat([tokens[flat], token.reshape(-1, 1)], dim=1)
        if trail is not None:
            trail.advance(flat)
        beam_scores = live_scores.reshape(-1)
        state = model.reorder(state, flat)
        last = token.reshape(-1)

    return kept.results(config.num_return_sequences, trail)


Chooser = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@torch.inference_mode()
def greedy_search(
    model: StepModel,
    state: Any,
    config: GenerationConfig,
    processors: Sequence[Processor] | None = None,
    *,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Always the best next token: one hypothesis per batch row."""
    if config.num_return_sequences != 1:
        raise ValueError("greedy search returns one sequence; set num_return_sequences=1 or use beams")

    def best(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, ids = scores.max(dim=1)
        return ids, values

    return _decode_rows(model, state, config, _resolve(config, processors), best, 1, return_attention)


@torch.inference_mode()
def sample(
    model: StepModel,
    state: Any,
    config: GenerationConfig,
    processors: Sequence[Processor] | None = None,
    *,
    return_attention: bool = False,
    generator: torch.Generator | None = None,
) -> list[list[Hypothesis]]:
    """Ancestral sampling: ``num_return_sequences`` independent draws per batch row, best score first."""
    if config.num_beams != 1:
        raise ValueError("sample() draws with num_beams=1")

    def draw(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = scores.log_softmax(dim=1)
        probs = log_probs.exp().nan_to_num(0.0)
        dead = probs.sum(dim=1) == 0  # every token blocked: end the row
        probs[dead, config.eos_token_id] = 1.0
        ids = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return ids, log_probs.gather(1, ids[:, None]).squeeze(1).nan_to_num(NEG_INF)

    procs = _resolve(config, processors)
    return _decode_rows(model, state, config, procs, draw, config.num_return_sequences, return_attention)


def decode(
    model: StepModel,
    state: Any,
    config: GenerationConfig,
    processors: Sequence[Processor] | None = None,
    *,
    return_attention: bool = False,
    generator: torch.Generator | None = None,
) -> list[list[Hypothesis]]:
    """The search ``config`` asks for: sampling when ``do_sample``, else beam search (which is greedy search
    with one beam). The one place the choice is made; callers need not repeat it."""
    if config.do_sample:
        return sample(model, state, config, processors, return_attention=return_attention, generator=generator)
    return beam_search(model, state, config, processors, return_attention=return_attention)


def score_replies(
    model: StepModel,
    state: Any,
    config: GenerationConfig,
    processors: Sequence[Processor],
    replies: Sequence[Sequence[int]],
    *,
    return_attention: bool = False,
) -> list[Hypothesis | None]:
    """Row ``i``'s ``replies[i]`` (ids without BOS/EOS) as a hypothesis scored the way ``config``'s search
    scores what it finds: the same processors (bound to the rows of ``state``) and length normalisation.
    None where serving could not write it: a processor rules a token out, or it is longer than
    ``max_new_tokens`` allows."""
    forced = dataclasses.replace(config, num_beams=1, num_return_sequences=1, do_sample=False)
    rows = greedy_search(model, state, forced, [*processors, ForceTokens(replies, config.eos_token_id)],
                         return_attention=return_attention)
    return [hyps[0] if hyps and hyps[0].finished and hyps[0].score > NEG_INF else None for hyps in rows]


def _decode_rows(
    model: StepModel, state: Any, config: GenerationConfig, procs: list[Processor], choose: Chooser,
    copies: int, return_attention: bool,
) -> list[list[Hypothesis]]:
    """One token per row per step for ``copies`` copies of every batch row; ended rows leave the state."""
    batch, max_len, lp, eos = num_rows(state), config.max_new_tokens, config.length_penalty, config.eos_token_id
    device = _leading_tensor(state).device
    row_batch = torch.arange(batch, device=device).repeat_interleave(copies)  # [N]
    if copies > 1:
        state = model.reorder(state, row_batch)
    alive = torch.arange(batch * copies, device=device)  # original row of each live row
    process = _Scratch(_bind(procs, row_batch), model)
    tokens = torch.zeros(alive.numel(), 0, dtype=torch.long, device=device)
    sums = torch.zeros(alive.numel(), device=device)
    last = torch.full((alive.numel(),), config.bos_token_id, dtype=torch.long, device=device)
    kept = _Kept(batch * copies, 1, max_len, device)  # one slot per row
    trail = _AttentionTrail() if return_attention else None

    for t in range(max_len):
        log_probs, state = model.step(last, state)
        token, token_score = choose(process(tokens, log_probs))
        sums = sums + token_score
        if trail is not None:
            trail.record(_attention(state))
        ended = token == eos
        if bool(ended.any()):
            origin = trail.parent_of(ended.nonzero().squeeze(1), t)[:, None] if trail is not None else None
            kept.merge(alive[ended], (sums[ended] / (t + 1) ** lp)[:, None], tokens[ended][:, None], True, origin)
        tokens = torch.cat([tokens, token[:, None]], dim=1)
        if t + 1 == max_len:
            cut = ~ended
            if bool(cut.any()):
                kept.merge(alive[cut], (sums[cut] / max_len**lp)[:, None], tokens[cut][:, None], False,
                           cut.nonzero().squeeze(1)[:, None])
            break
        if bool(ended.any()):
            keep = (~ended).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            alive, tokens, sums, token = alive[keep], tokens[keep], sums[keep], token[keep]
            state = model.reorder(state, keep)
            process.bind(_bind(procs, row_batch[alive]))
            if trail is not None:
                trail.advance(keep)
        elif trail is not None:
            trail.advance(torch.arange(token.numel(), device=device))
        last = token

    per_row = [hyps[0] for hyps in kept.results(1, trail)]
    out = []
    for b in range(batch):
        group = per_row[b * copies:(b + 1) * copies]
        out.append(sorted(group, key=lambda h: h.score, reverse=True))
    return out
