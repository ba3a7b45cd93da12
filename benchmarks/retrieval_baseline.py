"""SGD dev: a trained model vs the TF-IDF nearest-neighbour retrieval baseline, side by side.

    python benchmarks/retrieval_baseline.py [--model OUT/model] [--limit 1000]

The baseline answers each dev context with the reply of the most similar training context. Both are
scored with the same metrics (``training.metrics``) on the same dev pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
SGD = ROOT / ".." / "shared" / "data" / "sgd"


def main() -> None:
    import torch

    from chatbot.settings import load_settings
    from training import metrics
    from training.evaluate import visible_context
    from training.retrieval import TfidfRetriever
    from training.sources import load_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=f"sgd:{SGD / 'train'}")
    ap.add_argument("--dev", default=f"sgd:{SGD / 'dev'}")
    ap.add_argument("--model", type=Path, help="Model directory to compare (omit for the baseline only).")
    ap.add_argument("--limit", type=int, default=1000, help="Dev pairs scored (every 'n'th, spread over the split).")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train_pairs = load_pairs([args.train], max_turns=6)
    dev_all = load_pairs([args.dev], max_turns=6)
    dev = dev_all[:: max(1, len(dev_all) // args.limit)][: args.limit]
    retriever = TfidfRetriever().fit([p.context_text() for p in train_pairs], [p.reply for p in train_pairs])
    hyps = retriever.predict([p.context_text() for p in dev])
    # Entity-copy recall of both systems counts the same values: those in the turns the model is given.
    settings = load_settings()
    max_turns = settings.context_turns
    if args.model:
        from chatbot.model.checkpoint import load_checkpoint
        from training.evaluate import context_limits

        max_turns = context_limits(load_checkpoint(args.model).config, settings)[0]
    rows = {"tfidf-retrieval": metrics.text_metrics(metrics.Scored(
        [visible_context(p, max_turns) for p in dev], [p.reply for p in dev], hyps,
        [list(p.slot_values) for p in dev]))}
    if args.model:
        from training.evaluate import evaluate_model

        rows["model"] = evaluate_model(args.model, dev, settings, progress=True).metrics
    keys = ("bleu", "chrf", "rouge_l", "meteor", "entity_copy_recall", "distinct_2", "perplexity", "n")
    print(f"SGD dev ({len(dev)} of {len(dev_all)} pairs); train pairs {len(train_pairs)}; "
          f"entity-copy context: last {max_turns} turns")
    print(f"{'system':<16}" + "".join(f"{k:>20}" for k in keys))
    for name, m in rows.items():
        cells = "".join(f"{m.get(k):>20.4f}" if isinstance(m.get(k), float) else f"{str(m.get(k, '-')):>20}" for k in keys)
        print(f"{name:<16}{cells}")


if __name__ == "__main__":
    main()
