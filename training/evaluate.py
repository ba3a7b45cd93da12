"""Evaluate a model directory on training pairs: generated-reply metrics plus teacher-forced perplexity.

Replies come from the generator serving builds (same function, decoding settings, int8 and context
window), so the numbers describe what customers would see and the gate compares models as they serve.
The per-example rows make bad cases easy to inspect.
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
    """(max_turns, max_tokens) the model was trained with, else the serving settings (the serving
    decoder's own rule, ``chatbot.service.generator.context_window``)."""
    from chatbot.service.generator import context_window

    return context_window(config, settings)


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


def _scored_metrics(idx: Sequence[int], pairs: Sequence[Pair], contexts: Sequence[str], hyps: Sequence[str],
                    nll: Sequence[tuple[float, int]]) -> dict[str, Any]:
    """Generation metrics plus perplexity of the pairs at ``idx``; BLEU tokenizes for their one language."""
    idx = list(idx)
    scored = metrics.Scored([contexts[i] for i in idx], [pairs[i].reply for i in idx], [hyps[i] for i in idx],
                            [list(pairs[i].slot_values) for i in idx], [pairs[i].language for i in idx])
    languages = {pairs[i].language for i in idx}
    report: dict[str, Any] = metrics.text_metrics(scored, language=languages.pop() if len(languages) == 1 else "en")
    total_nll, total_tokens = sum(nll[i][0] for i in idx), sum(nll[i][1] for i in idx)
    report["perplexity"] = metrics.perplexity(total_nll, int(total_tokens))
    return report


def evaluate_model(
    model_dir: Path,
    pairs: Sequence[Pair],
    settings: Any,
    *,
    limit: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
    decoding: dict[str, Any] | None = None,
) -> EvalReport:
    """Generate a reply for each pair as serving would (``chatbot.service.generator.serving_generator``: the
    settings' decoding, int8 when ``settings.quantize_int8``, the model's trained context window) and score
    them; ``decoding`` overrides settings the way ``chatbot reply --num-beams`` does. The report says which
    decoding it used (``decoding``).

    With pairs of several languages the metrics of all pairs come with ``by_language``: each language
    scored on its own, so one run reports English and Chinese side by side."""
    from tqdm import tqdm

    from chatbot.service.generator import serving_generator

    if not pairs:
        raise ValueError("no evaluation pairs")
    pairs = list(pairs)[:limit] if limit else list(pairs)
    # Exactly what serving builds: the settings' decoding, int8 when serving quantizes, the model's own window.
    generator = serving_generator(model_dir, settings, **(decoding or {}))
    loaded = generator.loaded
    max_turns, max_tokens = generator.max_turns, generator.max_tokens
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
    report = _scored_metrics(range(len(pairs)), pairs, contexts, hyps, nll)
    report["decoding"] = {**generator.config.to_dict(), "int8": bool(settings.quantize_int8),
                          "context_turns": max_turns, "context_max_tokens": max_tokens}
    languages = sorted({p.language for p in pairs})
    if len(languages) > 1:  # one run, every language scored on its own (BLEU tokenizer, no averaging)
        report["by_language"] = {lang: _scored_metrics([i for i, p in enumerate(pairs) if p.language == lang],
                                                       pairs, contexts, hyps, nll) for lang in languages}
    rows = []
    for p, context, h, c, (n, t) in zip(pairs, contexts, hyps, confidences, nll):
        copied, copyable = metrics.entity_copy_counts(context, p.reply, h, p.slot_values)
        rows.append({"conversation": p.conversation, "language": p.language, "context": context,
                     "reference": p.reply, "hypothesis": h, "confidence": c, "nll": round(n, 4), "tokens": int(t),
                     "entities_copied": copied, "entities_copyable": copyable})
    return EvalReport(report, rows)
