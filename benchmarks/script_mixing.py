"""Script mixing before and after the decoding constraint (issue 17), one model, several dev sets.

    python benchmarks/script_mixing.py --model chatbot/shipped/demo --limit 300 \
        --data sgd:../shared/data/sgd/dev --data crosswoz:../shared/data/crosswoz/val.json.zip@dev

Both go through ``training.evaluate.evaluate_model`` (the code behind ``chatbot eval``: replies decoded as
serving decodes them) on ``--limit`` pairs spread over each set (as ``chatbot eval --limit``); "before" with
the setting ``script_constraint = false`` (``CHATBOT_SCRIPT_CONSTRAINT=false``), "after" with it on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":  # benchmarks/training.py shadows the package
    sys.path[0] = str(ROOT)

KEYS = ("mixing_rate", "chrf", "bleu", "entity_copy_recall", "n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("chatbot/shipped/demo"))
    parser.add_argument("--data", action="append", required=True, help="FORMAT:PATH[@dev] (repeatable)")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()

    import torch

    from chatbot.model.checkpoint import load_checkpoint
    from chatbot.settings import load_settings
    from training.evaluate import context_limits, evaluate_model
    from training.metrics import mixes_scripts
    from training.sources import load_groups, spread

    torch.set_num_threads(1)
    settings = {"before (off)": load_settings(script_constraint=False),
                "after (on)": load_settings(script_constraint=True)}
    max_turns = context_limits(load_checkpoint(args.model).config, settings["after (on)"])[0]
    results: dict[str, dict[str, dict]] = {}
    for spec, group in zip(args.data, load_groups(args.data, max_turns)):
        pairs = spread(group, args.limit)
        results[spec] = {}
        for name, run_settings in settings.items():
            report = evaluate_model(args.model, pairs, run_settings, progress=False)
            results[spec][name] = {k: report.metrics.get(k) for k in KEYS}
            results[spec][name]["examples"] = [r["hypothesis"] for r in report.rows
                                               if mixes_scripts(r["hypothesis"], r["context"], r["language"])][:3]
    for spec, rows in results.items():
        print(f"\n{spec}")
        print(f"{'':<14}" + "".join(f"{k:>20}" for k in KEYS))
        for name, m in rows.items():
            cells = "".join(f"{m[k]:>20.4f}" if isinstance(m[k], float) else f"{m[k]!s:>20}" for k in KEYS)
            print(f"{name:<14}{cells}")
            for example in m["examples"]:
                print(f"{'':<14}mixes: {example}")
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
