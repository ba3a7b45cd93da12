"""Precision and recall of PII redaction per type on the labelled set.

The set: the hand-labelled cases in ``tests/data/fixtures/pii_cases.txt`` (English and Chinese,
including negatives) plus the ABCD sample from ``../shared/data/abcd`` when present, labelled from each
conversation's ``scenario`` (name, email, phone, username, order id, street address, zip). ABCD is
scored twice: by the rules alone, and with the conversation's known values as the product uses them.

    python benchmarks/redaction.py [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from chatbot.text.redact import PiiSpan, find_pii, parse_marked, score

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "fixtures" / "pii_cases.txt"
ABCD = ROOT / ".." / "shared" / "data" / "abcd" / "abcd_sample.json"
ABCD_LABELS = {"customer_name": "NAME", "email": "EMAIL", "phone": "PHONE", "username": "ACCOUNT",
               "order_id": "ACCOUNT", "street_address": "ADDRESS", "zip_code": "ZIP"}


def load_cases(path: Path = CASES) -> list[tuple[str, str, list[PiiSpan]]]:
    """(language, text, gold spans) for each hand-labelled line."""
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            language, marked = line.split(" ", 1)
            text, spans = parse_marked(marked)
            cases.append((language, text, spans))
    return cases


def load_abcd(path: Path = ABCD) -> list[tuple[str, list[PiiSpan], dict[str, str]]]:
    """(turn text, gold spans, known values) for every original turn of the ABCD sample."""
    rows = []
    for convo in json.loads(path.read_text(encoding="utf-8")):
        values = {**convo["scenario"].get("personal", {}), **convo["scenario"].get("order", {})}
        known = {k: str(v) for k, v in values.items() if k in ABCD_LABELS}
        for _, text in convo["original"]:
            rows.append((text, _label_known(text, known), known))
    return rows


def _label_known(text: str, known: dict[str, str]) -> list[PiiSpan]:
    spans: list[PiiSpan] = []
    for key, value in sorted(known.items(), key=lambda kv: -len(kv[1])):
        parts = [value] + (value.split() if key == "customer_name" else [])
        for part in parts:
            for m in re.finditer(r"(?<!\w)" + re.escape(part) + r"(?!\w)", text, re.IGNORECASE):
                if not any(s.start < m.end() and m.start() < s.end for s in spans):
                    spans.append(PiiSpan(m.start(), m.end(), ABCD_LABELS[key]))
    return spans


def evaluate() -> dict[str, dict[str, dict[str, float]]]:
    cases = load_cases()
    report = {
        "own_cases": score((gold, find_pii(text, lang)) for lang, text, gold in cases),
        "own_cases_en": score((gold, find_pii(text, lang)) for lang, text, gold in cases if lang == "en"),
        "own_cases_zh": score((gold, find_pii(text, lang)) for lang, text, gold in cases if lang == "zh"),
    }
    if ABCD.exists():
        abcd = load_abcd()
        report["abcd_rules_only"] = score((gold, find_pii(text)) for text, gold, _ in abcd)
        report["abcd_with_known"] = score((gold, find_pii(text, known=known)) for text, gold, known in abcd)
        report["all_rules_only"] = score([(g, find_pii(t, lang)) for lang, t, g in cases]
                                         + [(g, find_pii(t)) for t, g, _ in abcd])
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = evaluate()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, table in report.items():
        print(f"\n{name}\n{'type':<8} {'gold':>5} {'pred':>5} {'precision':>9} {'recall':>7}")
        for label, row in table.items():
            print(f"{label:<8} {row['gold']:>5} {row['predicted']:>5} {row['precision']:>9.3f} {row['recall']:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
