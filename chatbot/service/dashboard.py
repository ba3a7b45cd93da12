"""Daily figures for the admin page: conversations, handoff rate, review outcomes and CSAT.

Computed from the tables the service already writes (conversations, the audit trail of status changes,
reviews), one query each (``chatbot.store.dashboard``), grouped by UTC day in Python so SQLite and
PostgreSQL agree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.orm import Session

from chatbot.store import dashboard as queries


def daily_stats(session: Session, days: int = 30, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per day (oldest first) with ``conversations``, ``handoff_rate``, ``approval_rate``,
    ``edit_rate`` and ``csat`` (mean, None without scores)."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    started: Counter[str] = Counter()
    csat: defaultdict[str, list[int]] = defaultdict(list)
    for created, score in queries.live_conversations_since(session, since):
        day = created.date().isoformat()
        started[day] += 1
        if score is not None:
            csat[day].append(score)
    handed: defaultdict[str, set[str]] = defaultdict(set)
    for created, target, details in queries.status_changes_since(session, since):
        if (details or {}).get("to") == "pending":
            handed[created.date().isoformat()].add(target)
    reviews: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for created, action in queries.reviews_since(session, since):
        reviews[created.date().isoformat()][action] += 1
    out = []
    for day in sorted(set(started) | set(handed) | set(reviews)):
        n_reviews = sum(reviews[day].values())
        out.append({
            "day": day,
            "conversations": started[day],
            "handoff_rate": len(handed[day]) / started[day] if started[day] else None,
            "approval_rate": reviews[day]["approve"] / n_reviews if n_reviews else None,
            "edit_rate": reviews[day]["edit"] / n_reviews if n_reviews else None,
            "csat": sum(csat[day]) / len(csat[day]) if csat[day] else None,
        })
    return out
