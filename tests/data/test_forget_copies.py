"""Issue 19, item 10, through the real CLI on SQLite and PostgreSQL: ``chatbot forget`` reaches the copies the
product wrote (``export pairs`` files and their manifests, nightly work files and the reports that quote
held-out corrections, in files, jobs and the registry), lists the models trained on
the customer with their lineage, and on SQLite leaves none of the customer's words in the database files."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from chatbot.cli import app
from chatbot.files import private_dir
from chatbot.store import registry
from chatbot.store.files import record_written
from chatbot.store.models import Job, ModelVersion
from chatbot.store.retention import customer_hash
from chatbot.text.taught import TAUGHT_FILE, TaughtAnswers, TaughtEntry, load_taught, save_taught
from tests.shortcuts import ShortcutStore
from training.nightly import render_markdown

runner = CliRunner()
SECRET = "my passport number is ZX9931774 and I live at 12 Quiet Lane"


def _run(url: str, data_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"CHATBOT_DATABASE_URL": url, "CHATBOT_DATA_DIR": str(data_dir)})


def _conversation(store: ShortcutStore, customer: str, text: str) -> tuple[int, int]:
    user = store.get_or_create_customer(customer)
    conversation = store.start_conversation(customer_id=user.id, language="en")
    store.append_message(conversation.id, "customer", text)
    store.set_status(conversation.id, "human")
    store.append_message(conversation.id, "agent", "Thanks, noted: Quiet Lane." if customer == "eve" else "Okay.")
    return user.id, conversation.id


def _quoting_report(conversations: dict[str, int]) -> dict:
    """A nightly report as the gate writes it: held-out corrections quoted, each with its conversation."""
    rows = [{"customer": SECRET, "agent": "Noted | Quiet Lane", "reply": "ok", "conversation_id": conversations["eve"]},
            {"customer": "what time do you open tomorrow?", "agent": "At 9.", "reply": "ok",
             "conversation_id": conversations["sam"]}]
    candidate = {"chrf": 40.0, "corrections": rows}
    return {"job_id": 1, "started_at": "2026-12-06", "since": None, "full": False, "decision": "rejected",
            "data": {"pairs": 2}, "metrics": {"candidate": candidate, "active": {}}, "reasons": ["r"],
            "gate": {"candidate": candidate}}


def test_forget_reaches_exports_work_files_lineage_and_the_database_files(db_url, tmp_path):
    store = ShortcutStore(db_url)
    store.ensure_schema()
    eve, eve_conversation = _conversation(store, "eve", SECRET)
    sam, sam_conversation = _conversation(store, "sam", "what time do you open tomorrow?")
    quoting = _quoting_report({"eve": eve_conversation, "sam": sam_conversation})

    out = tmp_path / "exports" / "pairs.jsonl"
    exported = _run(db_url, tmp_path / "data", "export", "pairs", str(out), "--no-redact", "--json")
    assert exported.exit_code == 0, exported.output
    assert "Quiet Lane" in out.read_text()
    manifest = json.loads(exported.stdout)
    # A nightly work directory with a data file in it, and three model generations: v1 saw eve, v2 was
    # fine-tuned from v1, v3 from v2; v4 never saw her.
    workdir = tmp_path / "nightly" / "job-1"
    workdir.mkdir(parents=True)
    (workdir / "train.jsonl").write_text(json.dumps({"context": SECRET}) + "\n")
    (workdir / "report.json").write_text(json.dumps(quoting))
    (workdir / "report.md").write_text(render_markdown(quoting))
    assert "Quiet Lane" in (workdir / "report.md").read_text()
    # A later night whose new data had only sam, but whose model keeps every correction it was taught
    later = tmp_path / "nightly" / "job-2"
    save_taught(TaughtAnswers.build([
        TaughtEntry(SECRET, "Thanks, noted: Quiet Lane.", conversation_id=eve_conversation),
        TaughtEntry("what time do you open tomorrow?", "At 9.", conversation_id=sam_conversation)]),
        private_dir(later / "train" / "model"))
    assert "ZX9931774" in (later / "train" / "model" / TAUGHT_FILE).read_text()
    with store.transaction() as s:
        s.add(Job(kind="nightly", status="succeeded", report=quoting))
        record_written(s, "nightly", workdir, [customer_hash(eve)])
        record_written(s, "nightly", later, [customer_hash(sam)])
        v1 = registry.register(s, "v1", str(tmp_path / "m1"), manifest={"export": manifest})
        v2 = registry.register(s, "v2", str(tmp_path / "m2"), manifest={"export": {"customer_hashes": []}})
        v3 = registry.register(s, "v3", str(tmp_path / "m3"))
        v4 = registry.register(s, "v4", str(tmp_path / "m4"))
        registry.set_metrics(s, v3.id, {**quoting["metrics"]["candidate"], "gate": quoting["gate"]})
        s.get(ModelVersion, v2.id).parent_id = v1.id  # type: ignore[union-attr]
        s.get(ModelVersion, v3.id).parent_id = v2.id  # type: ignore[union-attr]
        ids = {"v1": v1.id, "v2": v2.id, "v3": v3.id, "v4": v4.id}
    store.close()

    forgot = _run(db_url, tmp_path / "data", "forget", "--customer", "eve", "--json")
    assert forgot.exit_code == 0, forgot.output
    report = json.loads(forgot.stdout)
    assert {v["name"]: v["via"] for v in report["model_versions"]} == {
        "v1": "trained on the customer's data", "v2": f"fine-tuned from version {ids['v1']}",
        "v3": f"fine-tuned from version {ids['v2']}"}
    assert {f["kind"] for f in report["files"]} == {"pairs", "nightly", "report", "taught"}
    taught = load_taught(later / "train" / "model")
    assert taught is not None and [e.conversation_id for e in taught.entries] == [sam_conversation]
    left = (later / "train" / "model" / TAUGHT_FILE).read_text()
    assert "ZX9931774" not in left and "Quiet" not in left and "passport" not in left and "open tomorrow" in left

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and "Quiet Lane" not in out.read_text() and "ZX9931774" not in out.read_text()
    assert all("open tomorrow" in json.dumps(line) for line in lines)  # the other customer stays
    new_manifest = json.loads((tmp_path / "exports" / "pairs.manifest.json").read_text())
    assert customer_hash(eve) not in new_manifest["customer_hashes"] and new_manifest["pairs"] == len(lines)
    assert not (workdir / "train.jsonl").exists()
    for name in ("report.json", "report.md"):  # the other customer's row stays
        text = (workdir / name).read_text()
        assert "Quiet Lane" not in text and "ZX9931774" not in text and "open tomorrow" in text, name
    check = ShortcutStore(db_url)
    with check.transaction() as s:
        stored = [j.report for j in s.scalars(select(Job))] + [s.get(ModelVersion, ids["v3"]).metrics]  # type: ignore[union-attr]
    check.close()
    for value in stored:
        assert "ZX9931774" not in json.dumps(value) and "open tomorrow" in json.dumps(value)
    assert (out.stat().st_mode & 0o077) == 0  # rewritten owner-only

    if db_url.startswith("sqlite"):
        assert report["reclaimed"].startswith("sqlite: wal_checkpoint(TRUNCATE) + VACUUM")
        db_file = Path(db_url.removeprefix("sqlite:///"))
        for path in (db_file, db_file.with_name(db_file.name + "-wal")):
            if path.exists():
                assert b"ZX9931774" not in path.read_bytes(), f"{path.name} still holds the erased text"
    else:
        assert report["reclaimed"].startswith("postgresql: VACUUM messages")

    again = _run(db_url, tmp_path / "data", "forget", "--customer", "sam", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["model_versions"][0]["name"] == "v1"
