"""Attentional RNN encoder-decoder with a pointer-generator copy mechanism.

Encoder: shared embedding -> stacked bidirectional GRU/LSTM (residual + LayerNorm between layers).
Decoder: stacked GRU/LSTM cells with input feeding (Luong et al., 2015), Luong "general" or Bahdanau
additive attention over the source, and a copy gate p_gen mixing the vocabulary distribution with the
attention distribution over source tokens (See et al., 2017), so out-of-vocabulary order ids and names in
the conversation can be written in the reply.

Search code only sees ``encode`` / ``step`` / ``reorder`` and ``DecoderState.attention``.
Shapes: B batch (sources), N decoding rows (batch x beams), G = N // B rows per source, S source length,
T target length, E emb_dim, H hidden, L decoder layers, V vocabulary, X = V + most OOV source tokens of
any row.

Decoding speed (see ``benchmarks/generation.py``): the encoder outputs are kept once per source, not once
per beam -- the beams of a source are consecutive rows, so attention is a grouped ``bmm`` and ``reorder``
copies only the small recurrent state; the copy mixture is computed in log space, touching the full
vocabulary only with a log-softmax, and the source positions with a gather/scatter.

Training speed (see ``benchmarks/training.py``): the teacher-forced loss computes the same numbers by a
different route -- unpacked encoder runs, the embedding half of the decoder's input projection batched
over all steps, and the output layer and copy mixture only at real target positions, never as [B, T, X].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from chatbot.model.batch import Seq2SeqBatch
from chatbot.text.vocab import PAD_ID, UNK_ID

_PROB_FLOOR = 1e-30  # keeps log() finite where a mixture probability underflows
_LOG_PROB_FLOOR = math.log(_PROB_FLOOR)


@dataclass(frozen=True)
class Seq2SeqConfig:
    vocab_size: int = 12_000  # ~8.2M parameters at the default sizes
    emb_dim: int = 256
    hidden: int = 512  # decoder size; each encoder direction has hidden // 2
    enc_layers: int = 2
    dec_layers: int = 1
    rnn: Literal["gru", "lstm"] = "gru"
    attention: Literal["luong", "bahdanau"] = "luong"
    dropout: float = 0.2
    copy: bool = True  # pointer-generator gate; False gives a plain attentional seq2seq
    tie_embeddings: bool = True  # output layer reuses the embedding matrix (via a H->E projection if needed)

    def __post_init__(self) -> None:
        if self.rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm', not {self.rnn!r}")
        if self.attention not in ("luong", "bahdanau"):
            raise ValueError(f"attention must be 'luong' or 'bahdanau', not {self.attention!r}")
        if self.hidden % 2:
            raise ValueError("hidden must be even (two encoder directions of hidden // 2)")
        if min(self.vocab_size, self.emb_dim, self.hidden, self.enc_layers, self.dec_layers) < 1:
            raise ValueError("sizes and layer counts must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecoderState:
    """Everything one decoding step needs.

    Per-row tensors (leading N) are the recurrent state. Per-source tensors (leading B) are computed once
    by ``encode``: row ``n`` reads source ``n // G`` with ``G = N // B`` (the beams of a source are
    consecutive rows), so beams never copy the encoder outputs.
    """

    hidden: torch.Tensor  # [N, L, H]
    feed: torch.Tensor  # [N, H] previous attentional hidden state (input feeding)
    enc_out: torch.Tensor  # [B, S, H]
    enc_keys: torch.Tensor  # [B, S, H] attention projection of enc_out
    src_bias: torch.Tensor  # [B, S] 0 on real tokens, -inf on padding (added to attention scores)
    src_ext_ids: torch.Tensor  # [B, S] extended ids, where copied probability mass goes
    copy_groups: torch.Tensor  # [B, S, S] 1 where two source positions hold the same extended id
    ext_size: int  # X, the width of step()'s log-probs
    cell: torch.Tensor | None = None  # [N, L, H] LSTM only
    attention: torch.Tensor | None = None  # [N, S] attention of the last step; padding gets exactly 0

    def __len__(self) -> int:
        return self.hidden.size(0)

    @property
    def group(self) -> int:
        """G, the number of consecutive rows that share one source."""
        return self.hidden.size(0) // self.enc_out.size(0)


class Encoder(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        rnn_cls = nn.GRU if cfg.rnn == "gru" else nn.LSTM
        self.layers = nn.ModuleList(
            rnn_cls(cfg.emb_dim if i == 0 else cfg.hidden, cfg.hidden // 2, batch_first=True, bidirectional=True)
            for i in range(cfg.enc_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.hidden) for _ in range(cfg.enc_layers))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, S, E], mask [B, S] -> outputs [B, S, H], summary [B, H] (last layer, both directions)."""
        lengths = mask.sum(1).cpu()
        padded = bool((lengths < x.size(1)).any())
        final = None
        for i, (rnn, norm) in enumerate(zip(self.layers, self.norms)):
            if padded:  # packing keeps padding out of the recurrences: a row encodes exactly as it would alone
                packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                out, final = rnn(packed)
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))  # [B, S, H]
            else:  # same result without the packing work (always the case for a single request)
                out, final = rnn(x)
            out = self.drop(out)
            x = norm(out) if i == 0 else norm(x + out)
        h_n = final[0] if isinstance(final, tuple) else final  # [2, B, H/2]
        return x, torch.cat([h_n[0], h_n[1]], dim=-1)


