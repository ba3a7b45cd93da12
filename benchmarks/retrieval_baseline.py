"""A trained model vs the TF-IDF nearest-neighbour retrieval baseline, side by side, per language.

    python benchmarks/retrieval_baseline.py [--model OUT/model] [--limit 1000] [--corpus sgd crosswoz]

The baseline answers each dev context with the reply of the most similar training context of the same
corpus: SGD dev from SGD train (English), and the CrossWOZ dev part from the CrossWOZ train part (Chinese;
the ``@dev``/``@train`` parts of its one released split, never sharing a dialogue). Both systems are scored
with the same metrics (``training.metrics``; BLEU with sacrebleu's ``zh`` tokenizer for Chinese) on the same
dev pairs, and the last column gives the model's BLEU and chrF as multiples of the baseline's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
DATA = ROOT / ".." / "shared" / "data"
CROSSWOZ = DATA / "crosswoz" / "val.json.zip"
CORPORA = {  # name -> (index spec, dev spec)
    "sgd": (f"sgd:{DATA / 'sgd' / 'train'}", f"sgd:{DATA / 'sgd' / 'dev'}"),
    "crosswoz": (f"crosswoz:{CROSSWOZ}@train", f"crosswoz:{CROSSWOZ}@dev"),
}
KEYS = ("bleu", "chrf", "rouge_l", "meteor", "entity_copy_recall", "distinct_2", "mixing_rate", "perplexity", "n")


def compare(name: str, train_spec: str, dev_spec: str, model: Path | None, limit: int) -> None:
    from chatbot.settings import load_settings
    from training.evaluate import context_limits, evaluate_model
    from training.retrieval import baseline_metrics
    from training.sources import load_pairs, spread

    train_pairs = load_pairs([train_spec], max_turns=6)
    dev_all = load_pairs([dev_spec], max_turns=6)
    dev = spread(dev_all, limit)
    language = dev[0].language
    # Entity-copy recall of both systems counts the same values: those in the turns the model is given.
    settings = load_settings()
    max_turns = settings.context_turns
    if model:
        from chatbot.model.checkpoint import load_checkpoint

        max_turns = context_limits(load_checkpoint(model).config, settings)[0]
    rows = {"tfidf-retrieval": baseline_metrics(train_pairs, dev, max_turns)}
    if model:
        rows["model"] = evaluate_model(model, dev, settings, progress=True).metrics
    print(f"\n{name} dev ({len(dev)} of {len(dev_all)} pairs, language {language}); index: {len(train_pairs)} "
          f"pairs of {train_spec.split(':', 1)[0]} train; entity-copy context: last {max_turns} turns")
    print(f"{'system':<16}" + "".join(f"{k:>20}" for k in KEYS))
    for system, m in rows.items():
        cells = "".join(f"{m.get(k):>20.4f}" if isinstance(m.get(k), float) else f"{str(m.get(k, '-')):>20}"
                        for k in KEYS)
        print(f"{system:<16}{cells}")
    if "model" in rows:
        base, ours = rows["tfidf-retrieval"], rows["model"]
        ratios = {k: ours[k] / base[k] if base[k] else float("inf") for k in ("bleu", "chrf")}
        print(f"{'model / baseline':<16}" + "".join(f"{k} x{v:.2f}".rjust(20) for k, v in ratios.items()))


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="Model directory to compare (omit for the baselines only).")
    ap.add_argument("--limit", type=int, default=1000, help="Dev pairs scored per corpus (spread over the split).")
    ap.add_argument("--corpus", nargs="+", choices=sorted(CORPORA), default=sorted(CORPORA, reverse=True))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.corpus:
        train_spec, dev_spec = CORPORA[name]
        if not Path(dev_spec.split(":", 1)[1].split("@")[0]).exists():
            print(f"\n{name}: corpus not found ({dev_spec}); skipped")
            continue
        compare(name, train_spec, dev_spec, args.model, args.limit)


if __name__ == "__main__":
    main()
