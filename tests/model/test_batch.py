"""Per-example extended vocabularies and padding of seq2seq batches."""

from __future__ import annotations

import pytest
import torch

from chatbot.model import collate, encode_pair
from chatbot.text.vocab import Vocab


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build([["order", "is", "late", "your"]], min_freq=1)


def test_oov_source_tokens_get_extended_ids(vocab: Vocab) -> None:
    v = len(vocab)
    ex = encode_pair(["order", "B77", "is", "Kim", "B77"], ["your", "order", "B77", "Lee"], vocab)
    assert ex.src_oov == ["B77", "Kim"]
    assert ex.src_ids == [vocab.index("order"), vocab.unk_id, vocab.index("is"), vocab.unk_id, vocab.unk_id]
    assert ex.src_ext_ids == [vocab.index("order"), v, vocab.index("is"), v + 1, v]
    # A target OOV found in the source is copyable; one that is not becomes <unk>.
    assert ex.tgt_ids == [vocab.index("your"), vocab.index("order"), v, vocab.unk_id]


def test_collate_pads_and_shifts_targets(vocab: Vocab) -> None:
    v = len(vocab)
    a = encode_pair(["order", "X1"], ["X1"], vocab)
    b = encode_pair(["order", "is", "late"], ["order", "is", "late"], vocab)
    batch = collate([a, b], vocab)
    assert batch.src_mask.tolist() == [[True, True, False], [True, True, True]]
    assert batch.src_ids[0, 2] == vocab.pad_id and batch.src_ext_ids[0, 1] == v
    assert batch.tgt_in.tolist()[0] == [vocab.bos_id, v, vocab.pad_id, vocab.pad_id]
    assert batch.tgt_out.tolist()[0] == [v, vocab.eos_id, vocab.pad_id, vocab.pad_id]
    assert batch.tgt_mask.sum(1).tolist() == [2, 4]
    assert batch.ext_vocab_size == v + 1 and batch.src_oov == [["X1"], []]
    assert batch.ids_to_tokens(0, [v, vocab.index("is")], vocab) == ["X1", "is"]
    with pytest.raises(ValueError, match="outside row 1"):
        batch.ids_to_tokens(1, [v], vocab)


def test_inference_batches_have_no_targets(vocab: Vocab) -> None:
    batch = collate([encode_pair(["order"], None, vocab)], vocab)
    assert batch.tgt_in is None and batch.tgt_out is None
    assert batch.to("cpu").src_ids.dtype == torch.long


def test_empty_inputs_are_refused(vocab: Vocab) -> None:
    with pytest.raises(ValueError, match="empty source"):
        encode_pair([], ["order"], vocab)
    with pytest.raises(ValueError, match="empty list"):
        collate([], vocab)
