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
                                     "(GenerationConfig names), over the serving settings'; used where a "
                                     "checkpoint decodes without serving settings (a distillation teacher). "
                                     "Serving, `chatbot eval` and the gate decode with the settings.")
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
    new_words_from: int | None = Field(None, ge=1, description="Vocabulary id where the words a fine-tune "
                                       "appended to its base model start (the nightly job's vocabulary growth "
                                       "sets it).")
    new_word_lr_scale: float = Field(1.0, ge=1, description="Those words' embedding and output rows move this "
                                     "many times as far per step as the rest: they start as <unk> and must "
                                     "learn a meaning in one fine-tune, while the trained rows only adjust.")
    answer_words: list[int] = Field([], description="Appended word ids that only replies used, whose input "
                                    "embedding started from the questions they answered: their embedding rows "
                                    "move answer_word_lr_scale times as far per step, not new_word_lr_scale "
                                    "(their output bias still does), so the output side does not overwrite "
                                    "the meaning the encoder reads.")
    answer_word_lr_scale: float = Field(1.0, ge=1)
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
        from chatbot.generation.config import check_decoding

        return check_decoding(value)  # nonsense fails here, not after training

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
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)  # a failed write surfaces as torch's RuntimeError ("unexpected pos ...")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: BaseException) -> TrainError:
    """A failed write (disk full, read-only directory) as one clear line; the last good files stay as they were."""
    first = (str(exc).splitlines() or [""])[0]
    reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror
              else "the write failed" if not first or first.startswith("[enforce fail") else first)
    return TrainError(f"cannot write {path}: {reason} (disk full or not writable?); the last saved checkpoint "
                      "is kept, and --resume continues from it once there is room")


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
    d = init_distributed()
    if threads:
        torch.set_num_threads(threads)
    if not train_pairs:
        raise TrainError("no training pairs")
    out_dir = Path(out_dir)
    state, cfg = _saved_state(out_dir, train_pairs, cfg, resume)
    out_dir.mkdir(parents=True, exist_ok=True)
    decoding = {**(decoding or {}), **cfg.decoding}
    run = _Run(train_pairs, dev_pairs, out_dir, cfg, d, state, init_from=init_from, decoding=decoding,
               manifest=manifest)
    return run.loop(max_minutes=max_minutes, progress=progress, handle_signals=handle_signals)


def _saved_state(out_dir: Path, train_pairs: Sequence[Pair], cfg: TrainConfig, resume: bool
                 ) -> tuple[dict[str, Any] | None, TrainConfig]:
    """The state to resume from (and the config it was trained with), or None for a fresh run; refuses
    to resume other data or a finished run, and to start over an existing run."""
    state_path = out_dir / STATE_FILE
    if not resume:
        if state_path.exists():
            raise TrainError(f"{out_dir} already holds a training run; pass --resume to continue it or use a new --out")
        return None, cfg
    if not state_path.exists():
        raise TrainError(f"--resume: no {STATE_FILE} in {out_dir}; start without --resume")
    state = torch.load(state_path, weights_only=True)
    if state["data"] != data_fingerprint(train_pairs):
        raise TrainError(f"--resume: {out_dir} was trained on different data; use a new --out")
    cfg = TrainConfig(**json.loads(state["config"]))
    if state["finished"]:
        raise TrainError(f"--resume: the run in {out_dir} already finished ({state['finished']})")
    return state, cfg


