"""Decoding in a child process: the same replies as in-process, errors that name the cause, a dead child
replaced, and hot reload that stops the replaced child."""

from __future__ import annotations

import os
import signal
import time

import pytest

from chatbot.service.batching import GenerationWorker
from chatbot.service.decoder_process import DecoderProcessError, ProcessGenerator
from chatbot.service.models import ModelRef, load_generator, load_served
from chatbot.settings import load_settings

from .tiny import TINY_DECODING

CONTEXTS = [[("customer", "where is my order")], [("customer", "hello"), ("bot", "hello"), ("customer", "refund")]]


@pytest.fixture
def tiny_settings(tmp_path):
    return load_settings(data_dir=tmp_path / "data", **TINY_DECODING)


def _texts(replies):
    return [(r.text, [c.text for c in r.candidates], r.attention) for r in replies]


def test_child_replies_equal_in_process_replies_and_bad_input_keeps_it_alive(tiny_models, tiny_settings):
    generator = load_served(ModelRef(None, str(tiny_models.first)), tiny_settings)
    assert isinstance(generator, ProcessGenerator)  # decode_process is on by default
    try:
        local = load_generator(ModelRef(None, str(tiny_models.first)), tiny_settings)
        assert _texts(generator.generate(CONTEXTS)) == _texts(local.generate(CONTEXTS))
        with pytest.raises(ValueError, match="context 0 has no turns"):
            generator.generate([[]])
        pid = generator.pid
        assert _texts(generator.generate(CONTEXTS[:1])) == _texts(local.generate(CONTEXTS[:1]))
        assert generator.pid == pid  # a bad batch does not cost the child
    finally:
        generator.close()
    assert generator.pid is None


def test_a_killed_child_is_replaced_for_the_next_batch(tiny_models, tiny_settings):
    generator = ProcessGenerator(str(tiny_models.first), tiny_settings)
    try:
        before = generator.generate(CONTEXTS)
        old = generator.pid
        os.kill(old, signal.SIGKILL)
        generator._children[0].process.join(10)  # wait until it is really gone
        assert _texts(generator.generate(CONTEXTS)) == _texts(before)
        assert generator.pid not in (None, old)
    finally:
        generator.close()


def test_a_model_the_child_cannot_load_is_a_clear_error(tmp_path, tiny_settings):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(DecoderProcessError, match="could not load .*broken"):
        ProcessGenerator(str(tmp_path / "broken"), tiny_settings)


def test_hot_reload_starts_a_new_child_and_stops_the_old(tiny_models, tiny_settings):
    active = {"ref": ModelRef(None, str(tiny_models.first))}
    worker = GenerationWorker(lambda ref: load_served(ref, tiny_settings), lambda: active["ref"], reload_poll_s=0.02)
    with worker:
        first = worker.generate(CONTEXTS[0], timeout=30)
        old_child = worker._model[1]
        old_pid = old_child.pid
        active["ref"] = ModelRef(None, str(tiny_models.second))
        deadline = time.monotonic() + 60
        while worker.model_key != active["ref"] and time.monotonic() < deadline:
            worker.generate(CONTEXTS[0], timeout=30)
        second = worker.generate(CONTEXTS[0], timeout=30)
        assert first.model_key.path == str(tiny_models.first) and second.model_key.path == str(tiny_models.second)
        assert old_child.pid is None  # closed by the swap
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
        live = worker._model[1]
    assert live.pid is None  # the worker's stop closes the serving child too


def test_a_pool_decodes_concurrent_batches_on_children_of_its_own(tiny_models, tiny_settings):
    from concurrent.futures import ThreadPoolExecutor

    generator = ProcessGenerator(str(tiny_models.first), tiny_settings, processes=2)
    try:
        pids = generator.pids
        assert len(set(pids)) == 2
        local = load_generator(ModelRef(None, str(tiny_models.first)), tiny_settings)
        expected = _texts(local.generate(CONTEXTS))
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: _texts(generator.generate(CONTEXTS)), range(8)))
        assert results == [expected] * 8
        os.kill(pids[1], signal.SIGKILL)  # one child dies: the pool replaces it and keeps answering
        generator._children[1].process.join(10)
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(lambda _: _texts(generator.generate(CONTEXTS)), range(4))) == [expected] * 4
        assert len(set(generator.pids)) == 2 and pids[1] not in generator.pids
    finally:
        generator.close()
    assert generator.pids == []
    with pytest.raises(DecoderProcessError, match="stopped"):
        generator.generate(CONTEXTS)
