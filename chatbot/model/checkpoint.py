"""Self-describing checkpoint directories: ``config.json`` + ``vocab.json`` + ``model.safetensors``.

Weights are only ever read with safetensors (no pickle: a checkpoint from a shared folder must not be able
to run code). Loading checks everything before building anything (format version, vocabulary hash, weight
file hash, tensor names and shapes) and returns a fresh model only when all of it matches: it never
half-loads. Saving writes a temporary directory and renames it into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.text.tokenize import SUPPORTED_LANGUAGES
from chatbot.text.vocab import Vocab, VocabError

FORMAT = "chatbot-seq2seq"
FORMAT_VERSION = 1
ARCHITECTURE = "rnn-attention-pointer-generator"
CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.json", "model.safetensors"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be saved or loaded safely; the message says why."""


@dataclass
class LoadedModel:
    model: Seq2Seq  # in eval mode
    vocab: Vocab
    config: dict[str, Any]  # the parsed config.json
    directory: Path

    @property
    def languages(self) -> list[str]:
        return list(self.config.get("languages", []))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: Seq2Seq,
    vocab: Vocab,
    *,
    manifest: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    decoding: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    languages: Sequence[str] = SUPPORTED_LANGUAGES,
    dtype: str = "float32",
) -> Path:
    """Write the checkpoint directory atomically (replacing an existing one) and return its path.

    ``dtype="float16"`` halves the file for shipping; weights are loaded back as float32.
    """
    from safetensors.torch import save_file

    if dtype not in _DTYPES:
        raise CheckpointError(f"unsupported dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    if len(vocab) != model.config.vocab_size:
        raise CheckpointError(f"vocabulary has {len(vocab)} tokens but the model expects {model.config.vocab_size}")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {
            name: (t.detach().to(_DTYPES[dtype]) if t.is_floating_point() else t.detach()).cpu().contiguous()
            for name, t in model.state_dict().items()
        }
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        vocab.save(tmp / VOCAB_FILE)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": ARCHITECTURE,
            "model": model.config.to_dict(),
            "parameters": model.num_parameters(),
            "languages": list(languages),
            "vocab": {"file": VOCAB_FILE, "size": len(vocab), "sha256": vocab.sha256()},
            "weights": {"file": WEIGHTS_FILE, "dtype": dtype, "sha256": _sha256_file(tmp / WEIGHTS_FILE)},
            "manifest": dict(manifest or {}),
            "metrics": dict(metrics or {}),
            "decoding": dict(decoding or {}),
            "extra": dict(extra or {}),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False, default=str), "utf-8")
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(directory, old)
            os.rename(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _refuse_pickle(directory: Path) -> None:
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickled = sorted(p.name for p in directory.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickled:
            raise CheckpointError(
                f"{directory} holds pickle-based weights ({', '.join(pickled)}) and no {WEIGHTS_FILE}; "
                "refusing to load them because unpickling can execute code; convert to safetensors"
            )
        return
    with weights.open("rb") as fh:
        head = fh.read(2)
    if head[:2] == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        raise CheckpointError(
            f"{weights} is a pickle/torch.save archive, not safetensors; refusing: unpickling can execute code"
        )


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    try:
        config = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {directory} has no {CONFIG_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is unreadable or not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint config")
    version = config.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path} has no integer format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version} is newer than this build reads ({FORMAT_VERSION}); "
            "upgrade the chatbot package to load it"
        )
    for key in ("model", "vocab", "weights"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{path} lacks the {key!r} section")
    return config


def load_checkpoint(directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> LoadedModel:
    """Load and verify a checkpoint; raises CheckpointError and builds nothing when anything is off."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    _refuse_pickle(directory)
    config = _read_config(directory)
    try:
        model_config = Seq2SeqConfig(**config["model"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model section in {directory / CONFIG_FILE}: {exc}") from None

    try:
        vocab = Vocab.load(directory / VOCAB_FILE)
    except VocabError as exc:
        raise CheckpointError(f"cannot load the vocabulary: {exc}") from None
    if vocab.sha256() != config["vocab"].get("sha256"):
        raise CheckpointError(
            f"vocabulary mismatch: {directory / VOCAB_FILE} hashes to {vocab.sha256()[:12]}..., the model was "
            f"trained with {str(config['vocab'].get('sha256'))[:12]}..."
        )
    if len(vocab) != model_config.vocab_size:
        raise CheckpointError(f"vocabulary has {len(vocab)} tokens, the model expects {model_config.vocab_size}")

    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS_FILE}")
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != config["weights"].get("sha256"):
        raise CheckpointError(f"{weights} is truncated or corrupted (sha256 does not match config.json)")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a valid safetensors file: {exc}") from None

    model = Seq2Seq(model_config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"weights do not match the architecture: missing {missing}, unexpected {unexpected}")
    wrong = [f"{k}: {tuple(tensors[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if tensors[k].shape != v.shape]
    if wrong:
        raise CheckpointError("weight shape mismatch: " + "; ".join(wrong))
    model.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()}, strict=True)
    model.to(map_location).eval()
    return LoadedModel(model=model, vocab=vocab, config=config, directory=directory)
