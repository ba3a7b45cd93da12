"""The generation worker: batches form under load, busy when full, hot reload without dropping replies."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatbot.service.batching import Busy, GenerationWorker, NoModel

from .scripted import ScriptedReplies


def test_concurrent_requests_are_decoded_together():
    model = ScriptedReplies()
    model.gate.clear()
    with GenerationWorker(lambda key: model, lambda: "m1", max_batch=8, max_wait_ms=20) as worker:
        first = worker.submit([("customer", "first")])
        assert model.started.wait(5)
        futures = [worker.submit([("customer", f"q{i}")]) for i in range(8)]
        model.gate.set()
        assert first.result(5).reply.text == "re: first"
        assert [f.result(5).reply.text for f in futures] == [f"re: q{i}" for i in range(8)]
    assert model.batch_sizes == [1, 8]


def test_batching_off_decodes_one_at_a_time():
    model = ScriptedReplies()
    with GenerationWorker(lambda key: model, lambda: "m1", max_batch=1) as worker, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: worker.generate([("customer", str(i))]), range(6)))
    assert model.batch_sizes == [1] * 6


def test_full_queue_is_busy_not_a_hang():
    model = ScriptedReplies()
    model.gate.clear()
    with GenerationWorker(lambda key: model, lambda: "m1", max_batch=1, queue_max=2) as worker:
        worker.submit([("customer", "held")])
        assert model.started.wait(5)
        waiting = [worker.submit([("customer", "w")]) for _ in range(2)]
        start = time.monotonic()
        with pytest.raises(Busy):
            worker.submit([("customer", "one too many")])
        assert time.monotonic() - start < 0.5
        model.gate.set()
        assert all(f.result(5).reply.text == "re: w" for f in waiting)


def test_no_model_is_a_clear_error():
    with GenerationWorker(lambda key: ScriptedReplies(), lambda: None, reload_poll_s=0.05) as worker, \
            pytest.raises(NoModel):
        worker.generate([("customer", "hi")], timeout=5)


def test_hot_reload_under_load_keeps_every_reply():
    models = {"v1": ScriptedReplies(score=-1.0), "v2": ScriptedReplies(score=-0.1)}
    active = {"key": "v1"}
    loads = []

    def load(key):
        loads.append(key)
        return models[key]

    worker = GenerationWorker(load, lambda: active["key"], max_batch=4, max_wait_ms=2, reload_poll_s=0.02)
    results, errors = [], []
    stop = threading.Event()

    def customer(i):
        while not stop.is_set():
            try:
                results.append(worker.generate([("customer", f"c{i}")], timeout=5))
            except Exception as exc:  # noqa: BLE001 - any failure is a test failure
                errors.append(exc)

    with worker:
        threads = [threading.Thread(target=customer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        active["key"] = "v2"
        deadline = time.monotonic() + 5
        while worker.model_key != "v2" and time.monotonic() < deadline:
            time.sleep(0.01)
        # one worker thread: the swap happens between batches, so v1 can never decode after this point
        v1_batches = len(models["v1"].batch_sizes)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(5)
    assert errors == []
    assert loads == ["v1", "v2"]
    assert len(models["v1"].batch_sizes) == v1_batches  # after the swap only v2 decodes
    assert len(models["v2"].batch_sizes) > 0
    # every request got exactly one reply: nothing dropped in the swap
    assert len(results) == sum(models["v1"].batch_sizes) + sum(models["v2"].batch_sizes)
    assert all(r.reply.confidence == (-1.0 if r.model_key == "v1" else -0.1) for r in results)


def test_a_broken_new_model_keeps_the_old_one_serving():
    model = ScriptedReplies()
    active = {"key": "good"}

    def load(key):
        if key == "broken":
            raise RuntimeError("corrupt checkpoint")
        return model

    with GenerationWorker(load, lambda: active["key"], reload_poll_s=0.02) as worker:
        active["key"] = "broken"
        time.sleep(0.1)
        assert worker.generate([("customer", "hi")], timeout=5).model_key == "good"


class _Closable(ScriptedReplies):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_replaced_model_is_closed_and_the_last_one_at_stop():
    models = {"v1": _Closable(), "v2": _Closable()}
    active = {"key": "v1"}
    with GenerationWorker(lambda key: models[key], lambda: active["key"], reload_poll_s=0.02) as worker:
        worker.generate([("customer", "hi")], timeout=5)
        active["key"] = "v2"
        deadline = time.monotonic() + 5
        while worker.model_key != "v2" and time.monotonic() < deadline:
            worker.generate([("customer", "hi")], timeout=5)
        assert worker.model_key == "v2"
        assert models["v1"].closed and not models["v2"].closed  # its decoder process would be stopped here
    assert models["v2"].closed


class _Concurrent(_Closable):
    """Counts the batches decoding at this moment; each one waits at the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.clear()
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.both = threading.Event()

    def generate(self, contexts, language=None):  # type: ignore[no-untyped-def]
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            if self.now == 2:
                self.both.set()
        try:
            return super().generate(contexts, language)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize("decoders", [1, 2])
def test_decoders_set_how_many_batches_decode_at_once(decoders):
    model = _Concurrent()
    with GenerationWorker(lambda key: model, lambda: "m1", max_batch=1, decoders=decoders) as worker:
        futures = [worker.submit([("customer", f"q{i}")]) for i in range(4)]
        assert model.both.wait(2) is (decoders == 2)  # a second batch starts while the first still decodes
        model.gate.set()
        assert [f.result(5).reply.text for f in futures] == [f"re: q{i}" for i in range(4)]
    assert model.most == decoders
    assert worker.batches == 4 and worker.batched_requests == 4


def test_with_two_decoders_a_replaced_model_finishes_its_batch_before_it_is_closed():
    models = {"v1": _Concurrent(), "v2": _Closable()}
    active = {"key": "v1"}
    with GenerationWorker(lambda key: models[key], lambda: active["key"], max_batch=1, decoders=2,
                          reload_poll_s=0.02) as worker:
        held = worker.submit([("customer", "decoding on v1")])
        assert models["v1"].started.wait(5)
        active["key"] = "v2"  # the idle batch thread swaps v2 in while v1 still decodes on the other
        deadline = time.monotonic() + 5
        while worker.model_key != "v2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.model_key == "v2"
        assert worker.generate([("customer", "new")], timeout=5).model_key == "v2"
        assert not models["v1"].closed  # its batch is still decoding
        models["v1"].gate.set()
        assert held.result(5).model_key == "v1"  # the in-flight reply is kept, from the model it started on
        deadline = time.monotonic() + 5
        while not models["v1"].closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert models["v1"].closed and not models["v2"].closed
    assert models["v2"].closed
