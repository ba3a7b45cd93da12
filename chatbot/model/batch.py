"""Turn (source tokens, target tokens) into padded id tensors with per-example extended vocabularies.

The copy mechanism can only produce a word that is not in the vocabulary if it appears in the source: each
example numbers its own out-of-vocabulary source tokens V, V+1, ... (``src_oov``), and target tokens that
match one of them are labelled with that extended id instead of ``<unk>`` (See et al., 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

from chatbot.text.vocab import Vocab


@dataclass(frozen=True)
class Example:
    src_ids: list[int]  # OOV -> unk
    src_ext_ids: list[int]  # OOV -> V + k
    src_oov: list[str]  # the k-th OOV source token
    tgt_ids: list[int] | None  # extended ids, no bos/eos; None at inference


def encode_pair(source: Sequence[str], target: Sequence[str] | None, vocab: Vocab) -> Example:
    """Ids for one pair; target OOVs absent from the source become ``<unk>``."""
    if not source:
        raise ValueError("empty source sequence")
    v = len(vocab)
    oov: dict[str, int] = {}
    src_ids, src_ext = [], []
    for tok in source:
        if tok in vocab:
            i = vocab.index(tok)
            src_ids.append(i)
            src_ext.append(i)
        else:
            src_ids.append(vocab.unk_id)
            src_ext.append(v + oov.setdefault(tok, len(oov)))
    tgt = None
    if target is not None:
        tgt = [vocab.index(t) if t in vocab else v + oov[t] if t in oov else vocab.unk_id for t in target]
    return Example(src_ids, src_ext, list(oov), tgt)


@dataclass
class Seq2SeqBatch:
    src_ids: torch.Tensor  # [B, S] long, OOV -> unk, padded with pad
    src_ext_ids: torch.Tensor  # [B, S] long, OOV -> V + k
    src_mask: torch.Tensor  # [B, S] bool, True on real tokens
    src_oov: list[list[str]]  # per row, the tokens behind ids V, V+1, ...
    vocab_size: int  # V
    tgt_in: torch.Tensor | None = None  # [B, T] bos + target (extended ids)
    tgt_out: torch.Tensor | None = None  # [B, T] target + eos (extended ids)
    tgt_mask: torch.Tensor | None = None  # [B, T] bool

    @property
    def max_oov(self) -> int:
        return max((len(o) for o in self.src_oov), default=0)

    @property
    def ext_vocab_size(self) -> int:
        """V + the largest number of OOV source tokens of any row: the width of the model's log-probs."""
        return self.vocab_size + self.max_oov

    def __len__(self) -> int:
        return self.src_ids.size(0)

    def to(self, device: torch.device | str) -> Seq2SeqBatch:
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)

    def ids_to_tokens(self, row: int, ids: Sequence[int], vocab: Vocab) -> list[str]:
        """Generated extended ids of batch row ``row`` back to tokens (copied OOVs included)."""
        v = len(vocab)
        oov = self.src_oov[row]
        out = []
        for i in ids:
            i = int(i)
            if i < v:
                out.append(vocab.token(i))
            elif i - v < len(oov):
                out.append(oov[i - v])
            else:
                raise ValueError(f"id {i} is outside row {row}'s extended vocabulary (V={v}, {len(oov)} OOVs)")
        return out


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def collate(examples: Sequence[Example], vocab: Vocab) -> Seq2SeqBatch:
    """Pad a list of examples; target tensors only when every example has a target."""
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    src_ids = _pad([e.src_ids for e in examples], vocab.pad_id)
    batch = Seq2SeqBatch(
        src_ids=src_ids,
        src_ext_ids=_pad([e.src_ext_ids for e in examples], vocab.pad_id),
        src_mask=_pad([[1] * len(e.src_ids) for e in examples], 0).bool(),
        src_oov=[list(e.src_oov) for e in examples],
        vocab_size=len(vocab),
    )
    if all(e.tgt_ids is not None for e in examples):
        tgts = [e.tgt_ids for e in examples]
        batch.tgt_in = _pad([[vocab.bos_id, *t] for t in tgts], vocab.pad_id)  # type: ignore[misc]
        batch.tgt_out = _pad([[*t, vocab.eos_id] for t in tgts], vocab.pad_id)  # type: ignore[misc]
        batch.tgt_mask = _pad([[1] * (len(t) + 1) for t in tgts], 0).bool()  # type: ignore[arg-type]
    return batch
