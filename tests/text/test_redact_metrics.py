"""The labelled set (our cases + the ABCD sample when present): the recall the issue requires."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("redaction_benchmark", ROOT / "benchmarks" / "redaction.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@functools.cache
def _report() -> dict:  # type: ignore[type-arg]
    return _benchmark().evaluate()


def test_recall_on_labelled_set() -> None:
    report = _report()
    table = report.get("all_rules_only", report["own_cases"])
    for label in ("EMAIL", "PHONE", "CARD"):
        assert table[label]["recall"] >= 0.95, (label, table[label])
        assert table[label]["precision"] >= 0.9, (label, table[label])
    if "abcd_with_known" in report:
        assert all(row["recall"] == 1.0 for row in report["abcd_with_known"].values())


def test_names_and_false_positives_on_data_the_rules_were_not_written_against() -> None:
    """Issue 18, item 7: names are found in ABCD and SGD dev, and ordinary SGD turns stay as they were.

    Before the name lexicon and national-id rules: ABCD NAME recall 0.00 (rules only), SGD dev NAME recall
    0.007; 0.5% of 1,000 SGD dev customer turns changed. After: 1.00, 0.40, 1.3% (all but 0.3% of them the
    names of public figures: "a movie directed by Alfred Hitchcock")."""
    report = _report()
    if "abcd_rules_only" in report:
        assert report["abcd_rules_only"]["NAME"]["recall"] >= 0.8, report["abcd_rules_only"]["NAME"]
    if "sgd_names" in report:
        names = report["sgd_names"]["NAME"]
        assert names["recall"] >= 0.35 and names["precision_public_figures_aside"] >= 0.7, names
        fp = report["sgd_false_positives"]
        assert fp["rate"] <= 0.02 and fp["rate_public_figures_aside"] <= 0.006, fp
