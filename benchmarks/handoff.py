"""Where should low confidence send a conversation to a person? Three measures of it, per threshold.

    python benchmarks/handoff.py [--model chatbot/shipped/demo] [--limit 300]

The model answers, exactly as the service serves it (settings' decoding, int8 as configured): dev pairs it
was trained for (SGD dev, CrossWOZ dev), customer-service questions it cannot know (every phrasing of
``benchmarks/learning.py``'s facts: opening hours, refunds, delivery, ...) and that benchmark's unrelated
requests, and small talk in both languages (greetings, thanks, goodbyes: short replies a customer must get
from the bot). Per threshold on each measure the table gives the share of each set that would go to a
person, and the chrF of the dev replies handed off and kept (a good threshold hands off the weak ones):

- ``score``: the best candidate's search score, log-prob / length^length_penalty
  (``CHATBOT_HANDOFF_MIN_SCORE``); the length penalty weighs hardest on short replies;
- ``token``: its mean log-prob per token (``CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB``), the score with the length
  normalisation undone;
- ``confidence``: the reply's confidence as stored and shown to agents (exp(token), halved for a tie with
  the runner-up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
DATA = ROOT / ".." / "shared" / "data"

# What customers say that is not a request: the bot must answer it itself, however short the reply.
SMALL_TALK = {
    "en": ["Hi", "Hello", "Hello there!", "Good morning", "Hey, how are you?", "How are you?", "Thanks",
           "Thank you", "Thank you so much!", "Thanks for your help.", "Great, thanks.", "OK", "Okay, got it.",
           "That's all, thank you.", "Bye", "Goodbye", "See you later", "Have a nice day!", "Nice to meet you",
           "Who are you?"],
    "zh": ["你好", "您好", "早上好", "晚上好", "你好吗？", "谢谢", "谢谢你", "非常感谢！", "谢谢你的帮助。", "好的",
           "好的，知道了", "没问题", "就这些，谢谢。", "再见", "拜拜", "晚安", "下次见", "祝你愉快", "很高兴认识你",
           "你是谁？"],
}


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
    ap.add_argument("--score", type=float, nargs="+", default=[-0.2, -0.25, -0.3, -0.4])
    ap.add_argument("--token", type=float, nargs="+", default=[-0.8, -1.0, -1.2, -1.4, -1.6, -1.8])
    ap.add_argument("--confidence", type=float, nargs="+", default=[0.2, 0.25, 0.3, 0.35])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    settings = load_settings()
    model = args.model or shipped_model_dir()
    generator = ReplyGenerator.from_checkpoint(model, settings=settings, int8=settings.quantize_int8)

    def answer(contexts: list[list[tuple[str, str]]], language: str) -> tuple[dict[str, list[float]], list[str]]:
        measures: dict[str, list[float]] = {"score": [], "token": [], "confidence": []}
        replies: list[str] = []
        for i in range(0, len(contexts), 16):
            for reply in generator.generate(contexts[i : i + 16], language=language, return_attention=False):
                measures["score"].append(float(reply.candidates[0].score))
                measures["token"].append(float(reply.token_logprob))
                measures["confidence"].append(float(reply.confidence))
                replies.append(reply.text)
        return measures, replies

    # name -> (measures per reply, chrF per reply or None)
    sets: dict[str, tuple[dict[str, list[float]], list[float] | None]] = {}
    for spec in args.data:
        pairs = spread(load_pairs([spec], 6), args.limit)  # the generator cuts each to the model's window
        if not pairs:
            continue
        measures, replies = answer([list(p.context) for p in pairs], pairs[0].language)
        sets[spec.split(":")[0] + " dev"] = (measures, [chrf([r], [p.reply]) for r, p in zip(replies, pairs)])
    unknown = [q for fact in FACTS for q in fact.taught + fact.unseen]
    sets["unknown CS questions"] = (answer([[("customer", q)] for q in unknown], "en")[0], None)
    sets["unrelated requests"] = (answer([[("customer", q)] for q in UNRELATED], "en")[0], None)
    talk: dict[str, list[str]] = {}
    for language, lines in SMALL_TALK.items():
        measures, talk[language] = answer([[("customer", q)] for q in lines], language)
        sets[f"small talk {language}"] = (measures, None)

    print(f"model {model}; decoding: beam {settings.num_beams}, length penalty {settings.length_penalty}, "
          f"int8 {settings.quantize_int8}; CHATBOT_HANDOFF_MIN_SCORE {settings.handoff_min_score}, "
          f"CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB {settings.handoff_min_token_logprob}")
    print("sets: " + ", ".join(f"{name} {len(m['score'])}" for name, (m, _) in sets.items()))

    def mean(xs: list[float]) -> str:
        return f"{sum(xs) / len(xs):.1f}" if xs else "-"

    for measure, thresholds in (("score", args.score), ("token", args.token), ("confidence", args.confidence)):
        print()
        print(f"| {measure} under | " + " | ".join(f"{name} handed off" for name in sets)
              + " | " + " | ".join(f"{name} chrF handed off / kept" for name, (_, c) in sets.items() if c) + " |")
        print("|" + " --- |" * (1 + len(sets) + sum(1 for _, c in sets.values() if c)))
        for threshold in thresholds:
            shares, quality = [], []
            for measures, chrfs in sets.values():
                low = [x < threshold for x in measures[measure]]
                shares.append(f"{sum(low) / len(low):.0%}")
                if chrfs:
                    off = [c for c, lo in zip(chrfs, low) if lo]
                    kept = [c for c, lo in zip(chrfs, low) if not lo]
                    quality.append(f"{mean(off)} / {mean(kept)}")
            print(f"| {threshold} | " + " | ".join(shares + quality) + " |")

    print()
    print("small talk, per reply: score / token / confidence")
    for language, lines in SMALL_TALK.items():
        measures = sets[f"small talk {language}"][0]
        for i, (line, reply) in enumerate(zip(lines, talk[language])):
            print(f"  {line!r} -> {reply!r}: {measures['score'][i]:.2f} / {measures['token'][i]:.2f} / "
                  f"{measures['confidence'][i]:.2f}")


if __name__ == "__main__":
    main()
