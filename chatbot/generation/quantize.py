"""int8 serving: dynamic quantization of a trained float model, made at load time from the normal checkpoint.

Dynamic quantization stores weights as int8 and quantizes activations on the fly, so it needs no
calibration data and no separate checkpoint. What is quantized, and why (measured with
``benchmarks/generation.py``):

- every ``nn.Linear`` (attention key, combine, copy gate, bridge, the H->E output projection);
- the decoder ``GRUCell``/``LSTMCell``s, run once per generated token for every beam;
- the output layer tied to the embedding -- the largest matmul of a step (``rows x E x V``). It is not an
  ``nn.Linear`` in the float model (it reads ``embedding.weight``), so the serving copy gets an untied
  ``lm_head`` holding the same weights, which ``quantize_dynamic`` then converts. The embedding itself
  stays float: lookups are not matmuls.

- not the copy gate: its single output column runs slower through int8 kernels than in float;
- the encoder's bidirectional ``nn.GRU``/``nn.LSTM`` layers (packed input included): about 3x faster
  per request than in float.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of a float :class:`~chatbot.model.seq2seq.Seq2Seq` for CPU inference (eval mode).

    The input model is left untouched, so training or saving it stays possible.
    """
    from torch.ao.quantization import quantize_dynamic

    served = copy.deepcopy(model).eval()
    config = getattr(served, "config", None)
    if config is not None and getattr(config, "tie_embeddings", False):
        _untie_output(served)
    rnn_types = {type(m) for m in served.modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))}
    with warnings.catch_warnings():  # torch announces the move of this API to torchao; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = quantize_dynamic(served, {nn.Linear, *rnn_types}, dtype=torch.qint8)
    if getattr(served, "copy_gate", None) is not None:
        quantized.copy_gate = served.copy_gate
    return quantized


def _untie_output(model: nn.Module) -> None:
    """Give ``model`` an ``lm_head`` equal to its tied output (out_proj, then embedding matrix + bias)."""
    vocab, emb_dim = model.embedding.weight.shape
    head = nn.Linear(emb_dim, vocab)
    with torch.no_grad():
        head.weight.copy_(model.embedding.weight)
        head.bias.copy_(model.out_bias)
    model.lm_head = nn.Sequential(model.out_proj, head) if isinstance(model.out_proj, nn.Linear) else head
    del model.out_bias
    model.config = dataclasses.replace(model.config, tie_embeddings=False)


def is_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())
