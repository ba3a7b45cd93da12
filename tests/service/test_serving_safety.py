"""Issue 19, items 2, 3 and 11, on SQLite and PostgreSQL: rollback follows the promotion history; a version
that cannot serve (files truncated after registering, NaN weights) is refused by ``chatbot models promote``
and the admin action, and nothing changes; database, WAL and exports are created owner-only."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chatbot.cli import app
from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.store import registry
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

from .tiny import TINY_DECODING, WORDS


def nan_checkpoint(directory: Path) -> Path:
    """A checkpoint that loads fine and scores every candidate NaN."""
    vocab = Vocab([*SPECIAL_TOKENS, *WORDS])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    return save_checkpoint(directory, model, vocab)


def truncated_copy(source: Path, directory: Path) -> Path:
    shutil.copytree(source, directory)
    weights = next(p for p in directory.iterdir() if p.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return directory


def _active(store) -> str | None:
    with store.transaction(read_only=True) as s:
        version = registry.active_version(s)
        return version.name if version else None


# --- 3: rollback follows the promotion history ---------------------------------------------------------
def test_rollback_returns_to_the_version_before_the_current_one_in_the_history(store, tiny_models):
    with store.transaction() as s:
        ids = {n: registry.register(s, n, str(tiny_models.first)).id for n in ("v1", "v2", "v3")}
    steps = [("promote", "v1"), ("promote", "v3"), ("rollback", "v1"), ("promote", "v2"), ("rollback", "v1")]
    for action, expected in steps:
        with store.transaction() as s:
            version = registry.promote(s, ids[expected]) if action == "promote" else registry.rollback(s)
        assert version.name == expected and _active(store) == expected, (action, expected)
    with store.transaction() as s, pytest.raises(registry.IllegalTransition, match="no earlier model version"):
        registry.rollback(s)  # v1 was the first: nothing before it


def test_repeated_rollbacks_walk_back_and_a_repromoted_version_counts_once(store, tiny_models):
    with store.transaction() as s:
        ids = {n: registry.register(s, n, str(tiny_models.first)).id for n in ("v1", "v2", "v3")}
        for name in ("v1", "v2", "v3"):
            registry.promote(s, ids[name])
    with store.transaction() as s:
        assert registry.rollback(s).name == "v2"
    with store.transaction() as s:
        assert registry.rollback(s).name == "v1"
    with store.transaction() as s:
        registry.promote(s, ids["v3"])  # history now v1, v3: rollback skips v2 (rolled back away from)
    with store.transaction() as s:
        assert [v.name for v in registry.fallbacks(s)] == ["v1"]
        assert registry.rollback(s).name == "v1"


# --- 2: promotion loads and smoke-tests the version first ----------------------------------------------------
@pytest.fixture
def broken_versions(store, tiny_models, tmp_path):
    with store.transaction() as s:
        good = registry.register(s, "good", str(tiny_models.first))
        registry.promote(s, good.id)
        truncated = registry.register(s, "truncated", str(truncated_copy(tiny_models.second, tmp_path / "cut")))
        nan = registry.register(s, "nan", str(nan_checkpoint(tmp_path / "nan")))
        spare = registry.register(s, "spare", str(tiny_models.second))
    return {"truncated": truncated.id, "nan": nan.id, "spare": spare.id}


@pytest.mark.parametrize(("name", "reason"), [("truncated", "cannot be loaded"), ("nan", "NaN")])
def test_the_admin_cannot_promote_a_version_that_cannot_serve(store, broken_versions, tmp_path, name, reason):
    from chatbot.service.chat import ChatService
    from chatbot.service.smoke import ModelNotServable
    from chatbot.settings import load_settings

    settings = load_settings(data_dir=tmp_path / "data", database_url=store.url, **TINY_DECODING)
    service = ChatService(store, settings, None)
    service.add_user("root", "password123", "admin")
    admin = service.login("root", "password123")
    with pytest.raises(ModelNotServable, match=reason):
        service.set_model(admin, "promote", broken_versions[name])
    assert _active(store) == "good"
    assert "spare" in service.set_model(admin, "promote", broken_versions["spare"])  # a sound one passes


@pytest.mark.parametrize(("name", "reason"), [("truncated", "cannot be loaded"), ("nan", "NaN")])
def test_models_promote_refuses_a_version_that_cannot_serve(store, broken_versions, tmp_path, name, reason):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")},
           "CHATBOT_DATABASE_URL": store.url, "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["models", "promote", str(broken_versions[name])], env=env)
    assert result.exit_code == 1, result.output
    assert reason in result.output and name in result.output
    assert _active(store) == "good"


# --- 11: owner-only files ----------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_its_wal_and_exports_are_owner_only(tmp_path):
    from chatbot.settings import load_settings
    from tests.shortcuts import ShortcutStore
    from training.export import ExportOptions, export_pairs, manifest_path

    old = os.umask(0o022)  # the usual default, under which they came out 0644 in 0755 directories
    try:
        data = tmp_path / "fresh" / "data"
        with ShortcutStore(load_settings(data_dir=data)) as store:
            conversation = store.start_conversation(language="en")
            store.append_message(conversation.id, "customer", "my card is 4111 1111 1111 1111")
            store.append_message(conversation.id, "agent", "thanks, we are on it")
            files = {p.name: _mode(p) for p in data.iterdir()}
            out = tmp_path / "exports" / "pairs.jsonl"
            with store.transaction(read_only=True) as s:
                export_pairs(s, out, ExportOptions())
    finally:
        os.umask(old)
    assert files == {"chatbot.db": 0o600, "chatbot.db-wal": 0o600, "chatbot.db-shm": 0o600}
    assert _mode(data) == _mode(data.parent) == 0o700
    assert _mode(out) == _mode(manifest_path(out)) == 0o600 and _mode(out.parent) == 0o700
