"""Sequence-level knowledge distillation (Kim & Rush, 2016): a smaller student learns the teacher's
beam-search replies instead of the human references, which are noisier and harder to imitate.

The report compares teacher and student on size (parameters, MB on disk), speed (replies per second
with the same decoding settings) and quality (the eval metrics on held-out references).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.sources import Pair, split_dev


def teacher_pairs(teacher_dir: Path, pairs: Sequence[Pair], batch_size: int = 32, progress: bool = True) -> list[Pair]:
    """The same contexts with the teacher's best beam-search reply as the target."""
    from tqdm import tqdm

    from chatbot.service.generator import ReplyGenerator

    generator = ReplyGenerator.from_checkpoint(teacher_dir)
    out: list[Pair] = []
    for start in tqdm(range(0, len(pairs), batch_size), disable=not progress, desc="teacher", unit="batch"):
        chunk = pairs[start : start + batch_size]
        replies = generator.generate([list(p.context) for p in chunk], return_attention=False)
        out.extend(dataclasses.replace(p, reply=r.text) for p, r in zip(chunk, replies) if r.text.strip())
    return out


def _profile(model_dir: Path, dev: Sequence[Pair], settings: Any) -> dict[str, Any]:
    from chatbot.model.checkpoint import WEIGHTS_FILE
    from chatbot.service.generator import ReplyGenerator
    from training.evaluate import evaluate_model

    generator = ReplyGenerator.from_checkpoint(model_dir)
    contexts = [list(p.context) for p in dev]
    t0 = time.perf_counter()
    for start in range(0, len(contexts), 16):
        generator.generate(contexts[start : start + 16], return_attention=False)
    speed = len(contexts) / (time.perf_counter() - t0)
    quality = evaluate_model(model_dir, dev, settings, progress=False).metrics
    return {"parameters": generator.loaded.model.num_parameters(),
            "size_mb": (Path(model_dir) / WEIGHTS_FILE).stat().st_size / 2**20, "replies_per_s": speed, **quality}


def distill(teacher_dir: Path, out_dir: Path, pairs: Sequence[Pair], settings: Any, *, size: str = "small",
            eval_limit: int = 200, max_minutes: float | None = None, progress: bool = True,
            config_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a ``size`` student on the teacher's replies; return the teacher-vs-student report."""
    import json

    from training.train import TrainConfig, decoding_of, train

    cfg = TrainConfig.from_toml(None, size=size, **(config_overrides or {}))
    train_pairs, dev_pairs = split_dev(pairs, cfg.dev_fraction)
    if not dev_pairs:
        raise ValueError("distillation needs held-out pairs to compare teacher and student")
    distilled = teacher_pairs(Path(teacher_dir), train_pairs, progress=progress)
    result = train(distilled, dev_pairs, Path(out_dir), cfg, max_minutes=max_minutes, threads=settings.torch_threads,
                   progress=progress, decoding=decoding_of(settings))
    dev = dev_pairs[:eval_limit]
    report = {"teacher": _profile(Path(teacher_dir), dev, settings), "student": _profile(result.model_dir, dev, settings),
              "distilled_pairs": len(distilled), "student_dir": str(result.model_dir), "training": result.to_dict()}
    (Path(out_dir) / "distill_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report