class _Run:
    """One training run's state: model, optimizer, data order and counters, saved whole by ``save_state``
    and restored from it. ``loop`` is the step loop; the rest are its pieces."""

    def __init__(self, train_pairs: Sequence[Pair], dev_pairs: Sequence[Pair], out_dir: Path, cfg: TrainConfig,
                 d: Dist, state: dict[str, Any] | None, *, init_from: Path | None, decoding: dict[str, Any],
                 manifest: dict[str, Any] | None) -> None:
        self.train_pairs, self.out_dir, self.cfg, self.d = train_pairs, out_dir, cfg, d
        self.decoding, self.manifest = decoding, manifest
        self.state_path = out_dir / STATE_FILE
        resume = state is not None
        torch.manual_seed(cfg.seed)
        if state is not None:
            self.vocab = Vocab.load(out_dir / "vocab.json")
            self.model = Seq2Seq(Seq2SeqConfig(**json.loads(state["model_config"])))
        elif init_from is not None:
            self.model, self.vocab = _load_model(init_from)
        else:
            self.vocab = build_vocab(train_pairs, cfg)
            self.model = Seq2Seq(cfg.model_config_for(len(self.vocab)))
        if d.main and not resume:
            self.vocab.save(out_dir / "vocab.json")
            (out_dir / "train_config.json").write_text(cfg.model_dump_json(indent=2))

        self.examples = encode_pairs(train_pairs, self.vocab, cfg.max_turns, cfg.max_src_tokens, cfg.max_tgt_tokens)
        self.dev_examples = encode_pairs(dev_pairs, self.vocab, cfg.max_turns, cfg.max_src_tokens, cfg.max_tgt_tokens)
        self.sampler = BucketBatchSampler([example_lengths(e) for e in self.examples], cfg.max_tokens,
                                          cfg.max_batch_size, cfg.seed, rank=d.rank, world_size=d.world_size)
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:  # a time-boxed run: let the cosine decay finish inside the box
            self.total_steps = min(self.total_steps, cfg.max_steps)

        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "norm" in name or name.endswith("bias") else decay).append(p)
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.warmup_steps, self.total_steps, cfg.min_lr_ratio))
        self.new_rows = self._new_word_rows()
        self.row_scales = [self._row_scale(p) for p in self.new_rows]

        self.step, self.epoch, self.batch_pos = 0, 0, 0
        self.best: float | None = None
        self.bad_evals, self.prior_elapsed, self.tokens_seen = 0, 0.0, 0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            self.step, self.epoch, self.batch_pos = state["step"], state["epoch"], state["batch_pos"]
            self.best, self.bad_evals = state["best_dev_loss"], state["bad_evals"]
            self.prior_elapsed, self.tokens_seen = state["elapsed_s"], state["tokens_seen"]
        self.log = MetricsLog(out_dir / METRICS_FILE, self.step if resume else None) if d.main else None

        self.ddp_model: torch.nn.Module = self.model
        if d.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(self.model)
        self.stopped = "epochs"
        self.last_eval_step = self.step
        self.t0 = time.monotonic()
        # Train loss and tokens since the last log line.
        self.window_loss, self.window_tokens, self.window_real, self.window_t0 = 0.0, 0, 0, self.t0
        self.step_lr = 0.0

    def fraction_of_epochs(self) -> float:
        return round(self.epoch + self.batch_pos / self.steps_per_epoch, 4)

    def save_state(self) -> None:
        if not self.d.main:
            return
        stopped, epochs = self.stopped, self.cfg.epochs
        atomic_torch_save({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": torch.get_rng_state(), "step": self.step,
            "epoch": self.epoch, "batch_pos": self.batch_pos, "best_dev_loss": self.best,
            "bad_evals": self.bad_evals, "elapsed_s": self.prior_elapsed + (time.monotonic() - self.t0),
            "tokens_seen": self.tokens_seen, "data": data_fingerprint(self.train_pairs),
            "config": self.cfg.model_dump_json(),
            "finished": "" if stopped == "interrupted" or (stopped in ("epochs", "max_minutes") and self.epoch < epochs)
                        else stopped,
            "model_config": json.dumps(self.model.config.to_dict()),
        }, self.state_path)

    def save_model(self, info: dict[str, Any]) -> None:
        _save_model(self.model, self.vocab, self.out_dir / MODEL_SUBDIR, self.cfg, info, self.decoding,
                    self.manifest)

    def evaluate_dev(self) -> bool:
        """Log dev loss; save the model when it improved. True when patience ran out."""
        if not self.dev_examples:
            return False
        cfg = self.cfg
        self.last_eval_step = self.step
        nll, n = dev_loss(self.model, self.dev_examples, self.vocab, cfg.max_tokens, cfg.max_batch_size)
        loss = nll / max(n, 1)
        if self.best is None or loss < self.best - 1e-4:
            self.best, self.bad_evals = loss, 0
            if self.d.main:
                self.save_model({"step": self.step, "dev_loss": loss})
        else:
            self.bad_evals += 1
        if self.log is not None:
            self.log.append(step=self.step, epoch=self.fraction_of_epochs(), dev_loss=loss,
                            dev_perplexity=math.exp(min(loss, 50)))
        return self.bad_evals >= cfg.patience

    def _new_word_rows(self) -> list[torch.Tensor]:
        """The parameters with one row per word (embedding, output layer): their rows from ``new_words_from``
        on are the appended words'."""
        cfg = self.cfg
        if cfg.new_words_from is None or cfg.new_word_lr_scale == 1.0:
            return []
        if cfg.new_words_from >= len(self.vocab):
            raise TrainError(f"new_words_from {cfg.new_words_from} is past the vocabulary ({len(self.vocab)} words)")
        if any(not cfg.new_words_from <= i < len(self.vocab) for i in cfg.answer_words):
            raise TrainError(f"answer_words must be appended words (ids {cfg.new_words_from} to {len(self.vocab) - 1})")
        params = dict(self.model.named_parameters())
        return [params[name] for name in ("embedding.weight", "out_bias", "lm_head.weight", "lm_head.bias")
                if name in params]

    def _optimizer_step(self) -> None:
        """AdamW's step, with the appended words' rows moved ``new_word_lr_scale`` times as far (the embedding
        rows of ``answer_words`` ``answer_word_lr_scale`` times). Scaling their gradients would not do it: Adam
        divides the scale out again."""
        start = self.cfg.new_words_from
        before = [p.detach()[start:].clone() for p in self.new_rows]
        self.optimizer.step()
        with torch.no_grad():
            for p, scale, old in zip(self.new_rows, self.row_scales, before):
                p[start:] += (scale - 1.0) * (p[start:] - old)

    def _row_scale(self, param: torch.Tensor) -> torch.Tensor | float:
        cfg = self.cfg
        if not cfg.answer_words or param is not self.model.embedding.weight:
            return cfg.new_word_lr_scale
        assert cfg.new_words_from is not None
        scale = torch.full((param.shape[0] - cfg.new_words_from, 1), cfg.new_word_lr_scale, dtype=param.dtype)
        scale[[i - cfg.new_words_from for i in cfg.answer_words]] = cfg.answer_word_lr_scale
        return scale

    def train_step(self, global_idx: Sequence[int]) -> None:
        """One optimizer step on this rank's share of a global batch."""
        d, examples = self.d, self.examples
        batch = collate([examples[i] for i in global_idx[d.rank :: d.world_size]], self.vocab)
        global_tokens = sum(len(examples[i].tgt_ids) + 1 for i in global_idx)  # type: ignore[arg-type]
        local_tokens = int(batch.tgt_mask.sum())  # type: ignore[union-attr]
        mean_loss = batch_loss(self.ddp_model, batch, self.cfg)
        loss = mean_loss * (local_tokens * d.world_size / global_tokens)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self._optimizer_step()
        self.step_lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.scheduler.step()
        self.step += 1
        self.batch_pos += 1
        real = int(batch.src_mask.sum()) + local_tokens  # source + target tokens, padding excluded
        self.tokens_seen += real * d.world_size  # ranks hold near-equal shares; not worth a collective
        self.window_loss += float(mean_loss.detach()) * local_tokens
        self.window_tokens += local_tokens
        self.window_real += real * d.world_size

    def log_window(self, bar: Any) -> None:
        now = time.monotonic()
        tps = self.window_real / max(now - self.window_t0, 1e-9)
        train_loss = self.window_loss / max(self.window_tokens, 1)
        bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{tps:,.0f}")
        if self.log is not None:
            self.log.append(step=self.step, epoch=self.fraction_of_epochs(), train_loss=train_loss, lr=self.step_lr,
                            tokens_per_s=tps)
        self.window_loss, self.window_tokens, self.window_real, self.window_t0 = 0.0, 0, 0, now

    def loop(self, *, max_minutes: float | None, progress: bool, handle_signals: bool) -> TrainResult:
        from tqdm import tqdm

        cfg, d = self.cfg, self.d
        self.t0 = time.monotonic()
        last_ckpt = self.t0
        self.window_loss, self.window_tokens, self.window_real, self.window_t0 = 0.0, 0, 0, self.t0
        self.stopped = "epochs"
        self.last_eval_step = self.step
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (progress and d.main), unit="step",
                   dynamic_ncols=True)
        stop_signal = _StopOnSignal(handle_signals)
        try:
            stop_signal.__enter__()
            while self.epoch < cfg.epochs and self.stopped == "epochs":
                global_batches = self.sampler.global_batches(self.epoch)
                for global_idx in global_batches[self.batch_pos:]:
                    self.train_step(global_idx)
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.batch_pos == self.steps_per_epoch:
                        self.log_window(bar)
                    if self.batch_pos == self.steps_per_epoch:
                        self.epoch, self.batch_pos = self.epoch + 1, 0
                        if self.evaluate_dev():
                            self.stopped = "early_stopping"
                    elif self.step % cfg.eval_every == 0 and self.evaluate_dev():
                        self.stopped = "early_stopping"
                    now = time.monotonic()
                    out_of_time = max_minutes is not None and now - self.t0 >= max_minutes * 60
                    if self.stopped == "epochs" and (self.step >= self.total_steps or _any_rank(out_of_time, d)):
                        self.stopped = "max_steps" if self.step >= self.total_steps else "max_minutes"
                        if self.last_eval_step != self.step:  # keep what the steps since the last evaluation learned
                            self.evaluate_dev()
                    if (self.stopped == "epochs" and stop_signal.enabled
                            and _any_rank(stop_signal.signum is not None, d)):
                        self.stopped = "interrupted"  # saved just below; no evaluation: whoever pressed Ctrl-C waits
                        if d.main:
                            name = signal.Signals(stop_signal.signum).name if stop_signal.signum else "a signal"
                            bar.write(f"{name}: saving the training state at step {self.step} (send it again to "
                                      "abort without saving)", file=sys.stderr)
                    if self.stopped != "epochs" or _any_rank(now - last_ckpt >= cfg.checkpoint_minutes * 60, d):
                        self.save_state()
                        last_ckpt = now
                    if self.stopped != "epochs" or self.batch_pos == 0:
                        break
        finally:
            stop_signal.__exit__()
            bar.close()
        if self.stopped == "interrupted":
            raise TrainingInterrupted(stop_signal.signum or signal.SIGINT, self.step, self.total_steps, self.state_path)
        return self.finish()

    def finish(self) -> TrainResult:
        """Save the final state (and the model when there is no dev set to pick the best), plot, report."""
        self.save_state()
        if not self.dev_examples and self.d.main:
            self.save_model({"step": self.step})
        elapsed = self.prior_elapsed + time.monotonic() - self.t0
        if self.log is not None:
            plot_metrics(self.out_dir / METRICS_FILE, self.out_dir)
        result = TrainResult(self.out_dir, self.out_dir / MODEL_SUBDIR, self.step, self.fraction_of_epochs(),
                             self.best, self.stopped, self.tokens_seen / max(elapsed, 1e-9), elapsed)
        if self.d.main:
            (self.out_dir / "train_result.json").write_text(json.dumps(result.to_dict(), indent=2))
        return result


