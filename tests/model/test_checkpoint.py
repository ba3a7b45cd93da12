"""Checkpoints round-trip exactly and every unsafe or inconsistent directory is refused, loading nothing."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from chatbot.model import (
    CheckpointError,
    Seq2Seq,
    Seq2SeqConfig,
    collate,
    encode_pair,
    load_checkpoint,
    save_checkpoint,
)
from chatbot.model.checkpoint import FORMAT_VERSION
from chatbot.text.vocab import Vocab

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build(["where is my order please thanks".split()], min_freq=1)


@pytest.fixture(scope="module")
def model(vocab: Vocab) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, dec_layers=2)).eval()


@pytest.fixture()
def saved(tmp_path: Path, model: Seq2Seq, vocab: Vocab) -> Path:
    return save_checkpoint(
        tmp_path / "ckpt", model, vocab, manifest={"pairs": 20}, metrics={"bleu": 1.5}, decoding={"num_beams": 3}
    )


def _batch(vocab: Vocab):
    return collate([encode_pair("<customer> where is order X1".split(), "order X1 please".split(), vocab)], vocab)


def _step_log_probs(model: Seq2Seq, vocab: Vocab) -> torch.Tensor:
    batch = _batch(vocab)
    with torch.no_grad():
        state = model.encode(batch)
        lp, state = model.step(batch.tgt_in[:, 0], state)
        lp2, _ = model.step(batch.tgt_in[:, 1], state)
    return torch.cat([lp, lp2])


def test_round_trip_gives_identical_log_probs(saved: Path, model: Seq2Seq, vocab: Vocab) -> None:
    loaded = load_checkpoint(saved)
    assert not loaded.model.training
    assert loaded.vocab == vocab
    assert loaded.config["manifest"] == {"pairs": 20} and loaded.config["metrics"] == {"bleu": 1.5}
    assert loaded.config["decoding"] == {"num_beams": 3}
    assert loaded.config["vocab"]["sha256"] == vocab.sha256()
    assert torch.equal(_step_log_probs(loaded.model, vocab), _step_log_probs(model, vocab))
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_float16_weights_load_back_as_float32(tmp_path: Path, model: Seq2Seq, vocab: Vocab) -> None:
    full = save_checkpoint(tmp_path / "fp32", model, vocab)
    half = save_checkpoint(tmp_path / "fp16", model, vocab, dtype="float16")
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert torch.allclose(_step_log_probs(loaded.model, vocab), _step_log_probs(model, vocab), atol=1e-2)


def test_saving_over_an_existing_checkpoint_replaces_it(saved: Path, model: Seq2Seq, vocab: Vocab) -> None:
    save_checkpoint(saved, model, vocab, metrics={"bleu": 2.0})
    assert load_checkpoint(saved).config["metrics"] == {"bleu": 2.0}


def _expect_refusal(directory: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(directory)


def test_missing_directory_and_files(saved: Path, tmp_path: Path) -> None:
    _expect_refusal(tmp_path / "nope", "not found")
    (saved / "vocab.json").unlink()
    _expect_refusal(saved, "vocabulary file not found")


def test_missing_weights(saved: Path) -> None:
    (saved / "model.safetensors").unlink()
    _expect_refusal(saved, "no model.safetensors")


def test_missing_config(saved: Path) -> None:
    (saved / "config.json").unlink()
    _expect_refusal(saved, "no config.json")


def test_truncated_weights(saved: Path) -> None:
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    _expect_refusal(saved, "truncated or corrupted")


def test_corrupted_weights(saved: Path) -> None:
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    _expect_refusal(saved, "truncated or corrupted")


def test_garbage_weights_with_matching_hash(saved: Path) -> None:
    """Even a file whose hash was updated must parse as safetensors."""
    import hashlib

    weights = saved / "model.safetensors"
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header!!}")
    config = json.loads((saved / "config.json").read_text())
    config["weights"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (saved / "config.json").write_text(json.dumps(config))
    _expect_refusal(saved, "not a valid safetensors file")


def test_corrupted_config(saved: Path) -> None:
    (saved / "config.json").write_text('{"format": "chatbot-seq2seq", "format_')
    _expect_refusal(saved, "not valid JSON")


def test_vocabulary_mismatch(saved: Path, vocab: Vocab) -> None:
    other = Vocab([*vocab.tokens[:-1], "zebra"])  # same size, different last token
    other.save(saved / "vocab.json")
    _expect_refusal(saved, "vocabulary mismatch")


def test_newer_format_version(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    config["format_version"] = FORMAT_VERSION + 1
    (saved / "config.json").write_text(json.dumps(config))
    _expect_refusal(saved, "newer than this build")


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/chatbot-pickle-executed"),))


def test_pickle_weights_are_never_unpickled(saved: Path, model: Seq2Seq) -> None:
    marker = Path("/tmp/chatbot-pickle-executed")
    marker.unlink(missing_ok=True)
    # A torch.save / pickle file disguised under the safetensors name ...
    (saved / "model.safetensors").write_bytes(pickle.dumps({"weights": _Boom()}, protocol=4))
    _expect_refusal(saved, "pickle")
    torch.save(model.state_dict(), saved / "model.safetensors")
    _expect_refusal(saved, "pickle")
    # ... or shipped as a .pt file instead of safetensors.
    (saved / "model.safetensors").unlink()
    (saved / "model.pt").write_bytes(pickle.dumps(_Boom()))
    _expect_refusal(saved, "unpickling can execute code")
    assert not marker.exists()


def test_shape_mismatch(tmp_path: Path, vocab: Vocab, saved: Path) -> None:
    torch.manual_seed(0)
    wider = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=48, dec_layers=2))
    other = save_checkpoint(tmp_path / "wider", wider, vocab)
    shutil.copy(other / "model.safetensors", saved / "model.safetensors")
    config = json.loads((saved / "config.json").read_text())
    config["weights"]["sha256"] = json.loads((other / "config.json").read_text())["weights"]["sha256"]
    (saved / "config.json").write_text(json.dumps(config))
    _expect_refusal(saved, "shape mismatch")


def test_architecture_mismatch(tmp_path: Path, saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    config["model"]["copy"] = False  # the weights hold a copy gate this config does not have
    (saved / "config.json").write_text(json.dumps(config))
    _expect_refusal(saved, "unexpected")
    config["model"]["layers"] = 3
    (saved / "config.json").write_text(json.dumps(config))
    _expect_refusal(saved, "invalid model section")


def test_save_refuses_a_vocabulary_of_the_wrong_size(tmp_path: Path, model: Seq2Seq) -> None:
    with pytest.raises(CheckpointError, match="vocabulary has"):
        save_checkpoint(tmp_path / "x", model, Vocab.build([["a"]], min_freq=1))
    assert not (tmp_path / "x").exists()
