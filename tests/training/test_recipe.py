"""A recipe's data mix: ``[[data]]`` tables with sampling weights, read by ``chatbot train`` without --data."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.training.test_train import TINY_TOML
from training.sources import Pair, load_pairs, weighted
from training.train import TrainConfig, TrainError

ROOT = Path(__file__).resolve().parents[2]


def _pairs(n: int) -> list[Pair]:
    return [Pair((("customer", f"question {i}"),), f"answer {i}", conversation=f"c:{i}") for i in range(n)]


def test_weights_repeat_whole_parts_and_take_a_fixed_share_of_the_fraction() -> None:
    pairs = _pairs(1000)
    assert weighted(pairs, 1.0) == pairs
    assert Counter(weighted(pairs, 3.0)) == {p: 3 for p in pairs}
    half = weighted(pairs, 0.5)
    assert 430 < len(half) < 570 and len(set(half)) == len(half)
    assert weighted(pairs, 0.5) == half  # the same share every run
    counts = Counter(weighted(pairs, 2.5))
    assert set(counts.values()) == {2, 3} and {p for p, c in counts.items() if c == 3} == set(half)


def test_recipe_data_tables_parse_and_bad_ones_are_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('size = "tiny"\n[[data]]\nspec = "sgd:a"\n[[data]]\nspec = "crosswoz:b@train"\nweight = 4\n')
    cfg = TrainConfig.from_toml(recipe)
    assert [(d.spec, d.weight) for d in cfg.data] == [("sgd:a", 1.0), ("crosswoz:b@train", 4.0)]
    for bad in ('[[data]]\nspec = "x:y"\nweight = 0\n', '[[data]]\nweight = 2\n', '[[data]]\nspec = "x:y"\nw = 1\n'):
        recipe.write_text(bad)
        with pytest.raises(TrainError, match="invalid training config"):
            TrainConfig.from_toml(recipe)


def test_shipped_recipe_names_every_corpus_the_product_reads() -> None:
    cfg = TrainConfig.from_toml(ROOT / "training" / "recipes" / "shipped.toml")
    formats = {d.spec.split(":", 1)[0] for d in cfg.data}
    assert {"sgd", "taskmaster", "abcd", "chatterbot", "crosswoz"} <= formats
    assert not any("@dev" in d.spec for d in cfg.data)  # the CrossWOZ dev part is held out for evaluation


def _chatbot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(cwd / "data")}
    return subprocess.run(["chatbot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_train_without_data_flags_reads_the_recipe_mix(tmp_path: Path, tiny_jsonl: Path) -> None:
    extra = tmp_path / "extra.jsonl"
    extra.write_text(tiny_jsonl.read_text().replace('"id": "', '"id": "x'))  # other conversation ids
    recipe = tmp_path / "mix.toml"
    recipe.write_text(TINY_TOML.format(epochs=1, ckpt=5) + f'\n[[data]]\nspec = "jsonl:{tiny_jsonl}"\nweight = 2\n'
                      f'\n[[data]]\nspec = "jsonl:{extra}"\nweight = 0.5\n')
    done = _chatbot("train", "--config", str(recipe), "--out", str(tmp_path / "run"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["manifest"]
    assert manifest["data"] == [f"jsonl:{tiny_jsonl}", f"jsonl:{extra}"]
    assert manifest["weights"] == {f"jsonl:{tiny_jsonl}": 2.0, f"jsonl:{extra}": 0.5}
    n = len(load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6))
    assert manifest["train_pairs"] + manifest["dev_pairs"] > 2 * n * 0.9  # the weighted mix was trained on
    recipe.write_text(TINY_TOML.format(epochs=1, ckpt=5))
    nothing = _chatbot("train", "--config", str(recipe), "--out", str(tmp_path / "run2"), cwd=tmp_path)
    assert nothing.returncode == 1 and "no training data" in nothing.stderr
