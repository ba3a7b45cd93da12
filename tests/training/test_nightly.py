"""`chatbot nightly` on a real SQLite store: full run, fine-tune + gate, empty export, lock, no active model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from chatbot.settings import load_settings
from chatbot.store import jobs, registry
from chatbot.store.manager import ConversationStore
from training.importers import get_importer
from training.ingest import ingest

from .conftest import make_conversations, write_jsonl

TINY = """size = "tiny"
epochs = {epochs}
max_tokens = 400
max_batch_size = 16
lr = 0.01
warmup_steps = 2
log_every = 5
vocab_min_freq = 1
max_tgt_tokens = 20
"""


def _env(tmp_path: Path, epochs: int = 6) -> dict[str, str]:
    cfg = tmp_path / f"nightly-{epochs}.toml"
    cfg.write_text(TINY.format(epochs=epochs))
    return {**os.environ, "CHATBOT_DATA_DIR": str(tmp_path / "data"), "CHATBOT_TORCH_THREADS": "1",
            "CHATBOT_NIGHTLY_TRAIN_CONFIG": str(cfg), "CHATBOT_NUM_BEAMS": "2", "CHATBOT_MAX_NEW_TOKENS": "16",
            "CHATBOT_NIGHTLY_DEV_FRACTION": "0.2"}


def _fill_store(tmp_path: Path, n: int, seed: int) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    path = write_jsonl(tmp_path / f"conv-{seed}.jsonl", make_conversations(n, seed=seed))
    with ConversationStore(settings) as store, store.transaction() as s:
        ingest(s, get_importer("jsonl")(path, None))


def _nightly(tmp_path: Path, *args: str, epochs: int = 6) -> subprocess.CompletedProcess:
    return subprocess.run(["chatbot", "nightly", "--json", *args], env=_env(tmp_path, epochs), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_nightly_full_then_finetune_then_nothing_new(tmp_path):
    no_active = _nightly(tmp_path)
    assert no_active.returncode == 1 and "no active model to fine-tune" in no_active.stderr
    _fill_store(tmp_path, 80, seed=1)
    first = _nightly(tmp_path, "--full")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["decision"] == "promoted" and report["data"]["train_pairs"] > 50
    assert (Path(report["report_dir"]) / "report.md").read_text().startswith(f"# Nightly job {report['job_id']}")
    _fill_store(tmp_path, 40, seed=2)
    second = _nightly(tmp_path, epochs=2)
    assert second.returncode == 0, second.stderr
    report2 = json.loads(second.stdout)
    assert report2["decision"] in ("promoted", "rejected")
    assert 0 < report2["data"]["exported_pairs"] <= 80  # only conversations since the last success
    assert report2["metrics"]["active"] is not None and report2["checks"]
    settings = load_settings(data_dir=tmp_path / "data")
    with ConversationStore(settings) as store, store.transaction(read_only=True) as s:
        job = jobs.get_job(s, report2["job_id"])
        assert job.status == "succeeded" and job.report["decision"] == report2["decision"]
        statuses = {v.name.split("-")[1]: v.status for v in registry.list_versions(s)}
        assert statuses[str(report["job_id"])] in ("active", "retired")
    third = _nightly(tmp_path)
    assert third.returncode == 0 and json.loads(third.stdout)["decision"] == "skipped"


@pytest.mark.slow
def test_two_concurrent_nightly_runs_never_overlap(tmp_path):
    """Two nightly jobs and a manual ``chatbot train`` at once (issue 19): the lock lets one nightly run, the
    other says it is locked, and the manual run, which takes no lock, trains on beside them."""
    _fill_store(tmp_path, 150, seed=3)
    env = _env(tmp_path, epochs=20)
    manual_data = write_jsonl(tmp_path / "manual.jsonl", make_conversations(60, seed=9))
    manual = subprocess.Popen(["chatbot", "train", "--data", f"jsonl:{manual_data}", "--out", str(tmp_path / "manual"),
                               "--config", env["CHATBOT_NIGHTLY_TRAIN_CONFIG"], "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [subprocess.Popen(["chatbot", "nightly", "--full", "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    err = next(e for p, (_, e) in zip(procs, outs) if p.returncode == 1)
    assert "another nightly job is running" in err
    manual_out, manual_err = manual.communicate(timeout=300)
    assert manual.returncode == 0, manual_err[-3000:]
    assert Path(json.loads(manual_out)["model_dir"]) == tmp_path / "manual" / "model"
    with ConversationStore(load_settings(data_dir=tmp_path / "data")) as store, store.transaction(read_only=True) as s:
        names = [v.name for v in registry.list_versions(s)]
        assert len(names) == 1 and names[0].startswith("nightly-")  # one nightly's model; the manual one is not registered
        assert sorted(j.status for j in jobs.list_jobs(s, "nightly")) == ["succeeded"]  # the locked one made no job
