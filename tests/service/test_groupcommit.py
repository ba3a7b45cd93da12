"""Group commit on the real store: waiting writers share one transaction; one failing job stays alone."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from chatbot.service.groupcommit import GroupCommit, _Job
from chatbot.store import conversations as repo
from chatbot.store.db import InvalidMessage
from chatbot.store.models import Message


def test_waiting_jobs_share_a_transaction_and_a_failure_stays_in_its_savepoint(store):
    with store.transaction() as s:
        cid = repo.start_conversation(s).id
    writes = GroupCommit(store)
    held, release = threading.Event(), threading.Event()

    def first(s):
        held.set()
        assert release.wait(10)
        return repo.append_message(s, cid, "customer", "first").seq

    def bad(s):
        repo.append_message(s, cid, "customer", "written, then undone")
        repo.append_message(s, cid, "customer", "   ")  # refused: empty

    results, errors = {}, {}

    def call(name, fn):
        try:
            results[name] = writes.run(fn)
        except Exception as exc:  # noqa: BLE001 - collected, then checked per job
            errors[name] = exc

    leader = threading.Thread(target=call, args=("first", first))
    leader.start()
    assert held.wait(10)  # the leader holds the lock: everyone below queues behind it
    jobs = [("bad", bad)] + [(f"m{i}", lambda s, i=i: repo.append_message(s, cid, "customer", f"m{i}").seq)
                             for i in range(8)]
    threads = [threading.Thread(target=call, args=job) for job in jobs]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(writes._waiting) < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in [leader, *threads]:
        t.join(10)

    assert isinstance(errors.pop("bad"), InvalidMessage) and errors == {}
    assert (writes.groups, writes.jobs) == (2, 1 + len(jobs))  # the leader's own, then all the rest at once
    with store.transaction(read_only=True) as s:
        stored = [(m.seq, m.text) for m in s.scalars(select(Message).where(Message.conversation_id == cid)
                                                      .order_by(Message.seq))]
    assert stored[0] == (1, "first")
    assert sorted(text for _, text in stored[1:]) == [f"m{i}" for i in range(8)]  # nothing of "bad"
    assert results == {text: seq for seq, text in stored}


def test_a_job_error_reaches_its_caller(store):
    writes = GroupCommit(store)
    with pytest.raises(ZeroDivisionError):
        writes.run(lambda s: 1 / 0)
    assert writes.run(lambda s: 42) == 42


def test_many_writers_all_finish_in_shared_transactions(store):
    """Leadership passes from group to group: no caller is lost or woken before its job is committed."""
    with store.transaction() as s:
        cids = [repo.start_conversation(s).id for _ in range(4)]
    writes = GroupCommit(store)
    results: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        for n in range(25):
            try:
                text = f"w{w} n{n}"
                seq = writes.run(lambda s, text=text: repo.append_message(s, cids[w % 4], "customer", text).seq)
                results[(w, n)] = seq
            except BaseException as exc:  # noqa: BLE001 - collected and checked below
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 200
    assert writes.jobs == 200 and writes.groups < 200  # some groups held several jobs
    with store.transaction(read_only=True) as s:
        for i, cid in enumerate(cids):
            rows = s.execute(select(Message.seq, Message.text).where(Message.conversation_id == cid)).all()
            assert sorted(seq for seq, _ in rows) == list(range(1, 51))  # no gap, no duplicate
            for seq, text in rows:
                w, n = (int(part[1:]) for part in text.split())
                assert w % 4 == i and results[(w, n)] == seq  # each caller got its own job's result


def _savepoints(store) -> list[str]:
    from sqlalchemy import event

    seen: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.upper().startswith("SAVEPOINT"):
            seen.append(statement)

    return seen


def test_a_group_without_failures_runs_without_savepoints_and_a_failure_reruns_it_isolated(store):
    with store.transaction() as s:
        cid = repo.start_conversation(s).id
    writes = GroupCommit(store)
    savepoints = _savepoints(store)
    runs: dict[str, int] = {}

    def job(name, text):
        def fn(s):
            runs[name] = runs.get(name, 0) + 1
            return repo.append_message(s, cid, "customer", text).seq
        return fn

    assert writes._commit_together([j := _Job(job("a", "a"))]) and j.result == 1
    group = [_Job(job("b", "b")), _Job(job("c", "c"))]
    writes._commit(group)
    assert [g.result for g in group] == [2, 3] and savepoints == []  # the usual case: one plain transaction
    group = [_Job(job("d", "d")), _Job(job("empty", "  ")), _Job(job("e", "e"))]
    writes._commit(group)
    assert isinstance(group[1].error, InvalidMessage) and [group[0].result, group[2].result] == [4, 5]
    assert len(savepoints) >= 2  # run again, each job in a savepoint of its own (opened at its first statement)
    assert runs == {"a": 1, "b": 1, "c": 1, "d": 2, "empty": 2, "e": 1}  # "e" never ran in the failed attempt
    lone = _Job(job("lone", ""))
    writes._commit([lone])
    assert isinstance(lone.error, InvalidMessage) and runs["lone"] == 1  # alone: nothing to run again
    with store.transaction(read_only=True) as s:
        assert s.scalars(select(Message.text).where(Message.conversation_id == cid)
                         .order_by(Message.seq)).all() == ["a", "b", "c", "d", "e"]
