"""The training loss takes a faster route than decoding (batched input projection, output layer on real
target positions only, copy mixture evaluated where the loss reads it); it must equal the loss read off the
full per-step distributions that ``step`` gives, with and without label smoothing, for every variant."""

from __future__ import annotations

import pytest
import torch

from chatbot.model import Seq2Seq, Seq2SeqConfig, collate, encode_pair
from chatbot.model.batch import Seq2SeqBatch
from chatbot.text.vocab import UNK_ID, Vocab

torch.set_num_threads(1)

WORDS = "hi where is my order please check it thanks for waiting your has shipped ?".split()
VARIANTS = {
    "gru-luong-copy": {},
    "lstm-bahdanau-2layers": {"rnn": "lstm", "attention": "bahdanau", "dec_layers": 2},
    "no-copy-untied": {"copy": False, "tie_embeddings": False},
    "gru-3layers-tied": {"emb_dim": 24, "hidden": 24, "dec_layers": 3},
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build([WORDS], min_freq=1)


def _batch(vocab: Vocab, copy: bool = True) -> Seq2SeqBatch:
    batch = collate([
        encode_pair("<customer> where is my order A123 ? A123".split(), "your order A123 has shipped".split(), vocab),
        encode_pair(["hi"], ["hi", "?"], vocab),  # short on both sides: padding everywhere else
        encode_pair("<customer> check Bob order Z9 please Z9 order".split(), "thanks Bob Z9 Z9 order Q".split(), vocab),
    ], vocab)
    if not copy:  # without the copy gate, copied ids are unreachable: such a model learns <unk> for them
        batch.tgt_out = batch.tgt_out.masked_fill(batch.tgt_out >= len(vocab), UNK_ID)
    return batch


def _model(vocab: Vocab, name: str) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = {"vocab_size": len(vocab), "emb_dim": 16, "hidden": 24, "enc_layers": 2, "dec_layers": 1, "dropout": 0.0}
    return Seq2Seq(Seq2SeqConfig(**{**cfg, **VARIANTS[name]})).train()


def _loss_from_steps(model: Seq2Seq, batch: Seq2SeqBatch, label_smoothing: float) -> torch.Tensor:
    """The textbook loss: full [N, X] distributions from ``step``, one target position at a time."""
    state = model.encode(batch)
    per_step = []
    for t in range(batch.tgt_in.size(1)):
        log_probs, state = model.step(batch.tgt_in[:, t], state)
        per_step.append(log_probs)
    log_probs = torch.stack(per_step, dim=1)  # [B, T, X]
    nll = -log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)
    smooth = -log_probs[..., : model.config.vocab_size].mean(-1)
    nll = (1 - label_smoothing) * nll + label_smoothing * smooth
    mask = batch.tgt_mask.float()
    return (nll * mask).sum() / mask.sum()


def _grads(model: Seq2Seq, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("name", VARIANTS)
def test_training_loss_and_gradients_equal_the_step_by_step_loss(vocab: Vocab, name: str,
                                                                 label_smoothing: float) -> None:
    model = _model(vocab, name)
    batch = _batch(vocab, model.config.copy)
    assert batch.ext_vocab_size > len(vocab)  # OOVs (A123, Bob, Z9) in the sources, copied into targets
    fast = model(batch, label_smoothing=label_smoothing)
    fast_grads = _grads(model, fast)
    slow = _loss_from_steps(model, batch, label_smoothing)
    slow_grads = _grads(model, slow)
    assert torch.isfinite(fast)
    assert fast.item() == pytest.approx(slow.item(), abs=1e-5)
    assert fast_grads.keys() == slow_grads.keys()
    for n in slow_grads:
        assert torch.allclose(fast_grads[n], slow_grads[n], atol=1e-5), n


@pytest.mark.parametrize("name", VARIANTS)
def test_sequence_log_probs_read_the_full_distribution(vocab: Vocab, name: str) -> None:
    model = _model(vocab, name).eval()
    batch = _batch(vocab, model.config.copy)
    with torch.no_grad():
        full = model.target_log_probs(batch)  # [B, T, X]
        expected = full.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1).masked_fill(~batch.tgt_mask, 0.0)
        assert torch.allclose(model.sequence_log_probs(batch), expected, atol=1e-5)


def test_dropout_is_applied_in_training_and_not_in_eval(vocab: Vocab) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=24, dropout=0.5))
    batch = _batch(vocab)
    model.train()
    assert model(batch).item() != model(batch).item()  # fresh dropout masks
    model.eval()
    with torch.no_grad():
        assert model(batch).item() == model(batch).item()


def test_a_model_without_copy_learns_unk_for_out_of_vocabulary_targets() -> None:
    """A reply that repeats an unknown word gives a finite loss: the no-copy model is trained on <unk>."""
    torch.manual_seed(0)
    vocab = Vocab.build([["your", "order", "is", "ready"]], min_freq=1)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=8, hidden=16, enc_layers=1, dec_layers=1,
                                  dropout=0.0, copy=False))
    batch = collate([encode_pair(["order", "XK-93"], ["your", "order", "XK-93", "is", "ready"], vocab)], vocab)
    loss = model(batch)
    assert torch.isfinite(loss)
    # the same as training on the reply with the unknown word spelled <unk>
    unk_batch = collate([encode_pair(["order", "XK-93"], ["your", "order", "<unk>", "is", "ready"], vocab)], vocab)
    assert (unk_batch.tgt_out == UNK_ID).any()
    torch.testing.assert_close(loss, model(unk_batch))
