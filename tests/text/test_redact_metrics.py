"""The labelled set (our cases + the ABCD sample when present): the recall the issue requires."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("redaction_benchmark", ROOT / "benchmarks" / "redaction.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_recall_on_labelled_set() -> None:
    report = _benchmark().evaluate()
    table = report.get("all_rules_only", report["own_cases"])
    for label in ("EMAIL", "PHONE", "CARD"):
        assert table[label]["recall"] >= 0.95, (label, table[label])
        assert table[label]["precision"] >= 0.9, (label, table[label])
    if "abcd_with_known" in report:
        assert all(row["recall"] == 1.0 for row in report["abcd_with_known"].values())
