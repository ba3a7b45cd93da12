"""Training throughput: this pipeline vs a tutorial-style loop, same model and data, one run.

The tutorial loop shuffles, pads every batch to its longest example and runs the decoder and the loss one
timestep at a time from Python (the model's own ``step``: the same math); it takes as many pairs per batch
as the pipeline's batches hold on average. ``--baseline REV`` adds this project's pipeline (model training
path and batching) as it was at git revision REV, read with ``git show``, for a before/after from the same
run. "ours bf16" is the pipeline with ``precision = "bf16"`` (forward under CPU autocast; fp32 weights,
gradients and optimizer), which pays off on CPUs with AVX512-BF16 or AMX. Every loop counts real
(non-padding) source + target tokens per second; the loops take turns over
``--rounds`` rounds on fresh batches so load from other processes hits them alike.

    python benchmarks/training.py [--data sgd:../shared/data/sgd/dev] [--pairs 3000] [--size default]
                                  [--steps 8] [--rounds 2] [--threads 2] [--baseline HEAD] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from chatbot.text.vocab import PAD_ID

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: this file's name must not hide the `training` package

from benchmarks.gitrev import modules_at  # noqa: E402 -- needs the repository root on sys.path first

BASELINE_MODULES = {"seq2seq": "chatbot/model/seq2seq.py", "dataset": "training/dataset.py"}


def git_modules(rev: str) -> types.SimpleNamespace:
    """The model and batching modules as they were at git revision ``rev``."""
    return modules_at(rev, BASELINE_MODULES, prefix="_baseline_training")


def pipeline_batches(dataset: types.ModuleType, examples: list, cfg) -> list[list[int]]:
    """The training loop's batches for epoch 0 (the batching API of ``dataset``'s revision)."""
    if hasattr(dataset, "example_lengths"):
        sizes = [dataset.example_lengths(e) for e in examples]
    else:  # before target-first bucketing: one size per example
        sizes = [dataset.example_size(e) for e in examples]
    return dataset.BucketBatchSampler(sizes, cfg.max_tokens, cfg.max_batch_size, cfg.seed).global_batches(0)


def pipeline_step(model, batch, opt, cfg) -> None:
    """One step as ``training/train.py`` takes it."""
    from training.train import batch_loss

    loss = batch_loss(model, batch, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    opt.step()


def tutorial_step(model, batch, opt, cfg) -> None:
    """Per-timestep decoder call and loss, the way most seq2seq tutorials write it."""
    state = model.encode(batch)
    loss = 0.0
    for t in range(batch.tgt_in.size(1)):
        log_probs, state = model.step(batch.tgt_in[:, t], state)
        loss = loss + F.nll_loss(log_probs, batch.tgt_out[:, t], ignore_index=PAD_ID, reduction="sum")
    loss = loss / batch.tgt_mask.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    opt.step()


class Loop:
    """One way of training: its model, its batches (taken in order, round after round), its step."""

    def __init__(self, name: str, model: torch.nn.Module, batches: list[list[int]],
                 step: Callable[..., None]) -> None:
        self.name, self.model, self.batches, self.step = name, model, batches, step
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.next, self.tokens, self.seconds = 0, 0, 0.0

    def run(self, examples: list, vocab, cfg, steps: int, timed: bool = True) -> None:
        from chatbot.model.batch import collate

        self.model.train()
        for _ in range(steps):
            batch = collate([examples[i] for i in self.batches[self.next % len(self.batches)]], vocab)
            self.next += 1
            t0 = time.perf_counter()
            self.step(self.model, batch, self.opt, cfg)
            if timed:
                self.seconds += time.perf_counter() - t0
                self.tokens += int(batch.src_mask.sum() + batch.tgt_mask.sum())

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def main() -> None:
    from chatbot.model.seq2seq import Seq2Seq
    from training import dataset
    from training.dataset import encode_pairs
    from training.sources import load_pairs
    from training.train import TrainConfig, build_vocab

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=f"sgd:{ROOT / '..' / 'shared' / 'data' / 'sgd' / 'dev'}")
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--size", default="default", choices=["tiny", "small", "default"])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per loop per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", metavar="REV", help="also measure this project's pipeline at git revision REV")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = TrainConfig(size=args.size)
    pairs = load_pairs([args.data], cfg.max_turns)[: args.pairs]
    vocab = build_vocab(pairs, cfg)
    examples = encode_pairs(pairs, vocab, cfg.max_turns, cfg.max_src_tokens, cfg.max_tgt_tokens)
    model_cfg = cfg.model_config_for(len(vocab))
    init = Seq2Seq(model_cfg).state_dict()

    def model_of(cls: type) -> torch.nn.Module:
        model = cls(model_cfg)
        model.load_state_dict(init)
        return model

    ours = pipeline_batches(dataset, examples, cfg)
    batch_size = round(sum(map(len, ours)) / len(ours))  # same mean pairs per batch for the tutorial
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    loops = [Loop("tutorial", model_of(Seq2Seq), shuffled, tutorial_step)]
    if args.baseline:
        old = git_modules(args.baseline)
        loops.append(Loop(f"ours@{args.baseline}", model_of(old.seq2seq.Seq2Seq),
                          pipeline_batches(old.dataset, examples, cfg), pipeline_step))
    loops.append(Loop("ours", model_of(Seq2Seq), ours, pipeline_step))
    bf16 = cfg.model_copy(update={"precision": "bf16"})
    loops.append(Loop("ours bf16", model_of(Seq2Seq), ours, lambda m, b, o, _cfg: pipeline_step(m, b, o, bf16)))

    for loop in loops:  # warm-up: allocator and thread pools, untimed
        loop.run(examples, vocab, cfg, 1, timed=False)
    for _ in range(args.rounds):
        for loop in loops:
            loop.run(examples, vocab, cfg, args.steps)

    tps = {loop.name: loop.tokens_per_s for loop in loops}
    ratios = {f"ours vs {name}": tps["ours"] / value for name, value in tps.items() if name not in ("ours", "ours bf16")}
    ratios["ours bf16 vs tutorial"] = tps["ours bf16"] / tps["tutorial"]
    if args.json:
        print(json.dumps({"data": args.data, "pairs": len(pairs), "vocab": len(vocab), "size": args.size,
                          "steps": args.steps, "rounds": args.rounds, "threads": args.threads,
                          "tutorial_batch": batch_size, "tokens_per_s": tps, "speedup": ratios}, indent=2))
        return
    print(f"data={args.data} pairs={len(pairs)} vocab={len(vocab)} size={args.size} threads={args.threads} "
          f"steps={args.steps}x{args.rounds} rounds tutorial_batch={batch_size}")
    print(f"{'loop':<14} {'tokens/s':>10} {'tokens':>9} {'seconds':>8}")
    for loop in loops:
        print(f"{loop.name:<14} {loop.tokens_per_s:>10,.0f} {loop.tokens:>9,} {loop.seconds:>8.1f}")
    for name, ratio in ratios.items():
        print(f"{name:<22} {ratio:>6.2f}x" + ("  (target >= 3x)" if name.endswith("vs tutorial") else ""))


if __name__ == "__main__":
    main()
