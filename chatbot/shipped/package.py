"""Turn a finished demo training run into the shipped model directory (used by scripts/train_demo_model).

The shipped copy is the run's best checkpoint re-saved as fp16 safetensors (half the size, loaded back as
float32), with its SGD dev metrics, the TF-IDF baseline on the same pairs, the exact command, settings and
duration, and the data licenses, so the directory explains itself.

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
    ("chatterbot-corpus (English and Chinese), Gunther Cox and contributors", "BSD 3-Clause",
     "https://github.com/gunthercox/chatterbot-corpus"),
)
METRIC_KEYS = ("bleu", "chrf", "rouge_l", "meteor", "distinct_1", "distinct_2", "entity_copy_recall", "perplexity",
               "n")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"package: {path} is missing; run the earlier stages of scripts/train_demo_model") from None


def package_model(work: Path, out: Path) -> dict[str, Any]:
    """Write ``out`` from the run in ``work``; returns the metrics written to ``out/metrics.json``."""
    from chatbot.model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint

    run = work / "run"
    loaded = load_checkpoint(run / "model")
    model_metrics = _read_json(work / "sgd_dev_metrics.json")
    baseline = _read_json(work / "baseline_metrics.json")
    result = _read_json(work / "train_result.json")
    command = (work / "command.txt").read_text("utf-8").strip()
    seconds = int((work / "train_seconds.txt").read_text().strip())
    train_config = json.loads((run / "train_config.json").read_text("utf-8"))
    metrics = {
        "sgd_dev": {k: model_metrics.get(k) for k in METRIC_KEYS},
        "tfidf_baseline_sgd_dev": {k: baseline.get(k) for k in METRIC_KEYS if k in baseline},
        "training": {"steps": result["steps"], "epochs_done": result["epochs_done"], "stopped": result["stopped"],
                     "best_dev_loss": result["best_dev_loss"], "tokens_per_s": round(result["tokens_per_s"], 1),
                     "wall_seconds": seconds},
    }
    extra = dict(loaded.config.get("extra") or {})
    extra["shipped"] = {"command": command, "wall_seconds": seconds}
    save_checkpoint(out, loaded.model, loaded.vocab, metrics=metrics, decoding=loaded.config.get("decoding"),
                    extra=extra, languages=loaded.languages, dtype="float16")
    (out / WEIGHTS_FILE).chmod(0o644)  # shipped to every user of the install
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    (out / "MODEL_CARD.md").write_text(model_card(loaded.config, metrics, command, train_config), "utf-8")
    return metrics


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def model_card(config: dict[str, Any], metrics: dict[str, Any], command: str, train_config: dict[str, Any]) -> str:
    dev, base, tr = metrics["sgd_dev"], metrics["tfidf_baseline_sgd_dev"], metrics["training"]
    rows = "\n".join(f"| {k} | {_fmt(dev.get(k))} | {_fmt(base.get(k))} |" for k in METRIC_KEYS if k != "n")
    licenses = "\n".join(f"- {name}: **{lic}** ({url})" for name, lic, url in DATA_LICENSES)
    m = config["model"]
    return f"""# Shipped demo model

A small {config['architecture']} (GRU encoder-decoder, Luong attention, copy mechanism):
{config['parameters']:,} parameters, vocabulary {m['vocab_size']:,}, embeddings {m['emb_dim']}, hidden {m['hidden']},
stored as fp16 safetensors. It exists so a fresh install answers in English and Chinese before anyone has
trained a model; the nightly job replaces it with models trained on your own transcripts.

## How it was made

Trained by the product's own pipeline (`chatbot train`, recipe `training/recipes/demo.toml`) on two
shared CPU cores in {tr['wall_seconds'] / 60:.1f} minutes ({tr['steps']} steps, {tr['epochs_done']} epochs,
stopped by {tr['stopped']}; {tr['tokens_per_s']} tokens/s); reproduce with `scripts/train_demo_model`.

```
{command}
```

Training settings (`TrainConfig`):

```json
{json.dumps(train_config, indent=2)}
```

## SGD dev metrics (first {dev.get('n')} pairs, `chatbot eval --limit {dev.get('n')}`)

| metric | this model | TF-IDF retrieval baseline (index: all of SGD train) |
|---|---|---|
{rows}

## Data and licenses

{licenses}

The model weights are derived from these corpora; redistribute them under CC BY-SA 4.0 (the most
restrictive of the three) with this attribution.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scripts/train_demo_model's work directory")
    parser.add_argument("--out", type=Path, required=True, help="the shipped model directory to write")
    args = parser.parse_args()
    print(json.dumps(package_model(args.work, args.out), indent=2))


if __name__ == "__main__":
    main()
