"""Where should low confidence send a conversation to a person? The best candidate's score, per threshold.

    python benchmarks/handoff.py [--model chatbot/shipped/demo] [--limit 300] [--thresholds -0.2 -0.25 ...]

The model answers, exactly as the service serves it (settings' decoding, int8 as configured): dev pairs it
was trained for (SGD dev, CrossWOZ dev), customer-service questions it cannot know (every phrasing of
``benchmarks/learning.py``'s facts: opening hours, refunds, delivery, ...) and that benchmark's unrelated
requests. Per threshold on the best candidate's score (what ``CHATBOT_HANDOFF_MIN_SCORE`` is compared with:
log-prob / length^length_penalty), the table gives the share of each set that would go to a person, and the
chrF of the dev replies handed off and kept (a good threshold hands off the weak ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
DATA = ROOT / ".." / "shared" / "data"


def main() -> None:
    import torch

    from benchmarks.learning import FACTS, UNRELATED
    from chatbot.service.generator import ReplyGenerator
    from chatbot.settings import load_settings
    from chatbot.shipped import shipped_model_dir
    from training.metrics import chrf
    from training.sources import load_pairs, spread

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="Checkpoint directory (default: the shipped model).")
    ap.add_argument("--data", nargs="*", default=[f"sgd:{DATA / 'sgd' / 'dev'}",
                                                  f"crosswoz:{DATA / 'crosswoz' / 'val.json.zip'}@dev"])
    ap.add_argument("--limit", type=int, default=300, help="Dev pairs per spec (spread over it).")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[-0.15, -0.2, -0.25, -0.3, -0.4, -0.5])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    settings = load_settings()
    model = args.model or shipped_model_dir()
    generator = ReplyGenerator.from_checkpoint(model, settings=settings, int8=settings.quantize_int8)

    def answer(contexts: list[list[tuple[str, str]]], language: str) -> tuple[list[float], list[str]]:
        scores: list[float] = []
        replies: list[str] = []
        for i in range(0, len(contexts), 16):
            for reply in generator.generate(contexts[i : i + 16], language=language, return_attention=False):
                scores.append(float(reply.candidates[0].score))
                replies.append(reply.text)
        return scores, replies

    # name -> (best scores, chrF per reply or None)
    sets: dict[str, tuple[list[float], list[float] | None]] = {}
    for spec in args.data:
        pairs = spread(load_pairs([spec], 6), args.limit)  # the generator cuts each to the model's window
        if not pairs:
            continue
        scores, replies = answer([list(p.context) for p in pairs], pairs[0].language)
        sets[spec.split(":")[0] + " dev"] = (scores, [chrf([r], [p.reply]) for r, p in zip(replies, pairs)])
    unknown = [q for fact in FACTS for q in fact.taught + fact.unseen]
    sets["unknown CS questions"] = (answer([[("customer", q)] for q in unknown], "en")[0], None)
    sets["unrelated requests"] = (answer([[("customer", q)] for q in UNRELATED], "en")[0], None)

    print(f"model {model}; decoding: beam {settings.num_beams}, length penalty {settings.length_penalty}, "
          f"int8 {settings.quantize_int8}; current CHATBOT_HANDOFF_MIN_SCORE {settings.handoff_min_score}")
    print("sets: " + ", ".join(f"{name} {len(scores)}" for name, (scores, _) in sets.items()))
    print()
    print("| threshold | " + " | ".join(f"{name} handed off" for name in sets)
          + " | " + " | ".join(f"{name} chrF handed off / kept" for name, (_, c) in sets.items() if c) + " |")
    print("|" + " --- |" * (1 + len(sets) + sum(1 for _, c in sets.values() if c)))
    def mean(xs: list[float]) -> str:
        return f"{sum(xs) / len(xs):.1f}" if xs else "-"

    for threshold in args.thresholds:
        shares, quality = [], []
        for scores, chrfs in sets.values():
            low = [s < threshold for s in scores]
            shares.append(f"{sum(low) / len(low):.0%}")
            if chrfs:
                off = [c for c, lo in zip(chrfs, low) if lo]
                kept = [c for c, lo in zip(chrfs, low) if not lo]
                quality.append(f"{mean(off)} / {mean(kept)}")
        print(f"| {threshold} | " + " | ".join(shares + quality) + " |")


if __name__ == "__main__":
    main()
