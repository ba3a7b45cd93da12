"""What the admin page shows: versions, nightly job reports and the daily figures, admins only."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chatbot.service.admin import AdminService
from chatbot.service.auth import Forbidden
from chatbot.store import jobs


def _login(service, name, role):
    service.add_user(name, "password123", role)
    return service.login(name, "password123")


def test_versions_jobs_and_daily_figures(service):
    agent, admin = _login(service, "ana", "agent"), _login(service, "root", "admin")
    views = AdminService(service)
    assert [(v.name, v.status) for v in views.versions(agent)] == [("m2", "candidate"), ("m1", "active")]
    with service.store.transaction() as s:
        job, _ = jobs.acquire(s, "nightly", 600)
        jobs.finish(s, job.id, "failed", error="gate refused m2")
    assert [(j.status, j.error) for j in views.nightly_jobs(admin)] == [("failed", "gate refused m2")]

    handed, _ = service.start_conversation()
    service.send(handed, "let me speak to a person")
    for text, action, csat in (("hello", "approve", 5), ("where is my order", "edit", 2), ("thanks", "reject", None)):
        cid, _ = service.start_conversation()
        reply = service.send(cid, text).reply
        service.review(agent, reply.id, action, "Fixed." if action == "edit" else None)
        service.finish(cid, csat)
    today = datetime.now(timezone.utc).date().isoformat()
    assert views.daily(admin) == [{"day": today, "conversations": 4, "handoff_rate": 0.25, "approval_rate": 1 / 3,
                                   "edit_rate": 1 / 3, "csat": 3.5}]

    for admin_only in (views.nightly_jobs, views.daily):
        with pytest.raises(Forbidden):
            admin_only(agent)
