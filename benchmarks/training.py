"""Training throughput: this pipeline vs a tutorial-style loop, same model and data, one run.

The tutorial loop pads every batch to its longest example, takes batches in file order (no length
bucketing) and runs the decoder and the loss one timestep at a time from Python. Both loops count the
same real (non-padding) source + target tokens per second.

    python benchmarks/training.py [--data sgd:../shared/data/sgd/train] [--pairs 3000] [--steps 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: this file's name must not hide the `training` package


def pipeline_loop(model, examples, vocab, cfg, steps: int) -> float:
    from chatbot.model.batch import collate
    from training.dataset import BucketBatchSampler, example_size

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sampler = BucketBatchSampler([example_size(e) for e in examples], cfg.max_tokens, cfg.max_batch_size, cfg.seed)
    batches = sampler.global_batches(0)[:steps]
    tokens, t0 = 0, time.perf_counter()
    for idx in batches:
        batch = collate([examples[i] for i in idx], vocab)
        loss = model(batch, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        tokens += int(batch.src_mask.sum() + batch.tgt_mask.sum())
    return tokens / (time.perf_counter() - t0)


def tutorial_loop(model, examples, vocab, batch_size: int, steps: int) -> float:
    from chatbot.model.batch import collate

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens, t0 = 0, time.perf_counter()
    for step in range(steps):
        chunk = examples[step * batch_size : (step + 1) * batch_size]  # padded to the longest
        batch = collate(chunk, vocab)
        state = model.encode(batch)
        loss, n = 0.0, batch.tgt_mask.sum()
        for t in range(batch.tgt_in.size(1)):  # per-timestep decoder call and loss
            log_probs, state = model.step(batch.tgt_in[:, t], state)
            loss = loss + F.nll_loss(log_probs, batch.tgt_out[:, t], ignore_index=vocab.pad_id, reduction="sum")
        loss = loss / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += int(batch.src_mask.sum() + batch.tgt_mask.sum())
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    from chatbot.model.seq2seq import Seq2Seq
    from training.dataset import encode_pairs
    from training.sources import load_pairs
    from training.train import TrainConfig, build_vocab

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=f"sgd:{ROOT / '..' / 'shared' / 'data' / 'sgd' / 'dev'}")
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--size", default="default", choices=["tiny", "small", "default"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = TrainConfig(size=args.size)
    pairs = load_pairs([args.data], cfg.max_turns)[: args.pairs]
    vocab = build_vocab(pairs, cfg)
    examples = encode_pairs(pairs, vocab, cfg.max_turns, cfg.max_src_tokens, cfg.max_tgt_tokens)
    from training.dataset import BucketBatchSampler, example_size

    bucketed = BucketBatchSampler([example_size(e) for e in examples], cfg.max_tokens, cfg.max_batch_size, cfg.seed)
    batches = bucketed.global_batches(0)
    batch_size = round(sum(map(len, batches)) / len(batches))  # same mean batch size for both loops
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [examples[i] for i in order]  # a tutorial shuffles, then pads each batch to its longest
    init = Seq2Seq(cfg.model_config_for(len(vocab))).state_dict()

    results = {}
    for name, run in (("tutorial", lambda m: tutorial_loop(m, shuffled, vocab, batch_size, args.steps)),
                      ("pipeline", lambda m: pipeline_loop(m, examples, vocab, cfg, args.steps))):
        model = Seq2Seq(cfg.model_config_for(len(vocab)))
        model.load_state_dict(init)
        model.train()
        results[name] = run(model)
    print(f"data={args.data} pairs={len(pairs)} size={args.size} steps={args.steps} threads={args.threads} "
          f"batch={batch_size}")
    print(f"{'loop':<10} {'tokens/s':>10}")
    for name, tps in results.items():
        print(f"{name:<10} {tps:>10,.0f}")
    print(f"speed-up   {results['pipeline'] / results['tutorial']:>10.2f}x  (target >= 3x)")


if __name__ == "__main__":
    main()
