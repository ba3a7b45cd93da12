"""Promotion gate: a candidate replaces the active model only when it is measurably not worse.

Both models are scored on the same fixed evaluation set (held-out reviewed transcripts plus a dev
split). The candidate fails when it loses more than the configured margin on chrF, perplexity or
entity-copy recall, or when it fails the regression suite: replies agents approved, on which the
candidate's mean chrF must stay within the margin of the active model's. Without an active model
the candidate only has to produce a complete evaluation. ``decide`` is a pure function, so the rules
are tested without models; the caller records the outcome in the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.sources import Pair


@dataclass(frozen=True)
class Margins:
    chrf: float = 1.0  # chrF points the candidate may lose
    perplexity: float = 0.05  # relative perplexity increase allowed
    entity_copy_recall: float = 0.02  # absolute recall drop allowed
    regression_chrf: float = 2.0  # mean chrF points the candidate may lose on agent-approved replies

    @classmethod
    def from_settings(cls, settings: Any) -> Margins:
        return cls(settings.gate_chrf_margin, settings.gate_perplexity_margin, settings.gate_entity_margin,
                   settings.gate_regression_chrf_margin)


@dataclass
class GateDecision:
    accepted: bool
    reasons: list[str] = field(default_factory=list)  # why it was rejected (empty when accepted)
    checks: list[dict[str, Any]] = field(default_factory=list)  # every comparison made
    candidate: dict[str, Any] = field(default_factory=dict)
    active: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(candidate: dict[str, Any], active: dict[str, Any] | None, margins: Margins) -> GateDecision:
    """Compare metric dicts (eval keys plus ``regression_chrf`` when a regression suite exists)."""
    decision = GateDecision(True, candidate=candidate, active=active)
    for key in ("chrf", "perplexity"):
        if candidate.get(key) is None:
            decision.accepted = False
            decision.reasons.append(f"candidate has no {key} (empty or failed evaluation)")
    if active is None or not decision.accepted:
        return decision

    def check(name: str, new: float | None, old: float | None, limit: float | None, higher_is_better: bool) -> None:
        if new is None or old is None or limit is None:
            decision.checks.append({"metric": name, "candidate": new, "active": old, "skipped": True})
            return
        ok = new >= limit if higher_is_better else new <= limit
        decision.checks.append({"metric": name, "candidate": new, "active": old, "limit": limit, "passed": ok})
        if not ok:
            word = "below" if higher_is_better else "above"
            decision.reasons.append(f"{name} {new:.4g} is {word} the limit {limit:.4g} (active model: {old:.4g})")
            decision.accepted = False

    m = margins
    check("chrf", candidate["chrf"], active.get("chrf"),
          active["chrf"] - m.chrf if active.get("chrf") is not None else None, True)
    check("perplexity", candidate["perplexity"], active.get("perplexity"),
          active["perplexity"] * (1 + m.perplexity) if active.get("perplexity") is not None else None, False)
    ecr_new, ecr_old = candidate.get("entity_copy_recall"), active.get("entity_copy_recall")
    check("entity_copy_recall", ecr_new, ecr_old, ecr_old - m.entity_copy_recall if ecr_old is not None else None, True)
    reg_new, reg_old = candidate.get("regression_chrf"), active.get("regression_chrf")
    check("regression_chrf", reg_new, reg_old, reg_old - m.regression_chrf if reg_old is not None else None, True)
    return decision


def score_model(model_dir: Path, eval_pairs: Sequence[Pair], regression_pairs: Sequence[Pair], settings: Any,
                progress: bool = False) -> dict[str, Any]:
    """Eval metrics on the fixed set, plus mean sentence chrF on the regression suite."""
    from training.evaluate import evaluate_model
    from training.metrics import chrf

    result = evaluate_model(model_dir, eval_pairs, settings, progress=progress).metrics
    if regression_pairs:
        reg = evaluate_model(model_dir, regression_pairs, settings, progress=progress).rows
        result["regression_chrf"] = sum(chrf([r["hypothesis"]], [r["reference"]]) for r in reg) / len(reg)
        result["regression_n"] = len(reg)
    return result


def run_gate(candidate_dir: Path, active_dir: Path | None, eval_pairs: Sequence[Pair],
             regression_pairs: Sequence[Pair], settings: Any, progress: bool = False) -> GateDecision:
    if not eval_pairs:
        raise ValueError("the promotion gate needs a non-empty evaluation set")
    new = score_model(candidate_dir, eval_pairs, regression_pairs, settings, progress)
    old = score_model(active_dir, eval_pairs, regression_pairs, settings, progress) if active_dir else None
    return decide(new, old, Margins.from_settings(settings))
