"""How close one reply is to another: the two measures the admin page reports (pure functions)."""

from __future__ import annotations


def edit_distance(a: str, b: str) -> float:
    """Character-level Levenshtein distance divided by the longer text's length: 0 same, 1 nothing shared."""
    if a == b:
        return 0.0
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / len(a)


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence chrF (0-100, sacrebleu's defaults), the promotion gate's measure of closeness to what an agent
    wrote."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(hypothesis, [reference]).score)
