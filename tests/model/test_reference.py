"""The fast decoding path computes exactly what the original model did, so checkpoints trained before the
speed work load and decode unchanged.

``reference_*`` below is the original implementation, written out plainly: every decoding row owns a copy
of its source's encoder outputs, the encoder always packs its input, and the copy mixture is formed in
probability space over the whole extended vocabulary (``log(max(p_gen * softmax + copy, 1e-30))``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from chatbot.model import Seq2Seq, Seq2SeqConfig, collate, encode_pair
from chatbot.model.batch import Seq2SeqBatch
from chatbot.text.vocab import UNK_ID, Vocab

torch.set_num_threads(1)

WORDS = ["hi", "where", "is", "my", "order", "please", "check", "it", "thanks", "for", "waiting", "your", "has", "shipped", "?"]
VARIANTS = {
    "default": {},
    "lstm-bahdanau": {"rnn": "lstm", "attention": "bahdanau", "dec_layers": 2},
    "no-copy-untied": {"copy": False, "tie_embeddings": False},
    "tied-no-projection": {"emb_dim": 32, "hidden": 32, "dec_layers": 2},
    "sharp": {},  # logits scaled up so that many probabilities fall under the 1e-30 floor
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build([WORDS], min_freq=1)


def _model(vocab: Vocab, name: str) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = {"vocab_size": len(vocab), "emb_dim": 16, "hidden": 24, "enc_layers": 2, "dec_layers": 1, "dropout": 0.1}
    model = Seq2Seq(Seq2SeqConfig(**{**cfg, **VARIANTS[name]})).eval()
    if name == "sharp":
        with torch.no_grad():
            model.embedding.weight.mul_(40.0)
    return model


def _batch(vocab: Vocab) -> Seq2SeqBatch:
    return collate([
        encode_pair(["<customer>", "where", "is", "my", "order", "A123", "?"], ["your", "order", "A123", "has", "shipped"], vocab),
        encode_pair(["hi"], ["hi"], vocab),  # short: padding in the other rows' length
        encode_pair(["<customer>", "check", "Bob", "order", "Z9", "please", "Z9"], ["thanks", "Bob", "Z9", "Z9"], vocab),
    ], vocab)


def reference_encode(m: Seq2Seq, batch: Seq2SeqBatch) -> dict:
    V, S = m.config.vocab_size, batch.src_ids.size(1)
    x = m.embedding(batch.src_ids.masked_fill(batch.src_ids >= V, UNK_ID))
    lengths = batch.src_mask.sum(1)
    for i, (rnn, norm) in enumerate(zip(m.encoder.layers, m.encoder.norms)):
        out, final = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=S)
        x = norm(out) if i == 0 else norm(x + out)
    h_n = final[0] if isinstance(final, tuple) else final
    B, L, H = x.size(0), m.config.dec_layers, m.config.hidden
    hidden = torch.tanh(m.bridge(torch.cat([h_n[0], h_n[1]], dim=-1))).view(B, L, H)
    return {"hidden": hidden, "cell": torch.zeros_like(hidden) if m.config.rnn == "lstm" else None,
                "feed": x.new_zeros(B, H), "enc": x, "keys": m.attn_key(x), "mask": batch.src_mask, "ext": batch.src_ext_ids}


def reference_select(state: dict, index: torch.Tensor) -> dict:
    return {k: None if v is None else v[index] for k, v in state.items()}


def reference_step(m: Seq2Seq, tokens: torch.Tensor, st: dict, ext_size: int) -> tuple[torch.Tensor, dict]:
    cfg, V = m.config, m.config.vocab_size
    x = m.embedding(tokens.masked_fill(tokens >= V, UNK_ID))
    inp = torch.cat([x, st["feed"]], dim=-1)
    hs, cs = [], []
    for i, cell in enumerate(m.cells):
        if st["cell"] is None:
            h = cell(inp, st["hidden"][:, i])
        else:
            h, c = cell(inp, (st["hidden"][:, i], st["cell"][:, i]))
            cs.append(c)
        hs.append(h)
        inp = h if i == 0 else m.dec_norms[i - 1](inp + h)
    query = inp
    if cfg.attention == "luong":
        scores = torch.bmm(st["keys"], query.unsqueeze(2)).squeeze(2)
    else:
        scores = m.attn_v(torch.tanh(st["keys"] + m.attn_query(query).unsqueeze(1))).squeeze(2)
    attn = torch.softmax(scores.masked_fill(~st["mask"], float("-inf")), dim=-1)
    ctx = torch.bmm(attn.unsqueeze(1), st["enc"]).squeeze(1)
    h_tilde = torch.tanh(m.combine(torch.cat([ctx, query], dim=-1)))
    st = {**st, "hidden": torch.stack(hs, 1), "cell": torch.stack(cs, 1) if cs else None, "feed": h_tilde}
    logits = F.linear(m.out_proj(h_tilde), m.embedding.weight, m.out_bias) if cfg.tie_embeddings \
        else m.lm_head(h_tilde)
    if not cfg.copy:
        return F.pad(F.log_softmax(logits, dim=-1), (0, ext_size - V), value=float("-inf")), st
    p_gen = torch.sigmoid(m.copy_gate(torch.cat([ctx, query, x], dim=-1)))
    probs = F.pad(p_gen * torch.softmax(logits, dim=-1), (0, ext_size - V))
    probs = probs.scatter_add(-1, st["ext"], (1.0 - p_gen) * attn)
    log_probs = probs.clamp_min(1e-30).log()
    own = torch.arange(V, ext_size) <= st["ext"].max(dim=-1, keepdim=True).values  # this row's OOV slots
    log_probs[:, V:] = log_probs[:, V:].masked_fill(~own, float("-inf"))
    return log_probs, st


def _assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    assert torch.equal(torch.isinf(actual), torch.isinf(expected))  # same impossible ids
    finite = torch.isfinite(expected)
    assert torch.allclose(actual[finite], expected[finite], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_steps_through_beam_reorders_match_the_original_model(vocab: Vocab, name: str) -> None:
    model, batch = _model(vocab, name), _batch(vocab)
    X = batch.ext_vocab_size
    gen = torch.Generator().manual_seed(0)
    # beam expansion (2 per source), reshuffle within sources, a finished source dropped, then rows scattered
    reorders = [torch.tensor([1, 0, 3, 2, 5, 4]), torch.tensor([0, 1, 4, 5]), torch.tensor([3, 0, 0])]
    with torch.no_grad():
        state = model.reorder(model.encode(batch), torch.arange(3).repeat_interleave(2))
        ref = reference_select(reference_encode(model, batch), torch.arange(3).repeat_interleave(2))
        tokens = torch.tensor([1, 1, 1, 1, 1, 1])
        for index in [None, *reorders]:
            if index is not None:
                state, ref, tokens = model.reorder(state, index), reference_select(ref, index), tokens[index]
            log_probs, state = model.step(tokens, state)
            expected, ref = reference_step(model, tokens, ref, X)
            _assert_same(log_probs, expected)
            if name == "sharp":
                assert (expected < -60).any()  # the floor really is exercised
            tokens = torch.randint(0, X, tokens.shape, generator=gen)  # copied ids included


def test_training_loss_and_gradients_match_the_original_model(vocab: Vocab) -> None:
    """Teacher-forced training goes through the same code: the loss and its gradients are unchanged."""
    batch = _batch(vocab)
    model = _model(vocab, "default")
    loss = model(batch)
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    st = reference_encode(model, batch)
    steps = []
    for t in range(batch.tgt_in.size(1)):
        log_probs, st = reference_step(model, batch.tgt_in[:, t], st, batch.ext_vocab_size)
        steps.append(log_probs.gather(-1, batch.tgt_out[:, t : t + 1]).squeeze(-1))
    nll = -torch.stack(steps, dim=1)
    mask = batch.tgt_mask.float()
    expected = (nll * mask).sum() / mask.sum()
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(ours[n], p.grad, atol=1e-5), n


def test_parameter_names_and_shapes_are_those_of_saved_checkpoints() -> None:
    """Checkpoints store the state dict by name: renaming or reshaping a parameter would orphan them."""
    model = Seq2Seq(Seq2SeqConfig(vocab_size=50, emb_dim=8, hidden=12, enc_layers=2, dec_layers=2))
    shapes = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    encoder = {}
    for layer, width in ((0, 8), (1, 12)):  # input: embedding, then both directions of 6
        for suffix in ("", "_reverse"):
            prefix = f"encoder.layers.{layer}."
            encoder[f"{prefix}weight_ih_l0{suffix}"] = (18, width)
            encoder[f"{prefix}weight_hh_l0{suffix}"] = (18, 6)
            encoder[f"{prefix}bias_ih_l0{suffix}"] = encoder[f"{prefix}bias_hh_l0{suffix}"] = (18,)
    assert shapes == {
        "embedding.weight": (50, 8),
        **encoder,
        **{f"encoder.norms.{i}.{kind}": (12,) for i in range(2) for kind in ("weight", "bias")},
        "bridge.weight": (24, 12), "bridge.bias": (24,),
        "cells.0.weight_ih": (36, 20), "cells.0.weight_hh": (36, 12), "cells.0.bias_ih": (36,),
        "cells.0.bias_hh": (36,),
        "cells.1.weight_ih": (36, 12), "cells.1.weight_hh": (36, 12), "cells.1.bias_ih": (36,),
        "cells.1.bias_hh": (36,),
        "dec_norms.0.weight": (12,), "dec_norms.0.bias": (12,),
        "attn_key.weight": (12, 12),
        "combine.weight": (12, 24), "combine.bias": (12,),
        "out_proj.weight": (8, 12), "out_proj.bias": (8,), "out_bias": (50,),
        "copy_gate.weight": (1, 32), "copy_gate.bias": (1,),
    }
