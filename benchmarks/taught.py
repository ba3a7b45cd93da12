"""What a model's taught answers (``taught.json``, written by the nightly) cost and change, side by side.

One model decoded as served (int8, the serving settings) with its taught answers off and on, in one run:
per source, the share of requests whose customer message is close enough to a taught question for the
model to score taught answers beside its search, the share of replies that change, the time per reply
(one request at a time, as a quiet server decodes), and sentence chrF against the dataset's reply.

    python benchmarks/taught.py --model data/nightly/job-1/train/model
    python benchmarks/taught.py --model M --data sgd:../shared/data/sgd/dev crosswoz:../shared/data/crosswoz/val.json.zip --limit 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":  # the training package, not training.py here
    sys.path[0] = str(ROOT)


def main() -> None:
    from chatbot.service.generator import serving_generator
    from chatbot.settings import load_settings
    from chatbot.text.taught import customer_side, load_taught
    from training.metrics import chrf
    from training.sources import load_pairs, spread

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model directory with a taught.json")
    parser.add_argument("--data", nargs="+", default=[f"sgd:{DATA / 'sgd' / 'dev'}",
                                                      f"crosswoz:{DATA / 'crosswoz' / 'val.json.zip'}"])
    parser.add_argument("--limit", type=int, default=200, help="pairs per source, spread over it")
    args = parser.parse_args()

    taught = load_taught(args.model)
    if taught is None:
        raise SystemExit(f"{args.model} has no taught.json: run a nightly with corrections first")
    settings = load_settings(None, torch_threads=1)
    off = serving_generator(args.model, settings, num_return_sequences=settings.num_return_sequences)
    off.taught = None
    on = serving_generator(args.model, settings)
    print(f"model {args.model}: {len(taught)} taught answers, weight {settings.taught_weight}, "
          f"min similarity {settings.taught_min_similarity}, proposals {settings.taught_proposals}")
    print("source | pairs | near a taught question | replies changed | ms/reply off | ms/reply on | "
          "chrF off | chrF on")
    for spec in args.data:
        pairs = spread(load_pairs([spec], 6), args.limit)
        if not pairs:
            print(f"{spec} | 0 (no data here)")
            continue
        near = sum(bool(taught.nearest(customer_side(list(p.context)[-on.max_turns :]), 1,
                                       settings.taught_min_similarity)) for p in pairs)
        replies, times = {}, {}
        for generator in (off, on):  # warm both before timing either
            generator.generate([list(p.context) for p in pairs[:3]], return_attention=False)
        for name, generator in (("off", off), ("on", on)):
            texts, ms = [], []
            for p in pairs:
                started = time.perf_counter()
                [reply] = generator.generate([list(p.context)], return_attention=False)
                ms.append((time.perf_counter() - started) * 1000)
                texts.append(reply.text)
            replies[name], times[name] = texts, ms
        changed = sum(a != b for a, b in zip(replies["off"], replies["on"]))
        references = [p.reply for p in pairs]
        print(f"{spec.split(':')[0]} | {len(pairs)} | {near / len(pairs):.1%} | {changed / len(pairs):.1%} | "
              f"{median(times['off']):.1f} | {median(times['on']):.1f} | "
              f"{chrf(replies['off'], references):.2f} | {chrf(replies['on'], references):.2f}")


if __name__ == "__main__":
    main()
