"""int8 serving copy: what is quantized, and that it still computes the float model's distribution."""

from __future__ import annotations

import torch
from torch import nn

from chatbot.generation.quantize import is_quantized, quantize_int8
from chatbot.model import Seq2Seq, Seq2SeqConfig
from chatbot.model.batch import Seq2SeqBatch

torch.set_num_threads(1)


def _batch(vocab: int) -> Seq2SeqBatch:
    ids = torch.tensor([[5, 9, 12, 7, 30, 31], [8, 8, 40, 3, 0, 0]])
    mask = ids != 0
    return Seq2SeqBatch(ids, ids, mask, [[], []], vocab)


def test_encoder_decoder_and_output_layer_are_int8_but_not_the_copy_gate() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=64, emb_dim=16, hidden=32, dropout=0.0)).eval()
    served = quantize_int8(model)
    assert is_quantized(served) and not is_quantized(model)
    for name in ("encoder.layers.0", "encoder.layers.1", "cells.0", "combine", "attn_key", "lm_head.1"):
        module = served.get_submodule(name)
        assert type(module).__module__.startswith("torch.ao.nn.quantized"), name
    assert type(served.copy_gate) is nn.Linear

    batch = _batch(64)  # one padded row: the packed path runs through the quantized encoder too
    with torch.inference_mode():
        expected, _ = model.step(torch.tensor([1, 1]), model.encode(batch))
        got, state = served.step(torch.tensor([1, 1]), served.encode(batch))
    assert got.shape == expected.shape
    assert torch.allclose(got.exp(), expected.exp(), atol=0.02)
    assert torch.all(state.attention[~batch.src_mask] == 0)
