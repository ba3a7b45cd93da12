"""SGD dev: how often the model's best candidate states a detail nobody gave, and what the grounding check does.

    python benchmarks/grounding.py [--model chatbot/shipped/demo] [--limit 300] [--num-return-sequences 5]

For each dev pair the model writes its n-best candidates from the pair's context, exactly as the service
serves it (serving settings, int8 as configured). The sources are every earlier turn of the dialogue (what
the customer and the model saw); SGD has no company facts. Per margin the table counts the replies sent
as the model ranked them, those where a lower grounded candidate was sent instead, and those that would go
to an agent (no grounded candidate within the margin). The SGD reference replies are checked the same way:
they come from a system with a database behind it, so their "ungrounded" details are the ones a bot
without the company's systems cannot know.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
SGD = ROOT / ".." / "shared" / "data" / "sgd"


def main() -> None:
    import torch

    from chatbot.service.generator import ReplyGenerator
    from chatbot.service.grounding import choose
    from chatbot.service.handoff import HandoffRules
    from chatbot.service.handoff import low_confidence as low_confidence_of
    from chatbot.settings import load_settings
    from chatbot.shipped import shipped_model_dir
    from chatbot.text.grounding import Evidence, extract, ungrounded
    from training.sources import load_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=f"sgd:{SGD / 'dev'}")
    ap.add_argument("--model", type=Path, default=None, help="Checkpoint directory (default: the shipped model).")
    ap.add_argument("--limit", type=int, default=300, help="Dev pairs (every n-th, spread over the split).")
    ap.add_argument("--num-return-sequences", type=int, default=5)
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--examples", type=int, default=3, help="Replies shown per outcome of the check.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    settings = load_settings()
    model = args.model or shipped_model_dir()
    n = args.num_return_sequences
    generator = ReplyGenerator.from_checkpoint(model, settings=settings, int8=settings.quantize_int8,
                                               num_return_sequences=n, num_beams=max(settings.num_beams, n))
    pairs = load_pairs([args.data], max_turns=1000)  # every earlier turn: all of them are sources
    dev = pairs[:: max(1, len(pairs) // args.limit)][: args.limit]

    started = time.perf_counter()
    replies = []
    for i in range(0, len(dev), 16):
        chunk = dev[i : i + 16]
        replies += generator.generate([list(p.context) for p in chunk], language=chunk[0].language,
                                      return_attention=False)
    decode_s = time.perf_counter() - started

    def check_all() -> list[tuple[Any, list[tuple[str, float]], list[list[str]], Evidence]]:
        checks = []
        for pair, reply in zip(dev, replies):
            evidence = Evidence.of(text for _, text in pair.context)
            candidates = [(c.text, float(c.score)) for c in reply.candidates]
            missing = [[d.text for d in ungrounded(text, evidence, reply.language)] for text, _ in candidates]
            checks.append((pair, candidates, missing, evidence))
        return checks

    # Cold: every text read for the first time. Warm: what the service pays per message once the earlier
    # turns of a conversation and the frequent candidates are cached (only the new texts are read).
    ungrounded("Warm up at Blue Bottle, 7 pm.", Evidence.of(["load spaCy once"]), "en")  # not timed
    started = time.perf_counter()
    checks = check_all()
    cold_ms = (time.perf_counter() - started) * 1000 / max(len(dev), 1)
    started = time.perf_counter()
    check_all()
    warm_ms = (time.perf_counter() - started) * 1000 / max(len(dev), 1)
    turns = sum(len(p.context) for p in dev) / max(len(dev), 1)

    top_ungrounded = [c for c in checks if c[2] and c[2][0]]
    kinds: Counter[str] = Counter()
    for pair, candidates, missing, _ in top_ungrounded:
        stated = {d.text: d.kind for d in extract(candidates[0][0], pair.language)}
        kinds.update(stated[text] for text in missing[0])
    reference = sum(1 for pair, _, _, evidence in checks if ungrounded(pair.reply, evidence, pair.language))
    rules = HandoffRules.of(settings)
    low_confidence = sum(1 for (_, candidates, _, _), reply in zip(checks, replies)
                         if low_confidence_of(candidates, rules, reply.token_logprob) is not None)

    print(f"{args.data}: {len(dev)} pairs; model {model}; {n} candidates per reply "
          f"(beam {max(settings.num_beams, n)}, int8 {settings.quantize_int8}); decode {decode_s:.1f} s; "
          f"grounding check per reply (all {n} candidates, {turns:.1f} earlier turns): {cold_ms:.2f} ms cold, "
          f"{warm_ms:.2f} ms cached")
    print(f"top candidate ungrounded: {len(top_ungrounded)} of {len(dev)} ({len(top_ungrounded) / len(dev):.1%}); "
          f"reference replies ungrounded: {reference} ({reference / len(dev):.1%}); "
          f"handed off for low confidence (per-token log-prob under {settings.handoff_min_token_logprob} or score "
          f"under {settings.handoff_min_score}): {low_confidence}")
    print("ungrounded details of the top candidates by kind: "
          + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    print()
    print("| margin | sent as ranked | lower grounded candidate sent | to an agent |")
    print("| --- | --- | --- | --- |")
    for margin in args.margins:
        outcome: Counter[str] = Counter()
        for _, candidates, missing, _ in checks:
            picked = choose(candidates, missing, margin)
            outcome["agent" if picked is None else "ranked" if picked == 0 else "other"] += 1
        default = " (default)" if margin == settings.grounding_margin else ""
        print(f"| {margin:g}{default} | {outcome['ranked']} | {outcome['other']} | {outcome['agent']} |")

    # A few of each outcome at the default margin: a lower candidate sent instead, and a reply for an agent.
    shown: Counter[bool] = Counter()
    for pair, candidates, missing, _ in top_ungrounded:
        picked = choose(candidates, missing, settings.grounding_margin)
        if shown[picked is None] >= args.examples:
            continue
        shown[picked is None] += 1
        print(f"\ncustomer: {pair.context[-1][1]}\n  top   ({candidates[0][1]:.2f}): {candidates[0][0]}"
              f"\n  not in the conversation: {', '.join(missing[0])}")
        if picked is None:
            print("  -> to an agent (no grounded candidate within the margin)")
        else:
            print(f"  -> sent #{picked + 1} ({candidates[picked][1]:.2f}): {candidates[picked][0]}")

if __name__ == "__main__":
    main()
