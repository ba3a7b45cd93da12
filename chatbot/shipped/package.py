"""Turn a finished demo training run into the shipped model directory (used by scripts/train_demo_model).

The shipped copy is the run's best checkpoint re-saved as fp16 safetensors (half the size, loaded back as
float32), with its dev metrics in both languages (SGD dev, the CrossWOZ dev part), the TF-IDF baselines on
the same pairs, the recipe, exact command, settings and duration, and the data licenses, so the directory
explains itself. ``WORK/card_notes.md``, when present, is appended to the card (measurements made outside
the script: serving cost, grounding counts).

    python -m chatbot.shipped.package --work WORK --out chatbot/shipped/demo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DATA_LICENSES = (
    ("Schema-Guided Dialogue (SGD), Rastogi et al. 2020, Google Research", "CC BY-SA 4.0",
     "https://github.com/google-research-datasets/dstc8-schema-guided-dialogue"),
    ("Taskmaster-4 (coffee orders), Bill Byrne and Saravanan Ganesh, Google LLC", "CC BY 4.0",
     "https://github.com/google-research-datasets/Taskmaster"),
    ("CrossWOZ (validation split), Zhu et al. 2020, Tsinghua University CoAI", "Apache-2.0",
     "https://github.com/thu-coai/CrossWOZ"),
    ("ABCD sample (Action-Based Conversations Dataset), ASAPP", "MIT", "https://github.com/asappresearch/abcd"),
    ("chatterbot-corpus (English and Chinese), Gunther Cox and contributors", "BSD 3-Clause",
     "https://github.com/gunthercox/chatterbot-corpus"),
)
METRIC_KEYS = ("bleu", "chrf", "rouge_l", "meteor", "distinct_1", "distinct_2", "entity_copy_recall", "mixing_rate",
               "perplexity", "n")
DEV_SETS = {"en": "sgd_dev", "zh": "crosswoz_dev"}  # metrics.json key of each language's dev set


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"package: {path} is missing; run the earlier stages of scripts/train_demo_model") from None


def _by_language(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An eval report's per-language metrics (a one-language report is its own only language)."""
    return report.get("by_language") or {"en": report}


def package_model(work: Path, out: Path) -> dict[str, Any]:
    """Write ``out`` from the run in ``work``; returns the metrics written to ``out/metrics.json``."""
    from chatbot.model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint

    run = work / "run"
    loaded = load_checkpoint(run / "model")
    model_metrics = _by_language(_read_json(work / "dev_metrics.json"))
    baseline = _read_json(work / "baseline_metrics.json")
    result = _read_json(work / "train_result.json")
    command = (work / "command.txt").read_text("utf-8").strip()
    seconds = int((work / "train_seconds.txt").read_text().strip())
    train_config = json.loads((run / "train_config.json").read_text("utf-8"))
    metrics: dict[str, Any] = {}
    for language, name in DEV_SETS.items():
        if language in model_metrics:
            metrics[name] = {k: model_metrics[language].get(k) for k in METRIC_KEYS}
            metrics[f"tfidf_baseline_{name}"] = {k: baseline[language].get(k) for k in METRIC_KEYS
                                                 if k in baseline.get(language, {})}
    unconstrained = work / "dev_metrics_unconstrained.json"
    if unconstrained.exists():
        metrics["mixing_rate_without_script_constraint"] = {
            DEV_SETS.get(lang, lang): m.get("mixing_rate") for lang, m in _by_language(_read_json(unconstrained)).items()}
    metrics["training"] = {"steps": result["steps"], "epochs_done": result["epochs_done"], "stopped": result["stopped"],
                           "best_dev_loss": result["best_dev_loss"], "tokens_per_s": round(result["tokens_per_s"], 1),
                           "wall_seconds": seconds}
    stages_file = work / "stages.json"  # a run in stages (train, then fine-tune with --init-from): each one
    if stages_file.exists():
        metrics["training"]["stages"] = _read_json(stages_file)
    extra = dict(loaded.config.get("extra") or {})
    extra["shipped"] = {"command": command, "wall_seconds": seconds}
    save_checkpoint(out, loaded.model, loaded.vocab, metrics=metrics, decoding=loaded.config.get("decoding"),
                    extra=extra, languages=loaded.languages, dtype="float16")
    (out / WEIGHTS_FILE).chmod(0o644)  # shipped to every user of the install
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    notes = work / "card_notes.md"
    card = model_card(loaded.config, metrics, command, train_config)
    if notes.exists():
        card += "\n" + notes.read_text("utf-8").strip() + "\n"
    (out / "MODEL_CARD.md").write_text(card, "utf-8")
    return metrics


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _steps_line(tr: dict[str, Any]) -> str:
    if tr.get("stages"):
        return f"{sum(st['steps'] for st in tr['stages'])} steps in {len(tr['stages'])} stages"
    return (f"{tr['steps']} steps, {tr['epochs_done']} epochs, stopped by {tr['stopped']}; "
            f"{tr['tokens_per_s']} tokens/s")