def decoding_of(settings: Any) -> dict[str, Any]:
    """The decoding settings a model is trained for; saved into its checkpoint (the keys are
    ``chatbot.generation.config.RECORDED_DECODING``)."""
    from chatbot.generation.config import RECORDED_DECODING, settings_decoding

    return settings_decoding(settings, RECORDED_DECODING)


def _save_model(model: Seq2Seq, vocab: Vocab, model_dir: Path, cfg: TrainConfig, info: dict[str, Any],
                decoding: dict[str, Any] | None, manifest: dict[str, Any] | None) -> None:
    from chatbot.model.checkpoint import save_checkpoint

    try:  # written beside the old one and renamed over it: a failed write leaves the old one whole
        save_checkpoint(model_dir, model, vocab, decoding=decoding, manifest=manifest,
                        extra={"train": info, "train_config": cfg.model_dump()})
    except Exception as exc:  # OSError, torch's RuntimeError, safetensors' SafetensorError ("I/O error: ...")
        from chatbot.model.checkpoint import CheckpointError

        if isinstance(exc, (TrainError, CheckpointError)):
            raise
        raise _write_error(model_dir, exc) from exc


def _load_model(model_dir: Path) -> tuple[Seq2Seq, Vocab]:
    from chatbot.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model_dir)
    return ckpt.model, ckpt.vocab
