"""How often the bot goes round in circles, and what ``CHATBOT_HANDOFF_REPEATS`` does about it.

Self-play on dev dialogues: the customer's turns of each dialogue are sent in order, and the bot's own
replies (decoded as served: int8, the serving settings, the grounding check's choice) are its side of the
context, so a reply can repeat what the bot itself said earlier. Per reply that says again what the customer
was already told (``chatbot.service.handoff.repeats``): did another candidate within the grounding margin say
something else (the service sends that one), or does the conversation go to a person?

The scripted customers do not answer the bot's questions (they say what the dataset's customer said to
another system), so loops are more frequent here than with real customers: read the figures as an upper
bound, and the examples as what the rule catches.

    python benchmarks/repeats.py                     # the shipped model, 100 dialogues each of SGD and CrossWOZ dev
    python benchmarks/repeats.py --model runs/model --dialogues 30
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import zipfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sgd_dialogues(root: Path) -> list[list[str]]:
    return [[t["utterance"] for t in d["turns"] if t["speaker"] == "USER"]
            for f in sorted(root.glob("dialogues_*.json.gz")) for d in json.load(gzip.open(f))]


def crosswoz_dialogues(path: Path) -> list[list[str]]:
    with zipfile.ZipFile(path) as z:
        data = json.loads(z.read(z.namelist()[0]))
    return [[m["content"] for m in d["messages"] if m["role"] == "usr"] for d in data.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("chatbot/shipped/demo"))
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--dialogues", type=int, default=100, help="dialogues per dev set (a fixed shuffle)")
    parser.add_argument("--examples", type=int, default=4)
    args = parser.parse_args()

    from tqdm import tqdm

    from chatbot.service.generator import ReplyGenerator
    from chatbot.service.grounding import Grounder, GroundingSources, choose
    from chatbot.service.handoff import repeats
    from chatbot.settings import load_settings

    settings = load_settings()
    generator = ReplyGenerator.from_checkpoint(args.model, settings=settings, int8=True)
    grounder = Grounder(settings.grounding_margin)
    sets = []
    if (args.data / "sgd" / "dev").is_dir():
        sets.append(("SGD dev", sgd_dialogues(args.data / "sgd" / "dev"), "en"))
    if (args.data / "crosswoz" / "val.json.zip").is_file():
        sets.append(("CrossWOZ val", crosswoz_dialogues(args.data / "crosswoz" / "val.json.zip"), "zh"))
    if not sets:
        raise SystemExit(f"no SGD dev or CrossWOZ data under {args.data}")
    print(f"model {args.model}; grounding margin {settings.grounding_margin}; self-play, the bot's replies as "
          "context; a repeat says again what a bot turn in the context said (the same words, case and "
          "punctuation aside, or all but a word or two; 4 words or more)")
    for name, dialogues, language in sets:
        random.Random(0).shuffle(dialogues)
        replies = repeated = avoided = conversations = 0
        examples: list[tuple[str, str, str, str]] = []
        for customer_turns in tqdm(dialogues[: args.dialogues], desc=name, leave=False):
            context: list[tuple[str, str]] = []
            looped = False
            for text in customer_turns:
                context.append(("customer", text))
                reply = generator.generate([context], language=language)[0]
                candidates = [(c_text, float(score)) for c_text, score in reply.candidates]
                verdict = grounder.check(candidates, GroundingSources(tuple(t for _, t in context), ()), language)
                sent = candidates[verdict.picked][0] if verdict.grounded else reply.text
                replies += 1
                if repeats(sent, context):
                    repeated += 1
                    looped = True
                    other = choose(candidates, verdict.ungrounded, settings.grounding_margin,
                                   allowed=[not repeats(c_text, context) for c_text, _ in candidates])
                    instead = candidates[other][0] if other is not None else "(a person takes over)"
                    avoided += other is not None
                    if len(examples) < args.examples:
                        examples.append((context[-2][1] if len(context) > 1 else "", text, sent, instead))
                    if other is not None:
                        sent = instead
                context.append(("bot", sent))
            conversations += looped
        n = min(args.dialogues, len(dialogues))
        print(f"\n{name}: {n} dialogues, {replies} replies; repeating: {repeated} ({repeated / replies:.1%}); "
              f"another candidate sent: {avoided} ({avoided / replies:.1%}); to a person: {repeated - avoided} "
              f"({(repeated - avoided) / replies:.1%}); dialogues with a repeat: {conversations} of {n}")
        for bot, customer, sent, instead in examples:
            print(f"  bot: {bot}\n  customer: {customer}\n  would repeat: {sent}\n  -> {instead}\n")


if __name__ == "__main__":
    main()
