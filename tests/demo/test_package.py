"""scripts/train_demo_model's last stage: a finished run becomes a self-describing fp16 model directory."""

from __future__ import annotations

import json
import shutil

from chatbot.model.checkpoint import load_checkpoint
from chatbot.service.generator import ReplyGenerator
from chatbot.shipped.package import package_model


def test_package_writes_fp16_weights_metrics_and_model_card(tiny_model, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(tiny_model, work / "run" / "model")
    (work / "run" / "train_config.json").write_text(json.dumps(
        {"size": "tiny", "epochs": 2, "data": [{"spec": "crosswoz:x.json@train", "weight": 4.0}]}))
    en = {"bleu": 12.5, "chrf": 30.25, "entity_copy_recall": 0.5, "perplexity": 20.0, "mixing_rate": 0.0, "n": 300}
    zh = {"bleu": 9.5, "chrf": 12.0, "entity_copy_recall": 0.25, "perplexity": 30.0, "mixing_rate": 0.0, "n": 200}
    (work / "dev_metrics.json").write_text(json.dumps({**en, "by_language": {"en": en, "zh": zh}}))
    (work / "dev_metrics_unconstrained.json").write_text(json.dumps(
        {"by_language": {"en": {"mixing_rate": 0.01}, "zh": {"mixing_rate": 0.125}}}))
    (work / "baseline_metrics.json").write_text(json.dumps({"en": {"bleu": 8.0, "chrf": 25.0, "n": 300},
                                                            "zh": {"bleu": 5.0, "chrf": 6.0, "n": 200}}))
    (work / "card_notes.md").write_text("## Serving cost\n\n225 replies/s\n")
    (work / "train_result.json").write_text(json.dumps({"steps": 600, "epochs_done": 1.4, "stopped": "max_minutes",
                                                        "best_dev_loss": 3.2, "tokens_per_s": 812.34}))
    (work / "command.txt").write_text(".venv/bin/chatbot train --data sgd:../shared/data/sgd/train --out WORK/run\n")
    (work / "train_seconds.txt").write_text("2160\n")

    out = tmp_path / "shipped"
    metrics = package_model(work, out)

    loaded = load_checkpoint(out)
    assert loaded.config["weights"]["dtype"] == "float16"
    assert loaded.config["metrics"] == metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["sgd_dev"]["chrf"] == 30.25 and metrics["tfidf_baseline_sgd_dev"]["bleu"] == 8.0
    assert metrics["crosswoz_dev"]["bleu"] == 9.5 and metrics["tfidf_baseline_crosswoz_dev"]["chrf"] == 6.0
    assert metrics["mixing_rate_without_script_constraint"] == {"sgd_dev": 0.01, "crosswoz_dev": 0.125}
    assert metrics["training"]["wall_seconds"] == 2160
    assert (out / "model.safetensors").stat().st_size < (tiny_model / "model.safetensors").stat().st_size
    card = (out / "MODEL_CARD.md").read_text()
    assert "36.0 minutes" in card and "chatbot train --data sgd:" in card
    assert "| bleu | 12.50 | 8.00 | 9.50 | 5.00 |" in card and "CC BY-SA 4.0" in card and "Apache-2.0" in card
    assert "| `crosswoz:x.json@train` | 4.0 |" in card and "training/recipes/shipped.toml" in card
    assert "crosswoz_dev 0.12" in card and card.rstrip().endswith("225 replies/s")

    # A run in two stages (train, then fine-tune with --init-from) lists both in the metrics and the card.
    stages = [{"recipe": "training/recipes/shipped.toml", "steps": 400, "stopped": "max_steps", "best_dev_loss": 3.5,
               "seconds": 1500},
              {"recipe": "training/recipes/shipped-continue.toml", "steps": 600, "stopped": "max_minutes",
               "best_dev_loss": 3.2, "seconds": 660}]
    (work / "stages.json").write_text(json.dumps(stages))
    metrics = package_model(work, out)
    assert metrics["training"]["stages"] == stages
    card = (out / "MODEL_CARD.md").read_text()
    assert "1000 steps in 2 stages" in card
    assert "| 2 | `training/recipes/shipped-continue.toml` | 600 | max_minutes | 3.20 | 11.0 |" in card
    # Half precision does not change what this model says.
    for path in (tiny_model, out):
        replies = ReplyGenerator.from_checkpoint(path).generate([[("customer", "where is my order")]])
        assert replies[0].text == "it ships today."
