"""Evaluate a model directory on training pairs: generated-reply metrics plus teacher-forced perplexity.

Replies come from the same ``ReplyGenerator`` that serves customers (same decoding settings), so the
numbers describe what customers would see. The per-example rows make bad cases easy to inspect.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import torch

from training import metrics
from training.sources import Pair

CSV_FIELDS = ("conversation", "language", "context", "reference", "hypothesis", "confidence", "nll", "tokens",
              "entities_copied", "entities_copyable")


@dataclass
class EvalReport:
    metrics: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, CSV_FIELDS)
            w.writeheader()
            w.writerows(self.rows)


def context_limits(config: dict[str, Any], settings: Any) -> tuple[int, int]:
    """(max_turns, max_tokens) the model was trained with, else the serving settings."""
    train_cfg = (config.get("extra") or {}).get("train_config") or {}
    return (int(train_cfg.get("max_turns", settings.context_turns)),
            int(train_cfg.get("max_src_tokens", settings.context_max_tokens)))


def visible_context(pair: Pair, max_turns: int) -> str:
    """The context turns the model is given (its last ``max_turns``), as text.

    Entity-copy recall counts a slot value as copyable only when it is here: a value from a turn the model
    never saw cannot be copied, and counting it would charge the model for the context window instead of
    its copying. (The ``max_src_tokens`` cut inside those turns is rare and not modelled.)
    """
    return "\n".join(text for _, text in pair.context[-max_turns:])


@torch.no_grad()
def teacher_forced_nll(model: Any, vocab: Any, pairs: Sequence[Pair], max_turns: int, max_tokens: int,
                       batch_size: int = 32) -> list[tuple[float, int]]:
    """(summed NLL, target tokens incl. eos) per pair, in order."""
    from chatbot.model.batch import collate
    from training.dataset import encode_pairs

    model.eval()
    examples = encode_pairs(pairs, vocab, max_turns, max_tokens, max_tgt_tokens=10_000)
    out: list[tuple[float, int]] = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], vocab)
        lp = model.sequence_log_probs(batch)  # [B, T], 0 at padding
        out.extend(zip((-lp.sum(1)).tolist(), batch.tgt_mask.sum(1).tolist()))  # type: ignore[union-attr]
    return out


def evaluate_model(
    model_dir: Path,
    pairs: Sequence[Pair],
    settings: Any,
    *,
    limit: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> EvalReport:
    """Generate a reply for each pair with the model's decoding settings and score them."""
    from tqdm import tqdm

    from chatbot.generation.reply import ReplyGenerator

    if not pairs:
        raise ValueError("no evaluation pairs")
    pairs = list(pairs)[:limit] if limit else list(pairs)
    generator = ReplyGenerator.from_checkpoint(model_dir)  # the checkpoint's own decoding settings
    loaded = generator.loaded
    max_turns, max_tokens = context_limits(loaded.config, settings)
    nll = teacher_forced_nll(loaded.model, loaded.vocab, pairs, max_turns, max_tokens)

    hyps: list[str] = []
    confidences: list[float | None] = []
    with tqdm(total=len(pairs), disable=not progress, unit="reply", desc="eval", dynamic_ncols=True) as bar:
        for language, group in groupby(range(len(pairs)), key=lambda i: pairs[i].language):
            idx = list(group)
            for start in range(0, len(idx), batch_size):
                chunk = [pairs[i] for i in idx[start : start + batch_size]]
                replies = generator.generate([list(p.context) for p in chunk], language=language, return_attention=False)
                hyps.extend(r.text for r in replies)
                confidences.extend(r.confidence for r in replies)
                bar.update(len(chunk))

    contexts = [visible_context(p, max_turns) for p in pairs]
    scored = metrics.Scored(contexts, [p.reply for p in pairs], hyps, [list(p.slot_values) for p in pairs])
    languages = {p.language for p in pairs}
    report = metrics.text_metrics(scored, language=languages.pop() if len(languages) == 1 else "en")
    total_nll, total_tokens = sum(n for n, _ in nll), sum(t for _, t in nll)
    report["perplexity"] = metrics.perplexity(total_nll, int(total_tokens))
    rows = []
    for p, context, h, c, (n, t) in zip(pairs, contexts, hyps, confidences, nll):
        copied, copyable = metrics.entity_copy_counts(context, p.reply, h, p.slot_values)
        rows.append({"conversation": p.conversation, "language": p.language, "context": context,
                     "reference": p.reply, "hypothesis": h, "confidence": c, "nll": round(n, 4), "tokens": int(t),
                     "entities_copied": copied, "entities_copyable": copyable})
    return EvalReport(report, rows)
