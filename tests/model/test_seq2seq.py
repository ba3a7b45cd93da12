"""Shapes, masks and batch/single equivalence of the seq2seq model, for every architecture variant."""

from __future__ import annotations

import pytest
import torch

from chatbot.model import Seq2Seq, Seq2SeqConfig, collate, encode_pair
from chatbot.text.vocab import Vocab

torch.set_num_threads(1)

WORDS = "hi where is my order please check it thanks for waiting your has shipped ?".split()
VARIANTS = [
    dict(),
    dict(rnn="lstm", attention="bahdanau", dec_layers=2, enc_layers=2),
    dict(copy=False, tie_embeddings=False),
    dict(emb_dim=32, hidden=32, dec_layers=2),  # tied without the H -> E projection
]


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build([WORDS], min_freq=1)


def _model(vocab: Vocab, **kw) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = dict(vocab_size=len(vocab), emb_dim=16, hidden=24, enc_layers=2, dec_layers=1, dropout=0.1)
    cfg.update(kw)
    return Seq2Seq(Seq2SeqConfig(**cfg)).eval()


def _examples(vocab: Vocab):
    return [
        encode_pair("<customer> where is my order A123 ?".split(), "your order A123 has shipped".split(), vocab),
        encode_pair("hi".split(), "hi".split(), vocab),
        encode_pair("<customer> check Bob order Z9 please Z9".split(), "thanks Bob Z9 Q".split(), vocab),
    ]


@pytest.mark.parametrize("kw", VARIANTS)
def test_step_shapes_and_distribution(vocab: Vocab, kw: dict) -> None:
    model = _model(vocab, **kw)
    batch = collate(_examples(vocab), vocab)
    assert batch.ext_vocab_size == len(vocab) + 2  # row 2 has two OOVs: Bob, Z9
    state = model.encode(batch)
    assert state.attention is None and len(state) == 3
    log_probs, state = model.step(batch.tgt_in[:, 0], state)
    assert log_probs.shape == (3, len(vocab) + 2)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3), atol=1e-5)
    assert state.attention.shape == batch.src_mask.shape
    assert torch.all(state.attention[~batch.src_mask] == 0)  # padding gets exactly zero attention
    assert torch.allclose(state.attention.sum(-1), torch.ones(3), atol=1e-6)
    # Extended slots a row does not own are impossible; copying is possible only with the gate.
    assert torch.isinf(log_probs[1, len(vocab) :]).all()
    assert torch.isinf(log_probs[0, len(vocab) + 1]).item()
    assert torch.isfinite(log_probs[2, len(vocab) :]).all() == model.config.copy
    # Copied ids are valid decoder inputs (read as <unk>).
    log_probs2, _ = model.step(torch.tensor([len(vocab), 4, len(vocab) + 1]), state)
    assert torch.isfinite(log_probs2[:, : len(vocab)]).all()


@pytest.mark.parametrize("kw", VARIANTS)
def test_batch_rows_equal_single_examples(vocab: Vocab, kw: dict) -> None:
    model = _model(vocab, **kw)
    examples = _examples(vocab)
    batch = collate(examples, vocab)
    batch_lp = model.sequence_log_probs(batch)
    state = model.encode(batch)
    step_lp, state = model.step(batch.tgt_in[:, 0], state)
    step_lp2, _ = model.step(batch.tgt_in[:, 1], state)
    for i, ex in enumerate(examples):
        single = collate([ex], vocab)
        width = single.ext_vocab_size
        t = single.tgt_out.size(1)
        assert torch.allclose(model.sequence_log_probs(single)[0], batch_lp[i, :t], atol=1e-5)
        assert torch.all(batch_lp[i, t:] == 0)
        s_state = model.encode(single)
        s_lp, s_state = model.step(single.tgt_in[:, 0], s_state)
        s_lp2, _ = model.step(single.tgt_in[:, 1], s_state)
        assert torch.allclose(s_lp, step_lp[i : i + 1, :width], atol=1e-5)
        assert torch.allclose(s_lp2, step_lp2[i : i + 1, :width], atol=1e-5)
        assert torch.allclose(model(single), model.sequence_log_probs(single).sum().neg() / t, atol=1e-5)


def test_padding_content_is_ignored(vocab: Vocab) -> None:
    """Whatever ids sit in padded source positions, results are the same."""
    model = _model(vocab)
    batch = collate(_examples(vocab), vocab)
    before = model.sequence_log_probs(batch)
    batch.src_ids[~batch.src_mask] = 7
    assert torch.allclose(before, model.sequence_log_probs(batch), atol=1e-6)


def test_reorder_selects_and_duplicates_rows(vocab: Vocab) -> None:
    model = _model(vocab, rnn="lstm")
    batch = collate(_examples(vocab), vocab)
    state = model.encode(batch)
    _, state = model.step(batch.tgt_in[:, 0], state)
    index = torch.tensor([2, 2, 0])
    picked = model.reorder(state, index)
    assert len(picked) == 3 and picked.ext_size == state.ext_size
    lp_picked, _ = model.step(batch.tgt_in[index, 1], picked)
    lp_full, _ = model.step(batch.tgt_in[:, 1], state)
    assert torch.allclose(lp_picked, lp_full[index], atol=1e-6)
    assert torch.equal(picked.attention, state.attention[index])


def test_loss_options_and_gradients(vocab: Vocab) -> None:
    model = _model(vocab).train()
    batch = collate(_examples(vocab), vocab)
    torch.manual_seed(1)
    loss = model(batch, label_smoothing=0.1, teacher_forcing_ratio=0.5)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.copy_gate.weight.grad.abs().sum() > 0
    assert model.encoder.layers[0].weight_ih_l0.grad.abs().sum() > 0
    model.eval()
    plain = model(batch)
    assert model(batch, label_smoothing=0.1) > plain  # smoothing adds the cost of a flat target


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="rnn"):
        Seq2SeqConfig(rnn="transformer")
    with pytest.raises(ValueError, match="even"):
        Seq2SeqConfig(hidden=33)


def test_default_size_is_about_8m_parameters() -> None:
    n = Seq2Seq(Seq2SeqConfig()).num_parameters()
    assert 7e6 < n < 10e6, n
