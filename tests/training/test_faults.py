"""Faults while training (issue 19): the disk fills up under ``chatbot train`` and ``chatbot nightly``.

"Disk full" is a real write limit on the child process (``RLIMIT_FSIZE``: every write past it fails with
``EFBIG``, as ``ENOSPC`` would; Python ignores ``SIGXFSZ``), which works as root, where a read-only
directory would not stop anything. In both cases the good checkpoint stays what it was and loads, the
command fails with one clear ``error:`` line, and the next run, with room again, succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from chatbot.model.checkpoint import load_checkpoint
from chatbot.settings import load_settings
from chatbot.store import jobs, registry
from chatbot.store.manager import ConversationStore
from training.importers import get_importer
from training.ingest import ingest
from training.train import METRICS_FILE, MODEL_SUBDIR, STATE_FILE

from .conftest import make_conversations, write_jsonl
from .test_nightly import _env as nightly_env
from .test_train import TINY_TOML, _rows

pytestmark = pytest.mark.slow


def _disk_full_at(limit_bytes: int):  # type: ignore[no-untyped-def]
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _one_clear_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error:"), stderr[-3000:]
    return last


def test_disk_full_while_training_keeps_the_good_checkpoint(tiny_jsonl, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML.format(epochs=12, ckpt=0))
    out = tmp_path / "run"
    args = ["chatbot", "train", "--data", f"jsonl:{tiny_jsonl}", "--out", str(out), "--config", str(config)]
    env = {**os.environ, "CHATBOT_TORCH_THREADS": "1", "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ((out / MODEL_SUBDIR / "config.json").exists() and (out / STATE_FILE).exists()
               and len(_rows(out)) >= 20):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # a good checkpoint and state on disk, the run not finished
    first.wait()
    good = _digest(out / MODEL_SUBDIR)
    weights = (out / MODEL_SUBDIR / "model.safetensors").stat().st_size
    rows_before = len(_rows(out))

    full = subprocess.run([*args, "--resume"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_disk_full_at(weights // 2))
    assert full.returncode == 1, (full.returncode, full.stderr[-3000:])
    message = _one_clear_error(full.stderr)
    assert f"cannot write {out}" in message and "disk full or not writable" in message, message
    assert _digest(out / MODEL_SUBDIR) == good  # not replaced, not touched
    load_checkpoint(out / MODEL_SUBDIR)
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name or ".old" in p.name]  # no half-written leftovers
    assert len(_rows(out)) >= rows_before

    again = subprocess.run([*args, "--resume"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _digest(out / MODEL_SUBDIR) != good and load_checkpoint(out / MODEL_SUBDIR).config["extra"]
    assert (out / METRICS_FILE).exists()


def _fill(settings, tmp_path: Path, n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / f"conv-{seed}.jsonl", make_conversations(n, seed=seed))
    with ConversationStore(settings) as store, store.transaction() as s:
        ingest(s, get_importer("jsonl")(path, None))


def test_disk_full_during_nightly_keeps_the_active_model_and_the_lock_free(tmp_path, postgresql_url):
    # The store on PostgreSQL: the write limit then stops the nightly's files, not the database's.
    settings = load_settings(data_dir=tmp_path / "data", database_url=postgresql_url)
    ConversationStore(settings).ensure_schema()
    _fill(settings, tmp_path, 80, seed=1)
    env = {**nightly_env(tmp_path, epochs=4), "CHATBOT_DATABASE_URL": postgresql_url}
    first = subprocess.run(["chatbot", "nightly", "--full", "--json"], check=False, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    active_path = Path(json.loads(first.stdout)["training"]["model_dir"])
    with ConversationStore(settings) as store, store.transaction(read_only=True) as s:
        active = registry.active_version(s)
        assert active is not None and Path(active.path) == active_path
        versions = len(registry.list_versions(s))
    good = _digest(active_path)
    weights = (active_path / "model.safetensors").stat().st_size

    _fill(settings, tmp_path, 40, seed=2)
    full = subprocess.run(["chatbot", "nightly", "--json"], check=False, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_disk_full_at(weights // 2))
    assert full.returncode == 1, (full.returncode, full.stderr[-3000:])
    message = _one_clear_error(full.stderr)
    assert "nightly job" in message and "failed" in message and "disk full or not writable" in message, message
    with ConversationStore(settings) as store, store.transaction(read_only=True) as s:
        assert registry.active_version(s).id == active.id  # still the good one
        assert len(registry.list_versions(s)) == versions  # nothing half-trained registered
        failed = jobs.list_jobs(s, "nightly")[0]
        assert failed.status == "failed" and "disk full" in failed.error
    assert _digest(active_path) == good
    load_checkpoint(active_path)

    again = subprocess.run(["chatbot", "nightly", "--json"], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]  # no stale lock left behind
    assert json.loads(again.stdout)["decision"] in ("promoted", "rejected", "kept")
