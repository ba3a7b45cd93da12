"""Background job rows that double as a lock, so two nightly runs never overlap (never commits).

A job of a kind is "running" until it finishes. ``acquire`` refuses while another running job of the
same kind is alive, and takes over one whose process is gone: a heartbeat older than ``stale_after_s``,
or a process id on this host that no longer exists (a ``kill -9`` is detected at once). Acquisition is
serialised by the transaction: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import zlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from chatbot.store.db import NotFound, StoreError
from chatbot.store.models import Job, utcnow


class JobLocked(StoreError):
    """Another live job of the same kind holds the lock."""

    def __init__(self, job: Job) -> None:
        self.job_id = job.id
        owner = (job.report or {}).get("owner", {})
        super().__init__(
            f"another {job.kind} job is running (job {job.id}, started {job.started_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"pid {owner.get('pid', '?')} on {owner.get('host', '?')})"
        )


def _owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(job: Job, stale_after_s: float) -> bool:
    """True when the job's process is known dead or its heartbeat is too old."""
    owner = (job.report or {}).get("owner", {})
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        if not _process_alive(owner["pid"]):
            return True
    last = job.heartbeat_at or job.started_at
    return utcnow() - last > timedelta(seconds=stale_after_s)


def acquire(session: Session, kind: str, stale_after_s: float) -> tuple[Job, Job | None]:
    """Start a running job of ``kind``; returns it and the stale job it took over (to resume), if any.

    Commit right after, so other processes see the lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(kind.encode())})
    stale: Job | None = None
    for job in session.scalars(select(Job).where(Job.kind == kind, Job.status == "running").order_by(Job.id)):
        if not is_stale(job, stale_after_s):
            raise JobLocked(job)
        job.status = "failed"
        job.finished_at = utcnow()
        job.error = (job.error or "") + "stale lock: the process died or stopped sending heartbeats"
        stale = job
    job = Job(kind=kind, status="running", heartbeat_at=utcnow(), report={"owner": _owner()})
    session.add(job)
    session.flush()
    return job, stale


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def heartbeat(session: Session, job_id: int, progress: dict[str, Any] | None = None) -> Job:
    """Refresh the lock; ``progress`` is merged into the report (what a resumed run needs)."""
    job = get_job(session, job_id)
    job.heartbeat_at = utcnow()
    if progress:
        job.report = {**(job.report or {}), **progress}
    return job


def finish(session: Session, job_id: int, status: str, report: dict[str, Any] | None = None,
           error: str | None = None) -> Job:
    if status not in ("succeeded", "failed", "skipped"):
        raise ValueError(f"a job finishes as succeeded, failed or skipped, not {status!r}")
    job = get_job(session, job_id)
    job.status = status
    job.finished_at = utcnow()
    job.heartbeat_at = job.finished_at
    if report is not None:
        job.report = {**(job.report or {}), **report}
    job.error = error
    return job


def last_succeeded(session: Session, kind: str) -> Job | None:
    return session.scalars(
        select(Job).where(Job.kind == kind, Job.status == "succeeded").order_by(Job.started_at.desc(), Job.id.desc())
    ).first()


def list_jobs(session: Session, kind: str, limit: int = 20) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id.desc()).limit(limit)))