class Seq2Seq(nn.Module):
    step_output_is_fresh = True  # every step returns a new tensor: searches may edit it in place

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        cfg = self.config = config
        H, E, V = cfg.hidden, cfg.emb_dim, cfg.vocab_size
        self.embedding = nn.Embedding(V, E, padding_idx=PAD_ID)
        nn.init.normal_(self.embedding.weight, std=E**-0.5)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(cfg)
        self.bridge = nn.Linear(H, cfg.dec_layers * H)  # encoder summary -> initial decoder state
        cell_cls = nn.GRUCell if cfg.rnn == "gru" else nn.LSTMCell
        self.cells = nn.ModuleList(cell_cls(E + H if i == 0 else H, H) for i in range(cfg.dec_layers))
        self.dec_norms = nn.ModuleList(nn.LayerNorm(H) for _ in range(cfg.dec_layers - 1))
        if cfg.attention == "luong":
            self.attn_key = nn.Linear(H, H, bias=False)  # "general" score: q . W k
        else:
            self.attn_key = nn.Linear(H, H)
            self.attn_query = nn.Linear(H, H, bias=False)
            self.attn_v = nn.Linear(H, 1, bias=False)
        self.combine = nn.Linear(2 * H, H)  # [context; query] -> attentional hidden state
        if cfg.tie_embeddings:
            self.out_proj = nn.Linear(H, E) if H != E else nn.Identity()
            self.out_bias = nn.Parameter(torch.zeros(V))
        else:
            self.lm_head = nn.Linear(H, V)
        if cfg.copy:
            self.copy_gate = nn.Linear(2 * H + E, 1)  # p_gen from [context; query; input embedding]

    # --- building blocks -------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Copied ids (>= V) are read as <unk>: the model has no embedding for them."""
        return self.drop(self.embedding(ids.masked_fill(ids >= self.config.vocab_size, UNK_ID)))

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.config.tie_embeddings:
            return F.linear(self.out_proj(h), self.embedding.weight, self.out_bias)
        return self.lm_head(h)

    def _attend(self, query: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """query [N, H] -> attention [B, G, S] of each row over its own source; padding gets exactly 0."""
        B, _, H = state.enc_keys.shape
        q = query.view(B, -1, H)  # [B, G, H]
        bias = state.src_bias.unsqueeze(1)  # [B, 1, S]
        if self.config.attention == "luong":
            scores = torch.baddbmm(bias, q, state.enc_keys.transpose(1, 2))  # [B, G, S]
        else:
            energy = torch.tanh(state.enc_keys.unsqueeze(1) + self.attn_query(q).unsqueeze(2))  # [B, G, S, H]
            scores = self.attn_v(energy).squeeze(-1) + bias  # [B, G, S]
        return torch.softmax(scores, dim=-1)

    def _advance(self, x: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, ...]:
        """One decoder step from the input embedding x [N, E].

        Returns (attentional hidden [N, H], context [N, H], query [N, H], attention [N, S], new state).
        """
        inp = torch.cat([x, state.feed], dim=-1)  # input feeding: [N, E + H]
        hs, cs = [], []
        for i, cell in enumerate(self.cells):
            if state.cell is None:
                h = cell(inp, state.hidden[:, i])
            else:
                h, c = cell(inp, (state.hidden[:, i], state.cell[:, i]))
                cs.append(c)
            hs.append(h)
            out = self.drop(h)
            inp = out if i == 0 else self.dec_norms[i - 1](inp + out)  # residual between stacked layers
        query = inp  # [N, H]
        attn = self._attend(query, state)  # [B, G, S]
        ctx = torch.bmm(attn, state.enc_out).view_as(query)  # [N, H]
        attn = attn.view(query.size(0), -1)  # [N, S]
        h_tilde = self.drop(torch.tanh(self.combine(torch.cat([ctx, query], dim=-1))))  # [N, H]
        new_state = replace(
            state,
            hidden=torch.stack(hs, dim=1),
            cell=torch.stack(cs, dim=1) if cs else None,
            feed=h_tilde,
            attention=attn,
        )
        return h_tilde, ctx, query, attn, new_state

    def _log_probs(
        self,
        h_tilde: torch.Tensor,  # [B, R, H]
        ctx: torch.Tensor,  # [B, R, H]
        query: torch.Tensor,  # [B, R, H]
        x: torch.Tensor,  # [B, R, E]
        attn: torch.Tensor,  # [B, R, S]
        state: DecoderState,
    ) -> torch.Tensor:
        """Log-probabilities [B, R, X] of the final distribution for R rows (beams or target positions) per
        source; ids no row can produce get -inf.

        The mixture ``p_gen * softmax(logits) + (1 - p_gen) * copy`` is formed in log space: the vocabulary
        part is one log-softmax shifted by ``log p_gen``, and only the S source positions mix in copied
        mass. Values equal ``log(max(p, 1e-30))`` of the probability-space mixture.
        """
        V, X = self.config.vocab_size, state.ext_size
        logits = self._logits(h_tilde)  # [B, R, V]
        if not self.config.copy:
            log_probs = F.log_softmax(logits, dim=-1)
            return F.pad(log_probs, (0, X - V), value=float("-inf")) if X > V else log_probs
        gate = self.copy_gate(torch.cat([ctx, query, x], dim=-1))  # [B, R, 1], p_gen = sigmoid(gate)
        log_probs = F.log_softmax(logits, dim=-1)  # [B, R, V]
        if torch.is_grad_enabled():
            log_probs = (log_probs + F.logsigmoid(gate)).clamp_min(_LOG_PROB_FLOOR)
        else:  # decoding: edit in place, no [B, R, V] temporaries
            log_probs.add_(F.logsigmoid(gate)).clamp_min_(_LOG_PROB_FLOOR)
        if X > V:  # extended slots: only copying reaches them; those of no source token stay -inf
            log_probs = F.pad(log_probs, (0, X - V), value=float("-inf"))  # [B, R, X]
        ids = state.src_ext_ids.unsqueeze(1).expand_as(attn)  # [B, R, S]
        # copy mass of every source position's id, summed over the positions holding that same id
        copied = torch.bmm(torch.sigmoid(-gate) * attn, state.copy_groups)  # [B, R, S]
        mixed = (log_probs.gather(-1, ids).exp() + copied).clamp_min(_PROB_FLOOR).log()  # [B, R, S]
        if not log_probs.requires_grad:  # inference: duplicate ids write the same value
            return log_probs.scatter_(-1, ids, mixed)
        # training: the gathered tensor is needed for backward (no in-place), and the gradient of an id
        # must flow back through one of its source positions only
        first = (state.copy_groups.tril(-1).amax(dim=-1) == 0).unsqueeze(1)  # [B, 1, S]
        return log_probs.scatter(-1, ids, torch.where(first, mixed, mixed.detach()))

    # --- step interface for search ---------------------------------------------------------------
    def encode(self, batch: Seq2SeqBatch) -> DecoderState:
        enc_out, summary = self.encoder(self._embed(batch.src_ids), batch.src_mask)  # [B, S, H], [B, H]
        return self._decoder_state(batch, enc_out, summary)

    def _decoder_state(self, batch: Seq2SeqBatch, enc_out: torch.Tensor, summary: torch.Tensor) -> DecoderState:
        B, H, L = enc_out.size(0), self.config.hidden, self.config.dec_layers
        hidden = torch.tanh(self.bridge(summary)).view(B, L, H)
        ext = batch.src_ext_ids
        return DecoderState(
            hidden=hidden,
            cell=torch.zeros_like(hidden) if self.config.rnn == "lstm" else None,
            feed=enc_out.new_zeros(B, H),
            enc_out=enc_out,
            enc_keys=self.attn_key(enc_out),
            src_bias=enc_out.new_zeros(batch.src_mask.shape).masked_fill(~batch.src_mask, float("-inf")),
            src_ext_ids=ext,
            copy_groups=(ext.unsqueeze(2) == ext.unsqueeze(1)).to(enc_out.dtype),  # [B, S, S]
            ext_size=batch.ext_vocab_size,
        )

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """tokens [N] (extended ids allowed) -> (log_probs [N, X], state with .attention [N, S])."""
        x = self._embed(tokens)  # [N, E]
        h_tilde, ctx, query, attn, state = self._advance(x, state)
        B = state.enc_out.size(0)
        per_source = (t.view(B, -1, t.size(-1)) for t in (h_tilde, ctx, query, x, attn))  # [B, G, ...]
        return self._log_probs(*per_source, state).view(len(state), -1), state

    @staticmethod
    def reorder(state: DecoderState, index: torch.Tensor) -> DecoderState:
        """Select / duplicate rows (beam expansion, pruning): index [N'] into the N rows.

        Per-source tensors are copied only when the set of sources changes (a request finished); while
        the new rows still come in equal consecutive groups per source -- beam search -- they are shared.
        Any other layout (rows of one source scattered or uneven) gets one source copy per row.
        """
        src = torch.div(index, state.group, rounding_mode="floor")  # [N'] source of every new row
        sources, counts = torch.unique_consecutive(src, return_counts=True)
        grouped = src.numel() > 0 and bool((counts == counts[0]).all())
        if grouped and sources.numel() == state.enc_out.size(0) and bool((sources == torch.arange(
                sources.numel(), device=sources.device)).all()):
            changes = {}  # same sources in the same order: nothing to copy
        else:
            pick = sources if grouped else src
            changes = {name: getattr(state, name).index_select(0, pick)
                       for name in ("enc_out", "enc_keys", "src_bias", "src_ext_ids", "copy_groups")}
        for name in ("hidden", "feed", "cell", "attention"):
            value = getattr(state, name)
            if value is not None:
                changes[name] = value.index_select(0, index)
        return replace(state, **changes)

    # --- training ----------------------------------------------------------------------------------
    def _teacher_forced(self, batch: Seq2SeqBatch) -> tuple[DecoderState, torch.Tensor, ...]:
        """Decoder outputs for every target position, fed the gold previous token.

        The same math as ``step`` (``test_reference`` pins it), arranged for training speed: the embedding
        half of layer 0's input projection is one matmul over all T steps, per-step tensors come from
        ``unbind`` (one backward node, not T full-size zero-filled gradients), and only the recurrence, the
        attention and the input-feeding projection stay in the Python loop.
        Returns (state, x [B, T, E], h_tilde, ctx, query [B, T, H], attention [B, T, S]).
        """
        if batch.tgt_in is None:
            raise ValueError("batch has no targets")
        state = self._decoder_state(batch, *self._encode_unpacked(batch))
        E = self.config.emb_dim
        x_all = self._embed(batch.tgt_in)  # [B, T, E]
        first = self.cells[0]
        gates_x = F.linear(x_all, first.weight_ih[:, :E], first.bias_ih).unbind(1)  # T x [B, 3H or 4H]
        w_feed = first.weight_ih[:, E:]  # [3H or 4H, H], the input-feeding half
        hidden = list(state.hidden.unbind(1))  # L x [B, H]
        cells = list(state.cell.unbind(1)) if state.cell is not None else None
        feed = state.feed
        outputs = []
        for gx in gates_x:
            inp = feed  # layer 0 reads [x; feed]; its x half is already in gx
            for i, cell in enumerate(self.cells):
                gi = torch.addmm(gx, inp, w_feed.t()) if i == 0 else F.linear(inp, cell.weight_ih, cell.bias_ih)
                gh = F.linear(hidden[i], cell.weight_hh, cell.bias_hh)  # [B, 3H or 4H]
                if cells is None:
                    hidden[i] = _gru_update(gi, gh, hidden[i])
                else:
                    hidden[i], cells[i] = _lstm_update(gi, gh, cells[i])
                out = self.drop(hidden[i])
                inp = out if i == 0 else self.dec_norms[i - 1](inp + out)
            query = inp  # [B, H]
            attn = self._attend(query, state).squeeze(1)  # [B, S]
            ctx = torch.bmm(attn.unsqueeze(1), state.enc_out).squeeze(1)  # [B, H]
            feed = self.drop(torch.tanh(self.combine(torch.cat([ctx, query], dim=-1))))  # [B, H]
            outputs.append((feed, ctx, query, attn))
        h_tilde, ctx, query, attn = (torch.stack(seq, dim=1) for seq in zip(*outputs))
        return state, x_all, h_tilde, ctx, query, attn

    def _encode_unpacked(self, batch: Seq2SeqBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``Encoder.forward`` for training: outputs [B, S, H] and summary [B, H], equal to the packed run.

        On CPU, the backward of a packed RNN zero-fills a gradient the size of the whole input projection
        at every time step (O(S^2)); unpacked runs avoid that. Each direction runs separately, the reverse
        one on every row reversed within its own length, so no real position ever reads padding.
        """
        enc, mask = self.encoder, batch.src_mask
        B, S = mask.shape
        lengths = mask.sum(1, keepdim=True)  # [B, 1]
        pos = torch.arange(S, device=mask.device).expand(B, S)
        rev = torch.where(pos < lengths, lengths - 1 - pos, pos)  # [B, S] within-length reversal (its own inverse)
        last = (lengths - 1).unsqueeze(-1)  # [B, 1, 1] each row's final real position
        keep = mask.unsqueeze(-1).to(torch.get_default_dtype())  # [B, S, 1]
        x = self._embed(batch.src_ids)  # [B, S, E]
        finals = []
        for i, (rnn, norm) in enumerate(zip(enc.layers, enc.norms)):
            w = dict(rnn.named_parameters())
            h0 = x.new_zeros(1, B, rnn.hidden_size)
            outs, finals = [], []
            for suffix, inp in (("", x), ("_reverse", _reorder_rows(x, rev))):
                params = [w[f"{name}_l0{suffix}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                if isinstance(rnn, nn.GRU):
                    out = torch._VF.gru(inp, h0, params, True, 1, 0.0, self.training, False, True)[0]
                else:
                    out = torch._VF.lstm(inp, (h0, h0), params, True, 1, 0.0, self.training, False, True)[0]
                finals.append(out.gather(1, last.expand(-1, -1, out.size(-1))).squeeze(1))  # [B, H/2]
                outs.append(out if not suffix else _reorder_rows(out, rev))
            out = enc.drop(torch.cat(outs, dim=-1) * keep)  # padding reads 0, as after pad_packed_sequence
            x = norm(out) if i == 0 else norm(x + out)
        return x, torch.cat(finals, dim=-1)

    def target_log_probs(self, batch: Seq2SeqBatch, teacher_forcing_ratio: float = 1.0) -> torch.Tensor:
        """Log-probabilities [B, T, X] of every target position (teacher forced unless ratio < 1)."""
        if batch.tgt_in is None:
            raise ValueError("batch has no targets")
        if teacher_forcing_ratio >= 1.0:
            state, x_all, h_tilde, ctx, query, attn = self._teacher_forced(batch)
            return self._log_probs(h_tilde, ctx, query, x_all, attn, state)
        # Scheduled sampling (Bengio et al., 2015): per step, feed the model's own previous prediction.
        state = self.encode(batch)
        out = []
        tokens = batch.tgt_in[:, 0]
        for t in range(batch.tgt_in.size(1)):
            if t > 0:
                use_model = torch.rand(()) >= teacher_forcing_ratio
                tokens = out[-1].argmax(-1).detach() if use_model else batch.tgt_in[:, t]
            log_probs, state = self.step(tokens, state)
            out.append(log_probs)
        return torch.stack(out, dim=1)

    def _target_scores(self, batch: Seq2SeqBatch, vocab_sum: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log p(target token) [M], sum of log p over the V vocabulary ids [M] or None) at the M real target
        positions, teacher forced.

        Equal to reading ``target_log_probs`` at those positions, without building its [B, T, X] tensor:
        the output layer runs on real positions only (padding is often most of a batch), and the copy
        mixture is evaluated just where the loss reads it -- the target id, and the source ids for the sum.
        """
        state, x_all, h_tilde, ctx, query, attn = self._teacher_forced(batch)
        V, T = self.config.vocab_size, batch.tgt_in.size(1)  # type: ignore[union-attr]
        rows = batch.tgt_mask.flatten().nonzero().squeeze(1)  # type: ignore[union-attr]  # [M]

        def real(t: torch.Tensor) -> torch.Tensor:  # [B, T, ...] -> [M, ...]
            return t.flatten(0, 1).index_select(0, rows)

        target = real(batch.tgt_out)  # type: ignore[arg-type]  # [M]
        in_vocab = target < V
        vocab_lp = F.log_softmax(self._logits(real(h_tilde)), dim=-1)  # [M, V]
        if not self.config.copy:
            # Without a copy gate an out-of-vocabulary target word can only be written as <unk>.
            lp = vocab_lp.gather(1, target.masked_fill(~in_vocab, UNK_ID).unsqueeze(1)).squeeze(1)
            return lp, vocab_lp.sum(-1) if vocab_sum else None
        gate = self.copy_gate(torch.cat([ctx, query, x_all], dim=-1))  # [B, T, 1], p_gen = sigmoid(gate)
        base = (vocab_lp + F.logsigmoid(real(gate))).clamp_min(_LOG_PROB_FLOOR)  # [M, V] vocabulary part
        src = rows // T  # [M] the source of every position
        ext = state.src_ext_ids.index_select(0, src)  # [M, S]
        copy_mass = real(torch.sigmoid(-gate) * attn)  # [M, S]
        # the target id: vocabulary part (if any) plus the copy mass of every source position holding it
        hits = ext == target.unsqueeze(1)  # [M, S]
        target_base = base.gather(1, target.clamp_max(V - 1).unsqueeze(1)).squeeze(1)  # [M]
        vocab_p = torch.where(in_vocab, target_base.exp(), torch.zeros_like(target_base))
        mixed = (vocab_p + (copy_mass * hits).sum(1)).clamp_min(_PROB_FLOOR).log()
        no_copy = torch.where(in_vocab, target_base, torch.full_like(target_base, float("-inf")))
        lp = torch.where(hits.any(1), mixed, no_copy)
        if not vocab_sum:
            return lp, None
        # sum over the vocabulary: the plain vocabulary part, corrected at each distinct in-vocabulary
        # source id by its copy mass
        copied = real(torch.bmm(torch.sigmoid(-gate) * attn, state.copy_groups))  # [M, S] mass of each position's id
        src_base = base.gather(1, ext.clamp_max(V - 1))  # [M, S]
        src_vocab = ext < V
        src_mixed = (src_base.exp() * src_vocab + copied).clamp_min(_PROB_FLOOR).log()
        distinct = (state.copy_groups.tril(-1).amax(dim=-1) == 0).index_select(0, src) & src_vocab  # [M, S]
        return lp, base.sum(-1) + ((src_mixed - src_base) * distinct).sum(1)

    def forward(
        self, batch: Seq2SeqBatch, *, label_smoothing: float = 0.0, teacher_forcing_ratio: float = 1.0
    ) -> torch.Tensor:
        """Mean negative log-likelihood per target token (label-smoothed over the vocabulary if asked)."""
        if teacher_forcing_ratio < 1.0:
            log_probs = self.target_log_probs(batch, teacher_forcing_ratio)  # [B, T, X]
            mask = batch.tgt_mask.float()  # type: ignore[union-attr]
            nll = -log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)  # type: ignore[union-attr]
            if label_smoothing > 0:
                smooth = -log_probs[..., : self.config.vocab_size].mean(dim=-1)  # [B, T]
                nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
            return (nll * mask).sum() / mask.sum()
        lp, vocab_sum = self._target_scores(batch, vocab_sum=label_smoothing > 0)  # [M]
        nll = -lp
        if vocab_sum is not None:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * vocab_sum / self.config.vocab_size
        return nll.mean()

    def sequence_log_probs(self, batch: Seq2SeqBatch) -> torch.Tensor:
        """Teacher-forced log-probability of each target token [B, T], 0 at padding (for scoring/eval)."""
        lp, _ = self._target_scores(batch, vocab_sum=False)
        mask = batch.tgt_mask  # type: ignore[union-attr]
        return lp.new_zeros(mask.shape).masked_scatter(mask, lp)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _reorder_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, S, D] with row b's positions taken in the order index [B, S]."""
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def _gru_update(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """nn.GRUCell from its two projections gi, gh [N, 3H] (gate order r, z, n): the new hidden [N, H].

    ``split``/``chunk``, not slicing: a slice's backward zero-fills a full-size gradient every step.
    """
    H = h.size(-1)
    i_rz, i_n = gi.split([2 * H, H], dim=1)
    h_rz, h_n = gh.split([2 * H, H], dim=1)
    r, z = torch.sigmoid(i_rz + h_rz).chunk(2, dim=1)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)


def _lstm_update(gi: torch.Tensor, gh: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTMCell from its two projections gi, gh [N, 4H] (gate order i, f, g, o): new (hidden, cell)."""
    i, f, g, o = (gi + gh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
