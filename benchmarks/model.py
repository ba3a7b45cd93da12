"""Seq2seq model speed at the default size: parameters, training throughput, encode and one decode step.

    python benchmarks/model.py [--threads N] [--json]

The generation and training benchmarks compare against these figures; all are printed side by side from
one run on random token ids (speed does not depend on what the ids mean).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from chatbot.model import Seq2Seq, Seq2SeqConfig, collate
from chatbot.model.batch import Example
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab


def random_batch(vocab_size: int, batch: int, src_len: int, tgt_len: int, n_oov: int, seed: int = 0):
    """A batch of full-length random examples, each with ``n_oov`` copyable out-of-vocabulary tokens."""

    vocab = Vocab([*SPECIAL_TOKENS, *(f"w{i}" for i in range(vocab_size - len(SPECIAL_TOKENS)))])
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(batch):
        src = torch.randint(len(SPECIAL_TOKENS), vocab_size, (src_len,), generator=g).tolist()
        ext = list(src)
        for k in range(n_oov):
            src[k * 3], ext[k * 3] = 3, vocab_size + k
        tgt = torch.randint(len(SPECIAL_TOKENS), vocab_size + n_oov, (tgt_len,), generator=g).tolist()
        examples.append(Example(src, ext, [f"oov{k}" for k in range(n_oov)], tgt))
    return collate(examples, vocab)


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--src-len", type=int, default=60)
    parser.add_argument("--tgt-len", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = Seq2SeqConfig()
    model = Seq2Seq(cfg)
    results: dict[str, float | int | str] = {
        "parameters": model.num_parameters(),
        "config": f"V={cfg.vocab_size} E={cfg.emb_dim} H={cfg.hidden} enc={cfg.enc_layers} dec={cfg.dec_layers} "
        f"{cfg.rnn}/{cfg.attention} copy={cfg.copy}",
        "threads": torch.get_num_threads(),
    }

    train_batch = random_batch(cfg.vocab_size, 32, args.src_len, args.tgt_len, n_oov=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def train_step() -> None:
        loss = model(train_batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    times = timed(train_step, max(3, args.repeats // 2))
    tokens = int(train_batch.tgt_mask.sum() + train_batch.src_mask.sum())
    results["train_batch32_step_ms_p50"] = round(1000 * statistics.median(times), 1)
    results["train_tokens_per_s"] = round(tokens / statistics.median(times))  # source + target tokens

    model.eval()
    for batch_size in (1, 32):
        batch = random_batch(cfg.vocab_size, batch_size, args.src_len, args.tgt_len, n_oov=3, seed=1)
        with torch.inference_mode():
            state = model.encode(batch)
            first = batch.tgt_in[:, 0]
            enc = timed(lambda b=batch: model.encode(b), args.repeats)
            step = timed(lambda t=first, s=state: model.step(t, s), args.repeats * 5)
        results[f"encode_batch{batch_size}_ms_p50"] = round(1000 * statistics.median(enc), 2)
        results[f"step_batch{batch_size}_ms_p50"] = round(1000 * statistics.median(step), 2)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(map(len, results))
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
