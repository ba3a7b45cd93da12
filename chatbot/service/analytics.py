"""Correction analytics for ``/admin``: how agents judge each model version's replies, day by day; which
replies they correct most; how far their edits go; and what the last nightly job learned.

The queries live in ``chatbot.store.analytics``; this module turns rows into figures (rates, chrF,
normalised edit distance) and hands the web layer plain frozen values.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from chatbot.service.auth import Principal
from chatbot.service.chat import ChatService
from chatbot.service.similarity import edit_distance
from chatbot.store import analytics, jobs, registry

NIGHTLY_KIND = "nightly"  # training.nightly.KIND (serving does not import training code)
ACTIONS = ("approve", "edit", "reject")


@dataclass(frozen=True)
class DailyRates:
    day: str
    version: str  # "name (id)", or "no version" for replies of an unregistered model directory
    reviews: int
    approve_rate: float
    edit_rate: float
    reject_rate: float


@dataclass(frozen=True)
class EditDistance:
    version: str
    edits: int
    mean_distance: float  # normalised Levenshtein, 0..1


@dataclass(frozen=True)
class LearnedCorrection:
    customer: str
    agent: str
    active_reply: str | None
    candidate_reply: str
    active_chrf: float | None
    candidate_chrf: float
    learned: bool | None  # closer to what the agent wrote than the active model was (None: no active model)


@dataclass(frozen=True)
class NightlyLearned:
    job_id: int
    finished_at: datetime | None
    decision: str
    candidate_id: int | None
    corrections: list[LearnedCorrection]

    @property
    def learned(self) -> int:
        return sum(c.learned is True for c in self.corrections)


def version_label(names: dict[int, str], version_id: int | None) -> str:
    return "no version" if version_id is None else f"{names.get(version_id, '?')} ({version_id})"


def daily_rates(outcomes: list[analytics.ReviewOutcome], names: dict[int, str]) -> list[DailyRates]:
    """Approve / edit / reject shares of each version's reviews per UTC day, oldest first."""
    counts: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for created, version_id, action in outcomes:
        counts[(created.date().isoformat(), version_label(names, version_id))][action] += 1
    out = []
    for (day, version), c in sorted(counts.items()):
        n = sum(c.values())
        out.append(DailyRates(day, version, n, c["approve"] / n, c["edit"] / n, c["reject"] / n))
    return out


def edit_distances(edits: list[analytics.Edit], names: dict[int, str]) -> list[EditDistance]:
    """Mean normalised edit distance between the bot's reply and the agent's text, per version."""
    by_version: defaultdict[str, list[float]] = defaultdict(list)
    for version_id, original, corrected in edits:
        by_version[version_label(names, version_id)].append(edit_distance(original, corrected))
    return [EditDistance(v, len(d), sum(d) / len(d)) for v, d in sorted(by_version.items())]


def nightly_learned(job_id: int, finished_at: datetime | None, report: dict[str, Any]) -> NightlyLearned | None:
    """The held-out corrections table of a nightly report (``metrics.candidate.corrections``), if it has one."""
    rows = ((report.get("metrics") or {}).get("candidate") or {}).get("corrections") or []
    if not rows:
        return None
    corrections = []
    for r in rows:
        new, old = float(r.get("candidate_chrf") or 0.0), r.get("active_chrf")
        corrections.append(LearnedCorrection(
            str(r.get("customer", "")), str(r.get("agent", "")),
            None if r.get("active_reply") is None else str(r["active_reply"]), str(r.get("reply", "")),
            None if old is None else float(old), new, None if old is None else new > float(old)))
    return NightlyLearned(job_id, finished_at, str(report.get("decision", "")), report.get("candidate_id"),
                          corrections)


class AnalyticsService:
    """Read-only figures for admins; each call is one read transaction."""

    def __init__(self, service: ChatService) -> None:
        self.store = service.store

    def _names(self, s: Any) -> dict[int, str]:
        return {v.id: v.name for v in registry.list_versions(s)}

    def review_rates(self, who: Principal, days: int = 30, now: datetime | None = None) -> list[DailyRates]:
        who.require("admin")
        since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
        with self.store.transaction(read_only=True) as s:
            return daily_rates(analytics.review_outcomes(s, since), self._names(s))

    def most_corrected(self, who: Principal, days: int = 30, limit: int = 10) -> list[analytics.CorrectedReply]:
        who.require("admin")
        since = datetime.now(timezone.utc) - timedelta(days=days)
        with self.store.transaction(read_only=True) as s:
            return analytics.most_corrected(s, since, limit)

    def edit_distances(self, who: Principal, days: int = 30) -> list[EditDistance]:
        who.require("admin")
        since = datetime.now(timezone.utc) - timedelta(days=days)
        with self.store.transaction(read_only=True) as s:
            return edit_distances(analytics.edits(s, since), self._names(s))

    def last_nightly_learned(self, who: Principal, look_back: int = 20) -> NightlyLearned | None:
        """The newest nightly run whose report has held-out corrections (a skipped run has none)."""
        who.require("admin")
        with self.store.transaction(read_only=True) as s:
            for job in jobs.list_jobs(s, NIGHTLY_KIND, look_back):
                learned = nightly_learned(job.id, job.finished_at, dict(job.report or {}))
                if learned is not None:
                    return learned
        return None
