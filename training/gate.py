"""Promotion gate: a candidate replaces the active model only when it measurably learned what agents taught
and did not get worse at everything else.

Both models are scored exactly as they would serve (``training.evaluate`` builds the serving generator:
the settings' decoding, int8, the model's context window) on two suites:

* the fixed **general** evaluation set (held-out transcripts plus configured dev data): the candidate must not
  get worse beyond noise. Each metric compares the two models pair by pair and carries a paired bootstrap
  confidence interval; a check fails only when the loss is larger than its margin *and* the interval says it
  is not noise.
* the held-out **agent corrections** (split by conversation, never trained on): the candidate must be closer
  to what agents wrote than the active model (mean sentence chrF against the agent's text, interval above
  zero). Fewer than ``min_corrections`` of them is its own verdict, "not enough evidence": the candidate
  stays registered and an admin can still promote it by hand.

One more check guards the general set against what was taught: a fine-tune that weighs corrections up can
start giving a taught answer to questions that have nothing to do with it. A general reply "gives a taught
answer" when its sentence chrF against one of the trained corrections' texts is at least ``TAUGHT_MATCH`` and
the reference's is not; the candidate fails when it does so more often than the active model by more than
``Margins.taught_answers`` (a share of the general replies) and the interval says it is not noise.

``decide`` is a pure function of the two score dicts, so the rules are tested without models.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.sources import Pair

PROMOTE, REJECT, NOT_ENOUGH = "promote", "reject", "not enough evidence"
TAUGHT_MATCH = 60.0  # sentence chrF at which a reply counts as giving a taught answer (benchmarks/learning.py's)
Verdict = Literal["promote", "reject", "not enough evidence"]


@dataclass(frozen=True)
class Margins:
    chrf: float = 1.0  # mean sentence chrF points the candidate may lose on the general set
    perplexity: float = 0.05  # relative perplexity increase allowed
    entity_copy_recall: float = 0.02  # absolute recall drop allowed
    min_corrections: int = 2  # held-out corrections needed to judge learning
    confidence: float = 0.95
    resamples: int = 1000
    taught_answers: float = 0.02  # share of general replies that may newly be a taught answer

    @classmethod
    def from_settings(cls, settings: Any) -> Margins:
        return cls(settings.gate_chrf_margin, settings.gate_perplexity_margin, settings.gate_entity_margin,
                   settings.gate_min_corrections, settings.gate_confidence, settings.gate_resamples,
                   settings.gate_taught_answers_margin)


@dataclass
class GateDecision:
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)  # why it was not promoted (empty when promoted)
    checks: list[dict[str, Any]] = field(default_factory=list)  # every comparison made, with its interval
    candidate: dict[str, Any] = field(default_factory=dict)
    active: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict == PROMOTE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accepted": self.accepted}


def paired_bootstrap(new: Sequence[float], old: Sequence[float], *, resamples: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``new[i] - old[i]`` and its percentile bootstrap interval.

    Resampling pairs (not the two lists apart) keeps what both models share about each example out of the
    noise, so an interval narrower than the raw spread is a fair one. Seeded: the same inputs give the same
    interval on every run."""
    if len(new) != len(old) or not new:
        raise ValueError("paired bootstrap needs two equally long, non-empty lists")
    diffs = [a - b for a, b in zip(new, old)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[min(resamples - 1, int(math.floor(tail * resamples)))]
    high = means[min(resamples - 1, int(math.ceil((1 - tail) * resamples)) - 1)]
    return sum(diffs) / n, low, high


def decide(candidate: dict[str, Any], active: dict[str, Any] | None, margins: Margins) -> GateDecision:
    """Compare two ``score_model`` dicts; ``active`` None (nothing serves yet) needs a complete evaluation only."""
    decision = GateDecision(PROMOTE, candidate=_summary(candidate), active=_summary(active) if active else None)
    for key in ("chrf", "perplexity"):
        if candidate.get(key) is None:
            decision.verdict = REJECT
            decision.reasons.append(f"candidate has no {key} (empty or failed evaluation)")
    if active is None or decision.verdict == REJECT:
        return decision

    def fail(reason: str) -> None:
        decision.verdict = REJECT
        decision.reasons.append(reason)

    boot = {"resamples": margins.resamples, "confidence": margins.confidence}
    # general suite, chrF: worse than the margin and the interval wholly below zero
    new_chrf, old_chrf = candidate.get("sentence_chrf") or [], active.get("sentence_chrf") or []
    if new_chrf and len(new_chrf) == len(old_chrf):
        mean, low, high = paired_bootstrap(new_chrf, old_chrf, **boot)
        ok = not (mean < -margins.chrf and high < 0)
        decision.checks.append({"suite": "general", "metric": "chrf", "candidate": candidate["chrf"],
                                "active": active.get("chrf"), "mean_difference": mean, "interval": [low, high],
                                "margin": -margins.chrf, "n": len(new_chrf), "passed": ok})
        if not ok:
            fail(f"chrf: {mean:+.2f} points per reply against the active model ({_pct(margins)} interval "
                 f"{low:+.2f} to {high:+.2f}), beyond the margin of {margins.chrf:.2f} and beyond noise")
    # general suite, perplexity: the token-level NLL difference, as a perplexity ratio
    new_nll, old_nll = candidate.get("pair_nll") or [], active.get("pair_nll") or []
    if new_nll and len(new_nll) == len(old_nll):
        tokens = [t for _, t in new_nll]
        scale = len(tokens) / max(sum(tokens), 1)  # per-pair sums -> the mean per token of the resample
        mean, low, high = paired_bootstrap([n * scale for n, _ in new_nll], [n * scale for n, _ in old_nll], **boot)
        ratio, ratio_low, ratio_high = math.exp(mean), math.exp(low), math.exp(high)
        ok = not (ratio > 1 + margins.perplexity and ratio_low > 1)
        decision.checks.append({"suite": "general", "metric": "perplexity", "candidate": candidate["perplexity"],
                                "active": active.get("perplexity"), "ratio": ratio,
                                "interval": [ratio_low, ratio_high], "margin": 1 + margins.perplexity,
                                "n": len(new_nll), "passed": ok})
        if not ok:
            fail(f"perplexity {candidate['perplexity']:.4g} vs {active.get('perplexity'):.4g}: x{ratio:.3f} "
                 f"({_pct(margins)} interval x{ratio_low:.3f} to x{ratio_high:.3f}), beyond the margin of "
                 f"x{1 + margins.perplexity:.3f} and beyond noise")
    ecr_new, ecr_old = candidate.get("entity_copy_recall"), active.get("entity_copy_recall")
    new_ent, old_ent = candidate.get("pair_entities") or [], active.get("pair_entities") or []
    copyable = sum(t for _, t in new_ent)
    if ecr_new is not None and ecr_old is not None and copyable and len(new_ent) == len(old_ent):
        # a recall over a few dozen entities moves by 0.025 when one name is missed: the same noise test as
        # chrF, on per-pair copied counts scaled so that a resample's mean is its recall
        scale = len(new_ent) / copyable
        mean, low, high = (round(x, 9) for x in paired_bootstrap(  # rounded: sums of scaled counts leave 1e-18s
            [c * scale for c, _ in new_ent], [c * scale for c, _ in old_ent], **boot))
        ok = not (mean < -margins.entity_copy_recall and high < 0)
        decision.checks.append({"suite": "general", "metric": "entity_copy_recall", "candidate": ecr_new,
                                "active": ecr_old, "mean_difference": mean, "interval": [low, high],
                                "margin": -margins.entity_copy_recall, "n": copyable, "passed": ok})
        if not ok:
            fail(f"entity_copy_recall {ecr_new:.3f} vs {ecr_old:.3f} over {copyable} entities: {mean:+.3f} "
                 f"({_pct(margins)} interval {low:+.3f} to {high:+.3f}), beyond the margin of "
                 f"{margins.entity_copy_recall:.3f} and beyond noise")
    elif ecr_new is not None and ecr_old is not None:  # scores without per-pair counts (older registry rows)
        ok = ecr_new >= ecr_old - margins.entity_copy_recall
        decision.checks.append({"suite": "general", "metric": "entity_copy_recall", "candidate": ecr_new,
                                "active": ecr_old, "margin": -margins.entity_copy_recall, "passed": ok})
        if not ok:
            fail(f"entity_copy_recall {ecr_new:.3f} is below the active model's {ecr_old:.3f} by more than "
                 f"{margins.entity_copy_recall:.3f}")
    _taught_answers(decision, candidate, active, margins, boot)
    _corrections(decision, candidate, active, margins, boot)
    return decision


def _taught_answers(decision: GateDecision, candidate: dict[str, Any], active: dict[str, Any], margins: Margins,
                    boot: dict[str, Any]) -> None:
    """The leak check: taught answers must not spread to general questions (``taught_flags``)."""
    new, old = candidate.get("taught_flags"), active.get("taught_flags")
    if not new or not old or len(new) != len(old):
        return
    mean, low, high = paired_bootstrap(new, old, **boot)
    ok = not (mean > margins.taught_answers and low > 0)
    decision.checks.append({"suite": "general", "metric": "taught_answer_share", "candidate": sum(new) / len(new),
                            "active": sum(old) / len(old), "mean_difference": mean, "interval": [low, high],
                            "margin": margins.taught_answers, "n": len(new), "passed": ok})
    if not ok:
        decision.verdict = REJECT
        decision.reasons.append(
            f"gives taught answers to general questions: {sum(new) / len(new):.1%} of replies vs the active "
            f"model's {sum(old) / len(old):.1%} ({_pct(margins)} interval {low:+.1%} to {high:+.1%}), beyond the "
            f"margin of {margins.taught_answers:.1%} and beyond noise")


def taught_flags(replies: Sequence[str], references: Sequence[str], taught: Sequence[str]) -> list[float]:
    """Per general pair, 1.0 when the reply gives one of the ``taught`` answers that its reference does not."""
    from training.metrics import chrf

    answers = sorted(set(taught))

    def gives(text: str) -> set[str]:
        return {a for a in answers if chrf([text], [a]) >= TAUGHT_MATCH}

    return [1.0 if gives(reply) - gives(reference) else 0.0 for reply, reference in zip(replies, references)]


def _corrections(decision: GateDecision, candidate: dict[str, Any], active: dict[str, Any], margins: Margins,
                 boot: dict[str, Any]) -> None:
    """The learning check: closer to what agents wrote on corrections it never saw."""
    new, old = candidate.get("correction_chrf") or [], active.get("correction_chrf") or []
    trained = int(candidate.get("corrections_trained") or 0)
    if not new and not trained:
        decision.checks.append({"suite": "corrections", "metric": "chrf", "n": 0, "skipped": True,
                                "note": "no agent corrections in this training set"})
        return
    if len(new) < margins.min_corrections or len(new) != len(old):
        decision.checks.append({"suite": "corrections", "metric": "chrf", "n": len(new),
                                "needed": margins.min_corrections, "passed": None})
        if decision.verdict == PROMOTE:
            decision.verdict = NOT_ENOUGH
        decision.reasons.append(f"not enough evidence: {len(new)} held-out agent correction(s), the gate needs "
                                f"{margins.min_corrections} to tell whether the candidate learned them")
        return
    mean, low, high = paired_bootstrap(new, old, **boot)
    ok = mean > 0 and low > 0
    decision.checks.append({"suite": "corrections", "metric": "chrf", "candidate": sum(new) / len(new),
                            "active": sum(old) / len(old), "mean_difference": mean, "interval": [low, high],
                            "n": len(new), "passed": ok})
    if not ok:
        decision.verdict = REJECT
        decision.reasons.append(f"not closer to what agents wrote: {mean:+.2f} chrF per held-out correction "
                                f"({_pct(margins)} interval {low:+.2f} to {high:+.2f}, n={len(new)})")


def _pct(margins: Margins) -> str:
    return f"{margins.confidence:.0%}"


def _summary(scores: dict[str, Any]) -> dict[str, Any]:
    """The score dict without its per-pair lists (those are for the intervals, not for the registry)."""
    return {k: v for k, v in scores.items() if k not in ("sentence_chrf", "pair_nll", "pair_entities",
                                                         "correction_chrf", "correction_rows", "taught_flags")}


def score_model(model_dir: Path, eval_pairs: Sequence[Pair], correction_pairs: Sequence[Pair], settings: Any,
                progress: bool = False, taught: Sequence[str] = ()) -> dict[str, Any]:
    """Serving-path metrics on the general set with per-pair sentence chrF and NLL, and sentence chrF of each
    held-out correction against the agent's text (with the replies, for the report)."""
    from training.evaluate import evaluate_model
    from training.metrics import chrf

    report = evaluate_model(model_dir, eval_pairs, settings, progress=progress)
    result = dict(report.metrics)
    result["sentence_chrf"] = [chrf([r["hypothesis"]], [r["reference"]]) for r in report.rows]
    result["pair_nll"] = [(float(r["nll"]), int(r["tokens"])) for r in report.rows]
    result["pair_entities"] = [(int(r["entities_copied"]), int(r["entities_copyable"])) for r in report.rows]
    if taught:
        result["taught_flags"] = taught_flags([r["hypothesis"] for r in report.rows],
                                              [r["reference"] for r in report.rows], taught)
    if correction_pairs:
        rows = evaluate_model(model_dir, correction_pairs, settings, progress=progress).rows
        result["correction_chrf"] = [chrf([r["hypothesis"]], [r["reference"]]) for r in rows]
        # conversation_id: erasure finds the customer's rows in reports and the registry (store/files.py)
        result["correction_rows"] = [{"customer": p.context[-1][1] if p.context else "", "agent": r["reference"],
                                      "reply": r["hypothesis"], "conversation_id": p.meta.get("conversation_id")}
                                     for p, r in zip(correction_pairs, rows)]
    return result


def run_gate(candidate_dir: Path, active_dir: Path | None, eval_pairs: Sequence[Pair],
             correction_pairs: Sequence[Pair], settings: Any, progress: bool = False,
             corrections_trained: int = 0, taught: Sequence[str] = ()) -> GateDecision:
    """Score both models on the same pairs and decide; the decision keeps each held-out correction's replies.
    ``taught``: the texts of the corrections trained on, for the leak check."""
    if not eval_pairs:
        raise ValueError("the promotion gate needs a non-empty evaluation set")
    new = score_model(candidate_dir, eval_pairs, correction_pairs, settings, progress, taught)
    new["corrections_trained"] = corrections_trained
    old = score_model(active_dir, eval_pairs, correction_pairs, settings, progress, taught) if active_dir else None
    decision = decide(new, old, Margins.from_settings(settings))
    if correction_pairs:
        decision.candidate["corrections"] = [
            {**row, "active_reply": old_row["reply"] if old else None, "candidate_chrf": c,
             "active_chrf": o if old else None}
            for row, old_row, c, o in zip(new["correction_rows"], (old or new)["correction_rows"],
                                          new["correction_chrf"], (old or new)["correction_chrf"])]
    return decision
