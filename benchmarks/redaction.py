"""Precision and recall of PII redaction per type on the labelled set, and its false-positive rate.

The set: the hand-labelled cases in ``tests/data/fixtures/pii_cases.txt`` (English and Chinese,
including negatives) plus the ABCD sample from ``../shared/data/abcd`` when present, labelled from each
conversation's ``scenario`` (name, email, phone, username, order id, street address, zip). ABCD is
scored twice: by the rules alone, and with the conversation's known values as the product uses them.

With ``../shared/data/sgd/dev`` present, two figures from SGD dev customer turns, labelled by SGD's own
slot annotations (nobody wrote the redaction rules against them):

* ``sgd_names``: NAME precision and recall over every dev customer turn, the gold names being the
  private persons SGD annotates (``recipient_name``: "send $50 to Yumi"). A predicted NAME elsewhere is
  wrong, also on a public figure (``artist``, ``director``, ``starring``, ``actors``: counted apart).
* ``sgd_false_positives``: of 1,000 customer turns spread evenly over dev, the share that ``redact``
  changed outside a private person's name (text that should have stayed), per label.

    python benchmarks/redaction.py [--json] [--sgd-split dev|train]
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
SGD = ROOT / ".." / "shared" / "data" / "sgd"
SGD_PRIVATE_PERSONS = {"recipient_name", "contact_name", "receiver", "recipient_account_name"}
SGD_PUBLIC_PERSONS = {"artist", "director", "starring", "actors", "cast"}
FP_TURNS = 1000


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


def load_sgd(split: str = "dev") -> list[tuple[str, list[PiiSpan], list[tuple[int, int]]]]:
    """(customer turn, gold NAME spans of private persons, spans of public figures) for every customer turn."""
    import gzip

    rows = []
    for path in sorted((SGD / split).glob("dialogues_*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            dialogues = json.load(f)
        for dialogue in dialogues:
            for turn in dialogue["turns"]:
                if turn["speaker"] != "USER":
                    continue
                slots = [s for frame in turn["frames"] for s in frame["slots"]]
                gold = [PiiSpan(s["start"], s["exclusive_end"], "NAME") for s in slots if s["slot"] in SGD_PRIVATE_PERSONS]
                public = [(s["start"], s["exclusive_end"]) for s in slots if s["slot"] in SGD_PUBLIC_PERSONS]
                rows.append((turn["utterance"], gold, public))
    return rows


def sgd_names(rows: list[tuple[str, list[PiiSpan], list[tuple[int, int]]]]) -> dict[str, float]:
    """NAME precision and recall against SGD's private-person slots; wrong NAMEs on public figures apart."""
    cases, on_public = [], 0
    for text, gold, public in rows:
        predicted = [p for p in find_pii(text) if p.label == "NAME"]
        on_public += sum(any(s < p.end and p.start < e for s, e in public) for p in predicted)
        cases.append((gold, predicted))
    table = score(cases).get("NAME", {"precision": 1.0, "recall": 1.0, "gold": 0, "predicted": 0})
    correct = round(table["precision"] * table["predicted"])
    return {**table, "turns": len(rows), "wrong_on_public_figures": on_public,
            "precision_public_figures_aside": correct / max(table["predicted"] - on_public, 1)}


def sgd_false_positives(rows: list[tuple[str, list[PiiSpan], list[tuple[int, int]]]],
                        n: int = FP_TURNS) -> dict[str, float | dict[str, int]]:
    """Share of ``n`` customer turns (spread evenly) that redaction changed outside a private person's name."""
    sample = [rows[i * len(rows) // n] for i in range(n)] if len(rows) > n else rows
    changed, private_changed, by_label, examples = 0, 0, {}, []
    for text, gold, public in sample:
        wrong = [p for p in find_pii(text) if not any(g.start < p.end and p.start < g.end for g in gold)]
        if wrong:
            changed += 1
            private_changed += any(not any(s < p.end and p.start < e for s, e in public) for p in wrong)
            for p in wrong:
                by_label[p.label] = by_label.get(p.label, 0) + 1
            if len(examples) < 20:
                examples.append(" | ".join(f"{p.label}:{text[p.start:p.end]}" for p in wrong) + f"  <- {text}")
    return {"turns": len(sample), "changed": changed, "rate": changed / max(len(sample), 1),
            "rate_public_figures_aside": private_changed / max(len(sample), 1),
            "by_label": dict(sorted(by_label.items())), "examples": examples}


def evaluate(sgd_split: str = "dev") -> dict[str, dict[str, dict[str, float]]]:
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
    if (SGD / sgd_split).is_dir():
        rows = load_sgd(sgd_split)
        report["sgd_names"] = {"NAME": sgd_names(rows)}
        report["sgd_false_positives"] = sgd_false_positives(rows)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sgd-split", default="dev", help="SGD split for the sgd_* figures (tune on train, "
                        "report on dev)")
    args = parser.parse_args()
    report = evaluate(args.sgd_split)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    fp = report.pop("sgd_false_positives", None)
    for name, table in report.items():
        print(f"\n{name}\n{'type':<8} {'gold':>5} {'pred':>5} {'precision':>9} {'recall':>7}")
        for label, row in table.items():
            print(f"{label:<8} {row['gold']:>5} {row['predicted']:>5} {row['precision']:>9.3f} {row['recall']:>7.3f}")
        if "wrong_on_public_figures" in table.get("NAME", {}):
            row = table["NAME"]
            print(f"  ({row['wrong_on_public_figures']} of the wrong NAMEs are public figures: artists, directors, "
                  f"actors; precision leaving them aside {row['precision_public_figures_aside']:.3f})")
    if fp is not None:
        print(f"\nsgd_false_positives: {fp['changed']} of {fp['turns']} customer turns changed outside a "
              f"private person's name ({fp['rate']:.1%}; {fp['rate_public_figures_aside']:.1%} leaving aside the names "
              f"of public figures); spans by label {fp['by_label']}")
        for example in fp["examples"]:
            print("  " + example)
    return 0


if __name__ == "__main__":
    sys.exit(main())
