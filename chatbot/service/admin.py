"""Read-only figures for the admin page and the replay picker: model versions, nightly jobs, daily stats.

Kept apart from ``ChatService`` (which owns every write) so the web layer never opens a transaction or
touches ORM rows itself; everything comes back as plain frozen values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatbot.service.auth import Principal
from chatbot.service.chat import ChatService
from chatbot.service.dashboard import daily_stats
from chatbot.store import jobs, registry

NIGHTLY_KIND = "nightly"  # training.nightly.KIND; not imported so serving does not pull in training code


@dataclass(frozen=True)
class VersionView:
    id: int
    name: str
    status: str
    created_at: datetime
    promoted_at: datetime | None
    metrics: dict[str, Any]
    notes: str | None


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    report: dict[str, Any]
    error: str | None


class AdminService:
    """What ``/admin`` shows. Versions are visible to agents too (they pick one to replay with)."""

    def __init__(self, service: ChatService) -> None:
        self.store = service.store

    def versions(self, who: Principal) -> list[VersionView]:
        """Newest first."""
        who.require("agent", "admin")
        with self.store.transaction(read_only=True) as s:
            return [VersionView(v.id, v.name, v.status, v.created_at, v.promoted_at, dict(v.metrics or {}), v.notes)
                    for v in registry.list_versions(s)]

    def nightly_jobs(self, who: Principal, limit: int = 30) -> list[JobView]:
        """The latest nightly runs, newest first, with their reports or errors."""
        who.require("admin")
        with self.store.transaction(read_only=True) as s:
            return [JobView(j.id, j.kind, j.status, j.started_at, j.finished_at, dict(j.report or {}), j.error)
                    for j in jobs.list_jobs(s, NIGHTLY_KIND, limit)]

    def daily(self, who: Principal, days: int = 30) -> list[dict[str, Any]]:
        """See ``chatbot.service.dashboard.daily_stats``."""
        who.require("admin")
        with self.store.transaction(read_only=True) as s:
            return daily_stats(s, days)
