"""Reply generation speed, side by side in one process: this project's Seq2Seq + beam search against
Hugging Face ``generate()`` on a BART encoder-decoder of about the same parameter count.

Same task for both: random weights (speed does not depend on training), vocabulary of the same size,
40-token contexts, exactly 30 new tokens (``min_new_tokens = max_new_tokens = 30`` so neither side can
stop early), beam 5, repetition penalty 1.2, no-repeat 3-grams. Both are measured in fp32 and with
dynamic int8 quantization of their linear layers. Reports p50/p95 latency at batch 1, replies/s at
batch 16 and 32, and the ratios. ``--baseline REV`` adds this project's model and search as they were at
git revision REV (read with ``git show``), for a before/after table from the same run.

``--quality MODEL_DIR`` instead measures what int8 serving costs in reply quality: BLEU and chrF of the
float and the int8 copy of a trained checkpoint on SGD dev pairs (``../shared/data/sgd/dev``), each with
the checkpoint's own decoding settings.

    pip install -e '.[bench]'
    python benchmarks/generation.py [--threads 2] [--runs 20] [--baseline HEAD] [--json]
    python benchmarks/generation.py --quality MODEL_DIR [--pairs 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from gitrev import modules_at  # benchmarks/gitrev.py, beside this script

CONTEXT, NEW_TOKENS, BEAMS, REPETITION, NO_REPEAT = 40, 30, 5, 1.2, 3
BOS, EOS, PAD, FIRST_WORD = 1, 2, 0, 10


@dataclass
class Row:
    name: str
    params: int
    p50_ms: float
    p95_ms: float
    rps16: float
    rps32: float


REPO = Path(__file__).resolve().parents[1]
# The decoding code a baseline revision replaces (everything else is shared with the current tree), in
# import order: a later module that imports an earlier one by its package name gets the baseline copy.
BASELINE_MODULES = {"seq2seq": "chatbot/model/seq2seq.py", "processors": "chatbot/generation/processors.py",
                    "search": "chatbot/generation/search.py", "quantize": "chatbot/generation/quantize.py"}


def current_code() -> types.SimpleNamespace:
    from chatbot.generation import quantize, search
    from chatbot.model import seq2seq

    return types.SimpleNamespace(seq2seq=seq2seq, search=search, quantize=quantize)


def baseline_code(rev: str) -> types.SimpleNamespace:
    """The model, processor, search and quantization modules as they were at git revision ``rev``."""
    return modules_at(rev, BASELINE_MODULES)


def ours(int8: bool, code: types.SimpleNamespace) -> tuple[Callable[[torch.Tensor], object], int]:
    from chatbot.generation import GenerationConfig
    from chatbot.model.batch import Seq2SeqBatch

    Seq2Seq, Seq2SeqConfig = code.seq2seq.Seq2Seq, code.seq2seq.Seq2SeqConfig
    beam_search, quantize_int8 = code.search.beam_search, code.quantize.quantize_int8
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig()).eval()
    params = model.num_parameters()
    if int8:
        model = quantize_int8(model)
    vocab = model.config.vocab_size
    config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, num_beams=BEAMS, num_return_sequences=1,
                              max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                              repetition_penalty=REPETITION, no_repeat_ngram_size=NO_REPEAT)

    def run(ids: torch.Tensor) -> object:
        batch = Seq2SeqBatch(ids, ids, torch.ones_like(ids, dtype=torch.bool), [[] for _ in ids], vocab)
        with torch.inference_mode():
            result = beam_search(model, model.encode(batch), config)
        assert all(len(hyps[0].tokens) == NEW_TOKENS for hyps in result)
        return result

    return run, params


def bart_config(target_params: int, vocab: int):
    """The BART size (d_model 256, FFN 1024, 2 encoder layers) whose decoder depth comes closest to
    ``target_params``."""
    from transformers import BartConfig

    best = None
    for dec_layers in range(1, 7):
        cfg = BartConfig(vocab_size=vocab, d_model=256, encoder_layers=2, decoder_layers=dec_layers,
                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=1024,
                         decoder_ffn_dim=1024, max_position_embeddings=128, pad_token_id=PAD, bos_token_id=BOS,
                         eos_token_id=EOS, decoder_start_token_id=BOS, forced_bos_token_id=None,
                         forced_eos_token_id=None)
        params = _bart_params(cfg)
        if best is None or abs(params - target_params) < abs(best[1] - target_params):
            best = (cfg, params)
    return best[0]


def _bart_params(cfg) -> int:
    from transformers import BartForConditionalGeneration

    return sum(p.numel() for p in BartForConditionalGeneration(cfg).parameters())


def hf(int8: bool, target_params: int, vocab: int) -> tuple[Callable[[torch.Tensor], object], int]:
    from transformers import BartForConditionalGeneration

    torch.manual_seed(0)
    model = BartForConditionalGeneration(bart_config(target_params, vocab)).eval()
    params = sum(p.numel() for p in model.parameters())
    if int8:
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    kwargs = {"num_beams": BEAMS, "max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS,
              "repetition_penalty": REPETITION, "no_repeat_ngram_size": NO_REPEAT, "do_sample": False,
              "early_stopping": False, "num_return_sequences": 1}

    def run(ids: torch.Tensor) -> object:
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        assert out.shape[1] >= NEW_TOKENS
        return out

    return run, params


def measure(name: str, run: Callable[[torch.Tensor], object], params: int, vocab: int, runs: int) -> Row:
    gen = torch.Generator().manual_seed(1)

    def ids(batch: int) -> torch.Tensor:
        return torch.randint(FIRST_WORD, vocab, (batch, CONTEXT), generator=gen)

    run(ids(1))  # warm-up: allocator, quantized kernels, lazy imports
    latencies = []
    for _ in range(runs):
        x = ids(1)
        start = time.perf_counter()
        run(x)
        latencies.append((time.perf_counter() - start) * 1000)
    throughput = {}
    for batch in (16, 32):
        x = ids(batch)
        run(x)
        best = min(_timed(run, x) for _ in range(2))
        throughput[batch] = batch / best
    q = statistics.quantiles(latencies, n=20, method="inclusive")
    return Row(name, params, statistics.median(latencies), q[18], throughput[16], throughput[32])


def _timed(run: Callable[[torch.Tensor], object], x: torch.Tensor) -> float:
    start = time.perf_counter()
    run(x)
    return time.perf_counter() - start


def quality(model_dir: Path, limit: int) -> dict[str, float]:
    """BLEU/chrF of the float and int8 replies of ``model_dir`` on the first ``limit`` SGD dev pairs."""
    from chatbot.service.generator import ReplyGenerator

    sys.path.insert(0, str(REPO))  # the training package, not benchmarks/training.py next to this script
    from training import metrics
    from training.sources import load_file_pairs

    data = REPO.parent / "shared" / "data" / "sgd" / "dev"
    if not data.is_dir():
        raise SystemExit(f"SGD dev data not found at {data}")
    out: dict[str, float] = {}
    pairs = None
    for int8 in (False, True):
        generator = ReplyGenerator.from_checkpoint(model_dir, int8=int8)
        if pairs is None:
            max_turns = generator.max_turns
            pairs = [p for p in load_file_pairs("sgd", data, max_turns) if p.language == "en"][:limit]
        hyps = []
        start = time.perf_counter()
        for i in range(0, len(pairs), 16):
            chunk = pairs[i : i + 16]
            hyps += [r.text for r in generator.generate([list(p.context) for p in chunk], language="en",
                                                        return_attention=False)]
        kind = "int8" if int8 else "fp32"
        refs = [p.reply for p in pairs]
        out[f"{kind} bleu"], out[f"{kind} chrf"] = metrics.bleu(hyps, refs), metrics.chrf(hyps, refs)
        out[f"{kind} seconds"] = time.perf_counter() - start
    out["pairs"] = len(pairs)
    out["bleu change"], out["chrf change"] = out["int8 bleu"] - out["fp32 bleu"], out["int8 chrf"] - out["fp32 chrf"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both sides")
    parser.add_argument("--runs", type=int, default=20, help="batch-1 runs per variant (p50/p95)")
    parser.add_argument("--baseline", metavar="REV", help="also measure our decoding code at this git revision")
    parser.add_argument("--quality", metavar="MODEL_DIR", type=Path,
                        help="measure fp32 vs int8 reply quality of this checkpoint on SGD dev instead of speed")
    parser.add_argument("--pairs", type=int, default=300, help="SGD dev pairs for --quality")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # torch.ao deprecation notices, HF generation hints
    torch.set_num_threads(args.threads)
    if args.quality:
        figures = quality(args.quality, args.pairs)
        print(json.dumps(figures, indent=2) if args.json else
              "\n".join(f"{k:<14}{v:>10.2f}" for k, v in figures.items()))
        return
    try:
        import transformers
    except ImportError:
        raise SystemExit("transformers is missing: pip install -e '.[bench]'") from None

    from chatbot.model.seq2seq import Seq2SeqConfig

    vocab = Seq2SeqConfig().vocab_size
    variants = [("ours", current_code())]
    if args.baseline:
        variants.insert(0, (f"ours@{args.baseline}", baseline_code(args.baseline)))
    rows = []
    for int8 in (False, True):
        kind = "int8" if int8 else "fp32"
        for name, code in variants:
            run, params = ours(int8, code)
            rows.append(measure(f"{name} {kind}", run, params, vocab, args.runs))
        run, hf_params = hf(int8, params, vocab)
        rows.append(measure(f"HF BART {kind}", run, hf_params, vocab, max(5, args.runs // 2)))
    by = {r.name: r for r in rows}
    ratios = {
        "batch1 p50 speed-up, int8 vs HF fp32": by["HF BART fp32"].p50_ms / by["ours int8"].p50_ms,
        "batch1 p50 speed-up, int8 vs HF int8": by["HF BART int8"].p50_ms / by["ours int8"].p50_ms,
        "batch1 p50 speed-up, fp32 vs HF fp32": by["HF BART fp32"].p50_ms / by["ours fp32"].p50_ms,
        "batch16 throughput, int8 vs HF fp32": by["ours int8"].rps16 / by["HF BART fp32"].rps16,
        "batch16 throughput, fp32 vs HF fp32": by["ours fp32"].rps16 / by["HF BART fp32"].rps16,
        "batch32 throughput, int8 vs HF fp32": by["ours int8"].rps32 / by["HF BART fp32"].rps32,
    }
    if args.baseline:
        for kind in ("fp32", "int8"):
            before, after = by[f"ours@{args.baseline} {kind}"], by[f"ours {kind}"]
            ratios[f"batch1 p50 speed-up, {kind} vs {args.baseline}"] = before.p50_ms / after.p50_ms
            ratios[f"batch16 throughput, {kind} vs {args.baseline}"] = after.rps16 / before.rps16
    setup = {"threads": args.threads, "torch": torch.__version__, "transformers": transformers.__version__,
             "context": CONTEXT, "new_tokens": NEW_TOKENS, "beams": BEAMS, "repetition_penalty": REPETITION,
             "no_repeat_ngram_size": NO_REPEAT, "vocab": vocab, "baseline": args.baseline}
    if args.json:
        print(json.dumps({"setup": setup, "rows": [r.__dict__ for r in rows], "ratios": ratios}, indent=2))
        return
    print(f"# {CONTEXT}-token context -> {NEW_TOKENS} tokens, beam {BEAMS}, repetition {REPETITION}, "
          f"no-repeat {NO_REPEAT}, vocab {vocab}, {args.threads} threads, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"{'model':<18}{'params':>10}{'p50 ms':>10}{'p95 ms':>10}{'b16 rep/s':>11}{'b32 rep/s':>11}")
    for r in rows:
        print(f"{r.name:<18}{r.params:>10,}{r.p50_ms:>10.1f}{r.p95_ms:>10.1f}{r.rps16:>11.1f}{r.rps32:>11.1f}")
    for name, value in ratios.items():
        print(f"{name:<42}{value:>6.2f}x")


if __name__ == "__main__":
    main()
