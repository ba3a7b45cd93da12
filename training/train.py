"""The training loop: bucketed batches, teacher forcing, label smoothing, clipping, AdamW with warmup and
cosine decay, early stopping on dev loss, atomic checkpoints and exact resume; DDP under torchrun.

Everything a resumed run needs sits in ``train_state.pt`` (weights, optimizer, scheduler, RNG, step and
data position), written with temp file + rename so a ``kill -9`` leaves either the old or the new state,
never half of one. Batch order is a function of (seed, epoch), so restoring (epoch, batch index) and the
torch RNG replays the exact run. With ``handle_signals`` (``chatbot train``) a SIGINT or SIGTERM stops the
run at the next step boundary with that state saved (``TrainingInterrupted``), so Ctrl-C loses no work and
``--resume`` continues; a second signal aborts at once. The servable model (best dev loss so far) goes to
``OUT/model``.

Under ``torchrun --nproc-per-node N`` each rank takes a strided share of every global batch and scales
its summed loss by N / (global target tokens); DDP's gradient averaging then yields exactly the
gradient of a one-process step over the whole batch, so both runs take the same steps.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomllib
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatbot.model.batch import collate
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.text.vocab import Vocab
from training.dataset import BucketBatchSampler, encode_pairs, example_lengths
from training.sources import Pair

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.csv"
MODEL_SUBDIR = "model"
METRIC_FIELDS = ("step", "epoch", "train_loss", "dev_loss", "dev_perplexity", "lr", "tokens_per_s")

MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"emb_dim": 32, "hidden": 64, "enc_layers": 1, "dec_layers": 1, "dropout": 0.0},
    "small": {"emb_dim": 128, "hidden": 256, "enc_layers": 1, "dec_layers": 1},
    "default": {},  # Seq2SeqConfig defaults
}


class TrainError(RuntimeError):
    """Training cannot start or continue (bad config, no data, resume of a different run)."""


class TrainingInterrupted(Exception):
    """A SIGINT or SIGTERM stopped training at a step boundary; the resumable state is saved in ``state_path``.

    Not a ``TrainError``: nothing is wrong with the run, and the command exits ``128 + signal`` (130 for
    Ctrl-C, 143 for SIGTERM) as an interrupted program does, so scripts can tell it from a failure.
    """

    def __init__(self, signum: int, step: int, total_steps: int, state_path: Path) -> None:
        self.signum, self.step, self.total_steps, self.state_path = signum, step, total_steps, state_path
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {self.signal_name} at step {step} of {total_steps}; "
                         f"the training state is saved in {state_path}")


class _StopOnSignal:
    """SIGINT / SIGTERM handlers for the length of a training run: the first signal only asks the loop to
    stop at the next step boundary (it saves the state there); a second one raises ``KeyboardInterrupt`` at
    once. The handler prints nothing: a write from a signal handler can land inside another write to the
    same stream (tqdm's bar) and fail; the loop reports it. Installed only from the main thread, where Python
    delivers signals, and only when asked (``train(handle_signals=True)``); the previous handlers come back
    afterwards."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:  # noqa: PYI034 - the class is private and final
        if self.enabled:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second signal: stop now, without saving
        self.signum = signum


class DataEntry(BaseModel):
    """One ``[[data]]`` table of a recipe: a ``--data`` spec and its sampling weight (see ``sources.weighted``)."""

    model_config = ConfigDict(extra="forbid")

    spec: str
    weight: float = Field(1.0, gt=0, le=100)


class TrainConfig(BaseModel):
    """Hyper-parameters; a ``--config`` TOML file sets any of them (``[model]`` overrides model sizes)."""

    model_config = ConfigDict(extra="forbid")

    size: Literal["tiny", "small", "default"] = "default"
    data: list[DataEntry] = Field(default_factory=list, description="The recipe's data mix; `chatbot train` "
                                  "reads it when no --data is given.")
    model: dict[str, Any] = Field(default_factory=dict)
    decoding: dict[str, Any] = Field(default_factory=dict, description="Decoding settings recorded in the model "
                                     "(GenerationConfig names), over the serving settings'; `chatbot eval` uses them.")
    seed: int = 1234
    epochs: int = Field(20, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps; the LR schedule ends there.")
    max_tokens: int = Field(6000, ge=16, description="Padded tokens per global batch.")
    max_batch_size: int = Field(96, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(200, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: forward under CPU autocast (weights, "
                                               "gradients and optimizer stay fp32); ~1.5x faster on CPUs with "
                                               "AVX512-BF16 or AMX, slower on those without.")
    clip_norm: float = Field(1.0, gt=0)
    eval_every: int = Field(500, ge=1, description="Steps between dev evaluations (also at each epoch end).")
    patience: int = Field(3, ge=1, description="Dev evaluations without improvement before stopping.")
    checkpoint_minutes: float = Field(5.0, ge=0, description="0 writes a resumable checkpoint every step.")
    log_every: int = Field(50, ge=1)
    dev_fraction: float = Field(0.05, ge=0, lt=1)
    max_turns: int = Field(6, ge=1)
    max_src_tokens: int = Field(200, ge=8)
    max_tgt_tokens: int = Field(60, ge=2)
    vocab_min_freq: int = Field(2, ge=1)
    vocab_max_size: int = Field(16_000, ge=64)

    @classmethod
    def from_toml(cls, path: Path | None, **overrides: Any) -> TrainConfig:
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise TrainError(f"training config not found: {path}") from None
            except tomllib.TOMLDecodeError as exc:
                raise TrainError(f"training config {path} is not valid TOML: {exc}") from None
        try:
            return cls(**{**data, **overrides})
        except ValueError as exc:
            raise TrainError(f"invalid training config: {exc}") from None

    @field_validator("decoding")
    @classmethod
    def _known_decoding(cls, value: dict[str, Any]) -> dict[str, Any]:
        from chatbot.generation.config import GenerationConfig

        settable = set(GenerationConfig.__dataclass_fields__) - {"bos_token_id", "eos_token_id"}  # the vocab's
        unknown = sorted(set(value) - settable)
        if unknown:
            raise ValueError(f"unknown decoding settings: {', '.join(unknown)}")
        GenerationConfig(bos_token_id=1, eos_token_id=2, **value)  # nonsense fails here, not after training
        return value

    def model_config_for(self, vocab_size: int) -> Seq2SeqConfig:
        try:
            return Seq2SeqConfig(**{**MODEL_SIZES[self.size], **self.model, "vocab_size": vocab_size})
        except (TypeError, ValueError) as exc:
            raise TrainError(f"invalid model settings: {exc}") from None


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    steps: int
    epochs_done: float
    best_dev_loss: float | None
    stopped: str  # "epochs", "max_steps", "early_stopping", "max_minutes"
    tokens_per_s: float
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["out_dir"], d["model_dir"] = str(self.out_dir), str(self.model_dir)
        d["dev_perplexity"] = math.exp(min(self.best_dev_loss, 50)) if self.best_dev_loss is not None else None
        return d


# --- distributed ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl with GPUs)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun, the launcher's own contract
    if world <= 1 or not dist.is_available():
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def _any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank when any rank says so (time-based decisions must agree)."""
    if d.world_size == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# --- files ------------------------------------------------------------------------------------------

def atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def data_fingerprint(pairs: Sequence[Pair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(repr((p.context, p.reply, p.language)).encode("utf-8"))
    return h.hexdigest()


def build_vocab(pairs: Sequence[Pair], cfg: TrainConfig) -> Vocab:
    from chatbot.text.tokenize import tokenize

    def token_lists():
        for p in pairs:
            for _, text in p.context[-cfg.max_turns :]:
                yield tokenize(text, p.language)
            yield tokenize(p.reply, p.language)

    return Vocab.build(token_lists(), min_freq=cfg.vocab_min_freq, max_size=cfg.vocab_max_size)


class MetricsLog:
    """``metrics.csv``: one row per log or eval step; a resumed run drops rows past its checkpoint."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        rows = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def append(self, **row: Any) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, METRIC_FIELDS).writerow({k: _fmt(row.get(k)) for k in METRIC_FIELDS})

    def rows(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def _fmt(v: Any) -> Any:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)


def plot_metrics(metrics_csv: Path, out_dir: Path) -> list[Path]:
    """loss.png (train and dev loss) and lr.png from metrics.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    paths = []
    for name, keys in (("loss.png", ("train_loss", "dev_loss")), ("lr.png", ("lr",))):
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in keys:
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            if pts:
                ax.plot(*zip(*pts), label=key, marker="o" if key == "dev_loss" else None, markersize=3)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warmup, then cosine decay to ``min_ratio`` of the peak at ``total`` steps."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


@torch.no_grad()
def dev_loss(model: Seq2Seq, examples: list, vocab: Vocab, max_tokens: int, max_batch_size: int) -> tuple[float, int]:
    """(summed NLL, target tokens) teacher-forced, without label smoothing; perplexity = exp(nll/tokens)."""
    was_training = model.training
    model.eval()
    sampler = BucketBatchSampler([example_lengths(e) for e in examples], max_tokens, max_batch_size, 0, shuffle=False)
    nll, tokens = 0.0, 0
    for idx, _ in sampler.batches(0):
        batch = collate([examples[i] for i in idx], vocab)
        nll -= float(model.sequence_log_probs(batch).sum())
        tokens += int(batch.tgt_mask.sum())  # type: ignore[union-attr]
    model.train(was_training)
    return nll, tokens


# --- the loop ---------------------------------------------------------------------------------------

def batch_loss(model: torch.nn.Module, batch: Any, cfg: TrainConfig) -> torch.Tensor:
    """Mean token loss of one batch in the configured precision (bf16: forward under CPU autocast, loss fp32)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        return model(batch, label_smoothing=cfg.label_smoothing).float()


def train(
    train_pairs: Sequence[Pair],
    dev_pairs: Sequence[Pair],
    out_dir: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    init_from: Path | None = None,
    threads: int = 0,
    progress: bool = True,
    decoding: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
    handle_signals: bool = False,
) -> TrainResult:
    """Train (or fine-tune from ``init_from``, a model directory) into ``out_dir``.

    ``handle_signals``: a SIGINT or SIGTERM saves the resumable state at the next step boundary and raises
    ``TrainingInterrupted`` (a second signal raises ``KeyboardInterrupt`` at once). Off for callers that
    handle signals their own way (the nightly job relies on a killed run's stale lock being taken over).

    ``manifest`` (what the data was: specs, counts, the store export's manifest) goes into the checkpoint's
    ``config.json`` so a registered model can say what it was trained on (``chatbot forget`` reads it)."""
    from tqdm import tqdm

    d = init_distributed()
    if threads:
        torch.set_num_threads(threads)
    if not train_pairs:
        raise TrainError("no training pairs")
    out_dir = Path(out_dir)
    state_path = out_dir / STATE_FILE
    state: dict[str, Any] | None = None
    if resume:
        if not state_path.exists():
            raise TrainError(f"--resume: no {STATE_FILE} in {out_dir}; start without --resume")
        state = torch.load(state_path, weights_only=True)
        if state["data"] != data_fingerprint(train_pairs):
            raise TrainError(f"--resume: {out_dir} was trained on different data; use a new --out")
        cfg = TrainConfig(**json.loads(state["config"]))
        if state["finished"]:
            raise TrainError(f"--resume: the run in {out_dir} already finished ({state['finished']})")
    elif state_path.exists():
        raise TrainError(f"{out_dir} already holds a training run; pass --resume to continue it or use a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    decoding = {**(decoding or {}), **cfg.decoding}

    torch.manual_seed(cfg.seed)
    if resume:
        vocab = Vocab.load(out_dir / "vocab.json")
        model = Seq2Seq(Seq2SeqConfig(**json.loads(state["model_config"])))  # type: ignore[index]
    elif init_from is not None:
        model, vocab = _load_model(init_from)
    else:
        vocab = build_vocab(train_pairs, cfg)
        model = Seq2Seq(cfg.model_config_for(len(vocab)))
    if d.main and not resume:
        vocab.save(out_dir / "vocab.json")
        (out_dir / "train_config.json").write_text(cfg.model_dump_json(indent=2))

    examples = encode_pairs(train_pairs, vocab, cfg.max_turns, cfg.max_src_tokens, cfg.max_tgt_tokens)
    dev_examples = encode_pairs(dev_pairs, vocab, cfg.max_turns, cfg.max_src_tokens, cfg.max_tgt_tokens)
    sampler = BucketBatchSampler([example_lengths(e) for e in examples], cfg.max_tokens, cfg.max_batch_size,
                                 cfg.seed, rank=d.rank, world_size=d.world_size)
    steps_per_epoch = len(sampler)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:  # a time-boxed run: let the cosine decay finish inside the box
        total_steps = min(total_steps, cfg.max_steps)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or name.endswith("bias") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, total_steps, cfg.min_lr_ratio))

    step, epoch, batch_pos = 0, 0, 0
    best, bad_evals, prior_elapsed, tokens_seen = None, 0, 0.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, epoch, batch_pos = state["step"], state["epoch"], state["batch_pos"]
        best, bad_evals = state["best_dev_loss"], state["bad_evals"]
        prior_elapsed, tokens_seen = state["elapsed_s"], state["tokens_seen"]
    log = MetricsLog(out_dir / METRICS_FILE, step if resume else None) if d.main else None

    ddp_model: torch.nn.Module = model
    if d.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(model)

    def save_state() -> None:
        if not d.main:
            return
        atomic_torch_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(), "step": step, "epoch": epoch, "batch_pos": batch_pos,
            "best_dev_loss": best, "bad_evals": bad_evals, "elapsed_s": prior_elapsed + (time.monotonic() - t0),
            "tokens_seen": tokens_seen, "data": data_fingerprint(train_pairs), "config": cfg.model_dump_json(),
            "finished": "" if stopped == "interrupted" or (stopped in ("epochs", "max_minutes") and epoch < cfg.epochs)
                        else stopped,
            "model_config": json.dumps(model.config.to_dict()),
        }, state_path)

    def evaluate_dev() -> bool:
        """Log dev loss; save the model when it improved. True when patience ran out."""
        nonlocal best, bad_evals, last_eval_step
        if not dev_examples:
            return False
        last_eval_step = step
        nll, n = dev_loss(model, dev_examples, vocab, cfg.max_tokens, cfg.max_batch_size)
        loss = nll / max(n, 1)
        if best is None or loss < best - 1e-4:
            best, bad_evals = loss, 0
            if d.main:
                _save_model(model, vocab, out_dir / MODEL_SUBDIR, cfg, {"step": step, "dev_loss": loss}, decoding,
                            manifest)
        else:
            bad_evals += 1
        if log is not None:
            log.append(step=step, epoch=round(epoch + batch_pos / steps_per_epoch, 4), dev_loss=loss,
                       dev_perplexity=math.exp(min(loss, 50)))
        return bad_evals >= cfg.patience

    t0 = time.monotonic()
    last_ckpt = t0
    window_loss, window_tokens, window_real, window_t0 = 0.0, 0, 0, t0
    stopped = "epochs"
    last_eval_step = step
    model.train()
    bar = tqdm(total=total_steps, initial=step, disable=not (progress and d.main), unit="step", dynamic_ncols=True)
    stop_signal = _StopOnSignal(handle_signals)
    try:
        stop_signal.__enter__()
        while epoch < cfg.epochs and stopped == "epochs":
            global_batches = sampler.global_batches(epoch)
            for global_idx in global_batches[batch_pos:]:
                batch = collate([examples[i] for i in global_idx[d.rank :: d.world_size]], vocab)
                global_tokens = sum(len(examples[i].tgt_ids) + 1 for i in global_idx)  # type: ignore[arg-type]
                local_tokens = int(batch.tgt_mask.sum())  # type: ignore[union-attr]
                mean_loss = batch_loss(ddp_model, batch, cfg)
                loss = mean_loss * (local_tokens * d.world_size / global_tokens)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                optimizer.step()
                step_lr = scheduler.get_last_lr()[0]  # the rate this step used
                scheduler.step()
                step += 1
                batch_pos += 1
                real = int(batch.src_mask.sum()) + local_tokens  # source + target tokens, padding excluded
                tokens_seen += real * d.world_size  # ranks hold near-equal shares; not worth a collective
                window_loss += float(mean_loss.detach()) * local_tokens
                window_tokens += local_tokens
                window_real += real * d.world_size
                bar.update(1)
                if step % cfg.log_every == 0 or batch_pos == steps_per_epoch:
                    now = time.monotonic()
                    tps = window_real / max(now - window_t0, 1e-9)
                    train_loss = window_loss / max(window_tokens, 1)
                    bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{tps:,.0f}")
                    if log is not None:
                        log.append(step=step, epoch=round(epoch + batch_pos / steps_per_epoch, 4),
                                   train_loss=train_loss, lr=step_lr, tokens_per_s=tps)
                    window_loss, window_tokens, window_real, window_t0 = 0.0, 0, 0, now
                if batch_pos == steps_per_epoch:
                    epoch, batch_pos = epoch + 1, 0
                    if evaluate_dev():
                        stopped = "early_stopping"
                elif step % cfg.eval_every == 0 and evaluate_dev():
                    stopped = "early_stopping"
                now = time.monotonic()
                out_of_time = max_minutes is not None and now - t0 >= max_minutes * 60
                if stopped == "epochs" and (step >= total_steps or _any_rank(out_of_time, d)):
                    stopped = "max_steps" if step >= total_steps else "max_minutes"
                    if last_eval_step != step:  # keep what the steps since the last evaluation learned
                        evaluate_dev()
                if stopped == "epochs" and stop_signal.enabled and _any_rank(stop_signal.signum is not None, d):
                    stopped = "interrupted"  # saved just below; no evaluation: whoever pressed Ctrl-C waits for it
                    if d.main:
                        name = signal.Signals(stop_signal.signum).name if stop_signal.signum else "a signal"
                        bar.write(f"{name}: saving the training state at step {step} (send it again to abort "
                                  "without saving)", file=sys.stderr)
                if stopped != "epochs" or _any_rank(now - last_ckpt >= cfg.checkpoint_minutes * 60, d):
                    save_state()
                    last_ckpt = now
                if stopped != "epochs" or batch_pos == 0:
                    break
    finally:
        stop_signal.__exit__()
        bar.close()
    if stopped == "interrupted":
        raise TrainingInterrupted(stop_signal.signum or signal.SIGINT, step, total_steps, state_path)
    save_state()
    if not dev_examples and d.main:
        _save_model(model, vocab, out_dir / MODEL_SUBDIR, cfg, {"step": step}, decoding, manifest)
    elapsed = time.monotonic() - t0
    if log is not None:
        plot_metrics(out_dir / METRICS_FILE, out_dir)
    result = TrainResult(out_dir, out_dir / MODEL_SUBDIR, step, round(epoch + batch_pos / steps_per_epoch, 4), best,
                         stopped, tokens_seen / max(prior_elapsed + elapsed, 1e-9), prior_elapsed + elapsed)
    if d.main:
        (out_dir / "train_result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def decoding_of(settings: Any) -> dict[str, Any]:
    """The decoding settings a model is trained for; saved into its checkpoint."""
    keys = ("num_beams", "max_new_tokens", "repetition_penalty", "no_repeat_ngram_size",
            "encoder_no_repeat_ngram_size", "length_penalty")
    return {k: getattr(settings, k) for k in keys}


def _save_model(model: Seq2Seq, vocab: Vocab, model_dir: Path, cfg: TrainConfig, info: dict[str, Any],
                decoding: dict[str, Any] | None, manifest: dict[str, Any] | None) -> None:
    from chatbot.model.checkpoint import save_checkpoint

    save_checkpoint(model_dir, model, vocab, decoding=decoding, manifest=manifest,
                    extra={"train": info, "train_config": cfg.model_dump()})


def _load_model(model_dir: Path) -> tuple[Seq2Seq, Vocab]:
    from chatbot.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model_dir)
    return ckpt.model, ckpt.vocab
