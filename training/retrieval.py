"""TF-IDF nearest-neighbour reply retrieval: the baseline a trained model has to beat.

Given a context, answer with the reply of the most similar training context (cosine similarity of
sublinear TF-IDF vectors over the product's tokens). Sparse matrices are torch tensors, so no extra
dependency is needed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch

Tokenizer = Callable[[str], list[str]]


class TfidfRetriever:
    """Fit on (context, reply) pairs, then ``predict`` replies for new contexts."""

    def __init__(self, tokenizer: Tokenizer | None = None, chunk_size: int = 64) -> None:
        if tokenizer is None:
            from training.metrics import _product_tokens as tokenizer  # same tokens the metrics count
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self.vocab: dict[str, int] = {}
        self.idf: torch.Tensor | None = None
        self.matrix: torch.Tensor | None = None  # (N, V) sparse COO, rows L2-normalised
        self.replies: list[str] = []

    def fit(self, contexts: Sequence[str], replies: Sequence[str]) -> TfidfRetriever:
        if len(contexts) != len(replies) or not contexts:
            raise ValueError("retrieval needs the same, non-zero number of contexts and replies")
        docs = [Counter(self.tokenizer(c)) for c in contexts]
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        self.vocab = {w: i for i, w in enumerate(sorted(df))}
        n = len(docs)
        self.idf = torch.tensor([math.log((1 + n) / (1 + df[w])) + 1 for w in sorted(df)])
        self.matrix = self._vectors(docs)
        self.replies = list(replies)
        return self

    def _vectors(self, docs: list[Counter[str]]) -> torch.Tensor:
        """Sparse COO (len(docs), V) of L2-normalised sublinear TF-IDF rows; unknown words are dropped."""
        assert self.idf is not None
        rows, cols, vals = [], [], []
        for r, doc in enumerate(docs):
            for word, count in doc.items():
                col = self.vocab.get(word)
                if col is not None:
                    rows.append(r)
                    cols.append(col)
                    vals.append((1 + math.log(count)) * float(self.idf[col]))
        values = torch.tensor(vals, dtype=torch.float32)
        row_t = torch.tensor(rows, dtype=torch.long)
        norms = torch.zeros(len(docs)).index_add_(0, row_t, values**2).sqrt().clamp_min(1e-12)
        values = values / norms[row_t]
        return torch.sparse_coo_tensor(torch.stack([row_t, torch.tensor(cols, dtype=torch.long)]), values,
                                       (len(docs), len(self.vocab)), check_invariants=False).coalesce()

    def nearest(self, contexts: Sequence[str]) -> list[int]:
        """Index of the most similar training context for each query (ties go to the earliest)."""
        if self.matrix is None:
            raise RuntimeError("TfidfRetriever.fit must run before nearest/predict")
        out: list[int] = []
        for start in range(0, len(contexts), self.chunk_size):
            chunk = [Counter(self.tokenizer(c)) for c in contexts[start : start + self.chunk_size]]
            queries = self._vectors(chunk).to_dense()  # (B, V)
            sims = torch.sparse.mm(self.matrix, queries.T)  # (N, B)
            out.extend(int(i) for i in sims.argmax(dim=0))
        return out

    def predict(self, contexts: Sequence[str]) -> list[str]:
        return [self.replies[i] for i in self.nearest(contexts)]


def baseline_metrics(index: Sequence[Any], dev: Sequence[Any], max_turns: int) -> dict[str, Any]:
    """The retrieval baseline scored like ``chatbot eval``: ``index`` and ``dev`` are ``training.sources.Pair``s
    of one language; entity-copy recall counts the values in the last ``max_turns`` turns, as for the model."""
    from training import metrics
    from training.evaluate import visible_context

    retriever = TfidfRetriever().fit([p.context_text() for p in index], [p.reply for p in index])
    hyps = retriever.predict([p.context_text() for p in dev])
    languages = {p.language for p in dev}
    scored = metrics.Scored([visible_context(p, max_turns) for p in dev], [p.reply for p in dev], hyps,
                            [list(p.slot_values) for p in dev])
    return {**metrics.text_metrics(scored, language=languages.pop() if len(languages) == 1 else "en"),
            "index_pairs": len(index)}
