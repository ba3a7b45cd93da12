from __future__ import annotations

import json

import pytest

from chatbot.settings import load_settings
from training.distill import distill
from training.sources import load_pairs, split_dev
from training.train import train


@pytest.mark.slow
def test_student_learns_teacher_replies_and_is_smaller(tmp_path, tiny_jsonl, tiny_config):
    pairs = load_pairs([f"jsonl:{tiny_jsonl}"], max_turns=6)
    big = tiny_config.model_copy(update={"epochs": 6, "model": {"hidden": 96, "emb_dim": 48}})
    teacher = train(*split_dev(pairs, 0.1), tmp_path / "teacher", big, progress=False,
                    decoding={"num_beams": 2, "max_new_tokens": 16})
    settings = load_settings(data_dir=tmp_path / "data", num_beams=2, max_new_tokens=16, torch_threads=1)
    overrides = tiny_config.model_dump(exclude={"size", "model"}) | {"epochs": 6}
    report = distill(teacher.model_dir, tmp_path / "student", pairs, settings, size="tiny", eval_limit=10,
                     progress=False, config_overrides=overrides)
    t, s = report["teacher"], report["student"]
    assert s["parameters"] < t["parameters"] and s["size_mb"] < t["size_mb"]
    assert s["replies_per_s"] > 0 and s["chrf"] > 20
    assert report["distilled_pairs"] > 50
    assert json.loads((tmp_path / "student" / "distill_report.json").read_text())["student"]["n"] == s["n"]
