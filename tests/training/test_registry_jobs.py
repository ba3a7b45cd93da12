"""Model registry and job lock on real databases (SQLite file and the PostgreSQL server)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from chatbot.store import jobs, registry
from chatbot.store.db import IllegalTransition, NotFound, make_engine, make_session_factory, upgrade
from chatbot.store.models import AuditLog, Job, utcnow

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reg.db'}"
        engine = make_engine(url)
        upgrade(engine)
        yield make_session_factory(engine)
        engine.dispose()
        return
    name = f"chatbot_training_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here: the SQLite run still covers the logic
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        upgrade(engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_promote_retires_previous_and_rollback_walks_back(sessions):
    with sessions.begin() as s:
        a = registry.register(s, "a", "/models/a").id
        b = registry.register(s, "b", "/models/b").id
        c = registry.register(s, "c", "/models/c").id
    for v in (a, b, c):
        with sessions.begin() as s:
            registry.promote(s, v)
    with sessions.begin() as s:
        assert registry.active_version(s).id == c
        assert [v.status for v in registry.list_versions(s)] == ["active", "retired", "retired"]
    with sessions.begin() as s:
        assert registry.rollback(s).id == b
    with sessions.begin() as s:
        assert registry.rollback(s).id == a
    with sessions.begin() as s, pytest.raises(IllegalTransition, match="no earlier model version"):
        registry.rollback(s)
    with sessions.begin() as s:
        assert registry.active_version(s).id == a
        assert s.query(AuditLog).filter(AuditLog.action.like("model.%")).count() == 5


def test_rejected_models_cannot_be_promoted_and_errors_are_clear(sessions):
    with sessions.begin() as s:
        v = registry.register(s, "bad", "/models/bad").id
        registry.reject(s, v, ["chrf 10 is below the limit 20"])
    with sessions.begin() as s, pytest.raises(IllegalTransition, match="rejected by the promotion gate: chrf"):
        registry.promote(s, v)
    with sessions.begin() as s, pytest.raises(IllegalTransition, match="no active model"):
        registry.rollback(s)
    with sessions.begin() as s, pytest.raises(NotFound):
        registry.promote(s, 999)
    with sessions.begin() as s, pytest.raises(IllegalTransition, match="already registered"):
        registry.register(s, "bad", "/elsewhere")


def test_job_lock_refuses_live_job_and_takes_over_dead_one(sessions):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with sessions.begin() as s:
            first, stale = jobs.acquire(s, "nightly", stale_after_s=600)
            assert stale is None
            first.report = {"owner": {"pid": sleeper.pid, "host": first.report["owner"]["host"]}, "workdir": "/w"}
        with sessions.begin() as s, pytest.raises(jobs.JobLocked, match="another nightly job is running"):
            jobs.acquire(s, "nightly", stale_after_s=600)
    finally:
        sleeper.kill()
        sleeper.wait()
    with sessions.begin() as s:  # owner process is gone: stale at once, its progress handed over
        second, stale = jobs.acquire(s, "nightly", stale_after_s=600)
        assert stale is not None and stale.report["workdir"] == "/w"
    with sessions.begin() as s:
        assert s.get(Job, stale.id).status == "failed"
        jobs.finish(s, second.id, "succeeded", {"decision": "promoted"})
        assert jobs.last_succeeded(s, "nightly").id == second.id


def test_job_with_old_heartbeat_is_stale(sessions):
    with sessions.begin() as s:
        job = Job(kind="nightly", status="running", heartbeat_at=utcnow() - timedelta(hours=2),
                  report={"owner": {"pid": 1, "host": "another-host"}})
        s.add(job)
    with sessions.begin() as s:
        assert jobs.acquire(s, "nightly", stale_after_s=600)[1] is not None