def _recipes(stages: list[dict[str, Any]] | None) -> str:
    recipes = [st["recipe"] for st in stages] if stages else ["training/recipes/shipped.toml"]
    return ("recipe " if len(recipes) == 1 else "recipes ") + " then ".join(f"`{r}`" for r in recipes)


def _stages_table(stages: list[dict[str, Any]] | None) -> str:
    if not stages:
        return ""
    rows = "\n".join(f"| {i} | `{st['recipe']}` | {st['steps']} | {st['stopped']} | {_fmt(st['best_dev_loss'])} | "
                     f"{st['seconds'] / 60:.1f} |" for i, st in enumerate(stages, 1))
    return ("\nEach stage starts from the one before it (`chatbot train --init-from`):\n\n"
            "| stage | recipe | steps | stopped by | best dev loss | minutes |\n|---|---|---|---|---|---|\n"
            + rows + "\n")


def model_card(config: dict[str, Any], metrics: dict[str, Any], command: str, train_config: dict[str, Any]) -> str:
    tr = metrics["training"]
    sets = [name for name in DEV_SETS.values() if name in metrics]
    header = "| metric | " + " | ".join(f"{s} model | {s} TF-IDF retrieval" for s in sets) + " |"
    rows = "\n".join(f"| {k} | " + " | ".join(f"{_fmt(metrics[s].get(k))} | {_fmt(metrics[f'tfidf_baseline_{s}'].get(k))}"
                                              for s in sets) + " |" for k in METRIC_KEYS)
    mixing = metrics.get("mixing_rate_without_script_constraint")
    mixing_line = ("Mixing rate with the script constraint switched off (`CHATBOT_SCRIPT_CONSTRAINT=false`), the "
                   "share of replies it prevents: " + ", ".join(f"{k} {_fmt(v)}" for k, v in mixing.items()) + ".\n"
                   if mixing else "")
    licenses = "\n".join(f"- {name}: **{lic}** ({url})" for name, lic, url in DATA_LICENSES)
    m = config["model"]
    data = "\n".join(f"| `{d['spec']}` | {d['weight']} |" for d in train_config.get("data") or [])
    return f"""# Shipped model

A small {config['architecture']} (GRU encoder-decoder, Luong attention, copy mechanism) for English and
Chinese: {config['parameters']:,} parameters, vocabulary {m['vocab_size']:,}, embeddings {m['emb_dim']}, hidden
{m['hidden']}, stored as fp16 safetensors. It exists so a fresh install answers customers before anyone has
trained a model; the nightly job replaces it with models trained on your own transcripts.

What it knows: the task dialogues it was trained on (restaurant, hotel, flight, bus, train, rental-car,
event, movie, music, weather, banking and other bookings from SGD; coffee orders from Taskmaster-4; a few
customer-service exchanges from ABCD; Beijing hotels, restaurants and sights in Chinese from CrossWOZ; small
talk from chatterbot-corpus). It has no access to any company's systems: order status, refunds, prices and
opening hours are not known to it, and the service's grounding check sends replies that state such details
to a person.

## Why one model for both languages

One multilingual model at the serving size of the model it replaced, not one per language: the registry,
the nightly job, the promotion gate and the decoder processes serve one active model, and a second would
double all of them (and the decoders' memory). Chinese gets its share of the output vocabulary and of each
epoch through the recipe's weights, and a decoding processor keeps every reply in its conversation's script.

## How it was made

Trained by the product's own pipeline (`chatbot train`, {_recipes(tr.get('stages'))}, which hold
the data mix, weights and every setting) on one thread of a shared two-core AMD EPYC CPU in
{tr['wall_seconds'] / 60:.1f} minutes ({_steps_line(tr)}); reproduce with `scripts/train_demo_model`. No GPU
was used.
{_stages_table(tr.get('stages'))}
```
{command}
```

Data mix (spec, weight: each pair seen that many times an epoch):

| spec | weight |
|---|---|
{data}

Training settings{' of the last stage' if tr.get('stages') else ''} (`TrainConfig`):

```json
{json.dumps({k: v for k, v in train_config.items() if k != "data"}, indent=2)}
```

## Dev metrics (`chatbot eval --data sgd:...dev --data crosswoz:...@dev`)

SGD dev: {metrics.get('sgd_dev', {}).get('n')} pairs of the split; CrossWOZ dev: the held-out 20% of its dialogues
(`@dev`, {metrics.get('crosswoz_dev', {}).get('n')} pairs), never trained on. Baselines: TF-IDF nearest-neighbour retrieval indexed on SGD train and on the CrossWOZ train
part, scored the same way. BLEU uses sacrebleu's `zh` tokenizer for Chinese.

{header}
|---|{'---|---|' * len(sets)}
{rows}

{mixing_line}
## Data and licenses

{licenses}

The model weights are derived from these corpora; redistribute them under CC BY-SA 4.0 (the most
restrictive of them) with this attribution.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scripts/train_demo_model's work directory")
    parser.add_argument("--out", type=Path, required=True, help="the shipped model directory to write")
    args = parser.parse_args()
    print(json.dumps(package_model(args.work, args.out), indent=2))


if __name__ == "__main__":
    main()
