"""Import SGD train (12,174 conversations / 223,756 messages) into SQLite and PostgreSQL, side by side.

Each engine gets a fresh, migrated database; the import runs as the CLI runs it (one transaction, bulk
inserts), then a second import measures the idempotent no-op path. Target: <= 60 s into SQLite.

    python benchmarks/import.py [--path ../shared/data/sgd/train] [--pg postgresql+psycopg://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from chatbot.store import ConversationStore
from training.importers import get_importer
from training.ingest import ingest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT / ".." / "shared" / "data" / "sgd" / "train"


def run_import(url: str, path: Path) -> dict[str, Any]:
    store = ConversationStore(url)
    store.ensure_schema()
    try:
        start = time.perf_counter()
        with store.transaction() as session:
            report = ingest(session, get_importer("sgd")(path, None))
        first = time.perf_counter() - start
        start = time.perf_counter()
        with store.transaction() as session:
            again = ingest(session, get_importer("sgd")(path, None))
        second = time.perf_counter() - start
    finally:
        store.close()
    return {"conversations": report.conversations, "messages": report.messages, "seconds": round(first, 2),
            "conversations_per_s": round(report.conversations / first), "reimport_added": again.conversations,
            "reimport_seconds": round(second, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.path.exists():
        print(f"{args.path} not found", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run_import(f"sqlite:///{tmp}/bench.db", args.path)
    import psycopg

    name = f"chatbot_bench_{uuid.uuid4().hex[:8]}"
    admin = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}
    try:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        results["postgresql"] = {"error": str(exc).strip()}
    else:
        try:
            results["postgresql"] = run_import(f"{args.pg}/{name}", args.path)
        finally:
            with psycopg.connect(**admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    keys = ["conversations", "messages", "seconds", "conversations_per_s", "reimport_added", "reimport_seconds"]
    print(f"{'':<22}" + "".join(f"{engine:>14}" for engine in results))
    for key in keys:
        print(f"{key:<22}" + "".join(f"{str(r.get(key, r.get('error', '')))[:13]:>14}" for r in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
