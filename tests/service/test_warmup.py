"""A hot-switched model is warmed before it takes traffic; the old one answers meanwhile.

Issue 18, item 6: the first reply after each model switch took 6-13 s (median 0.37 s) because the new
model met its first, slow decodes (tokenizers, int8 kernels, first operator dispatch in a fresh decoder
process) on a customer's request. Checked on observables, not timing: the worker's ``model_events``
(loaded -> warmed -> live), the warm-up decodes a model saw before its first customer request, and the
warm-up each decoder process reports with "ready".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.service.batching import GenerationWorker
from chatbot.service.decoder_process import ProcessGenerator
from chatbot.service.models import ModelRef, load_served
from chatbot.service.warmup import BATCH_SIZES, DEFAULT_LANGUAGES, contexts_for, warm_up
from chatbot.settings import load_settings
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

from .scripted import ScriptedReplies
from .tiny import TINY_DECODING, WORDS

CUSTOMER = [("customer", "where is my order")]


class _Recording(ScriptedReplies):
    """Remembers every call: (language, contexts)."""

    def __init__(self, score: float) -> None:
        super().__init__(score=score)
        self.calls: list[tuple[str | None, list]] = []

    def generate(self, contexts, language=None):  # type: ignore[no-untyped-def]
        self.calls.append((language, contexts))
        return super().generate(contexts, language)


def _kinds(worker, key):  # type: ignore[no-untyped-def]
    return [e.kind for e in worker.model_events if e.key == key]


def test_the_new_model_is_warmed_before_it_serves_and_the_old_one_answers_meanwhile():
    models = {"v1": _Recording(-1.0), "v2": _Recording(-0.1)}
    active = {"key": "v1"}
    models["v2"].gate.clear()  # hold v2's warm-up halfway through its first decode
    with GenerationWorker(lambda key: models[key], lambda: active["key"], reload_poll_s=0.02, max_wait_ms=1,
                          warm=warm_up) as worker:
        assert _kinds(worker, "v1") == ["loaded", "warmed", "live"]  # the first model is warmed at start too
        assert worker.generate(CUSTOMER, timeout=5).model_key == "v1"
        active["key"] = "v2"
        assert models["v2"].started.wait(5)  # v2 is loaded and warming
        for _ in range(5):  # customers keep getting answers, from the old model
            assert worker.generate(CUSTOMER, timeout=5).model_key == "v1"
        assert _kinds(worker, "v2") == ["loaded"] and worker.model_key == "v1"
        models["v2"].gate.set()
        deadline = time.monotonic() + 5
        first = worker.generate(CUSTOMER, timeout=5)
        while first.model_key != "v2" and time.monotonic() < deadline:
            first = worker.generate(CUSTOMER, timeout=5)
        assert first.model_key == "v2"
        assert _kinds(worker, "v2") == ["loaded", "warmed", "live"]
    warm_calls = [(lang, size) for lang in DEFAULT_LANGUAGES for size in BATCH_SIZES]
    # v2's first decodes were the whole warm-up (each language, alone and batched); customers came after it
    assert [(lang, len(ctx)) for lang, ctx in models["v2"].calls[:len(warm_calls)]] == warm_calls
    assert [ctx for _, ctx in models["v2"].calls[:2]] == [contexts_for("en", 1), contexts_for("en", 4)]
    assert all(ctx == [CUSTOMER] for _, ctx in models["v2"].calls[len(warm_calls):])
    warmed = next(e for e in worker.model_events if e.key == "v2" and e.kind == "warmed")
    assert (warmed.detail.decodes, warmed.detail.replies, warmed.detail.errors) == (4, 10, [])


def test_a_failing_warm_up_decode_is_reported_and_the_model_still_serves():
    class NoChinese(ScriptedReplies):
        def generate(self, contexts, language=None):  # type: ignore[no-untyped-def]
            if language == "zh":
                raise ValueError("jieba is not installed")
            return super().generate(contexts, language)

    with GenerationWorker(lambda key: NoChinese(), lambda: "m1", warm=warm_up) as worker:
        assert worker.generate(CUSTOMER, timeout=5).model_key == "m1"
    report = next(e.detail for e in worker.model_events if e.kind == "warmed")
    assert report.decodes == 2 and len(report.errors) == 2 and "jieba" in report.errors[0]


def _bilingual(directory: Path, seed: int) -> ModelRef:
    """A tiny checkpoint that serves English and Chinese, as the shipped model's training data does (the
    fixture's serve all five languages, and warming five tokenizers per process would cost the test minutes)."""
    torch.manual_seed(seed)
    vocab = Vocab([*SPECIAL_TOKENS, *WORDS])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    return ModelRef(None, str(save_checkpoint(directory, model, vocab, languages=("en", "zh"))))


@pytest.mark.slow
def test_hot_switch_with_decoder_processes_warms_every_child_before_the_switch(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", decoders=2, **{**TINY_DECODING, "model_warmup": True})
    first, second = _bilingual(tmp_path / "m1", 1), _bilingual(tmp_path / "m2", 2)
    active = {"ref": first}
    worker = GenerationWorker.from_settings(lambda ref: load_served(ref, settings), lambda: active["ref"], settings,
                                            reload_poll_s=0.02)
    with worker:
        assert worker.generate(CUSTOMER, timeout=30).model_key == first
        active["ref"] = second
        deadline = time.monotonic() + 120
        reply = worker.generate(CUSTOMER, timeout=30)
        while reply.model_key != second and time.monotonic() < deadline:
            reply = worker.generate(CUSTOMER, timeout=30)
        assert reply.model_key == second  # the first reply after the switch comes from the new model
        pool = worker._model[1]
        assert isinstance(pool, ProcessGenerator)
        events = [(e.kind, e.key) for e in worker.model_events]
        assert events.index(("warmed", second)) < events.index(("live", second))
        assert pool.warmed.languages == ("en", "zh")  # the languages the model serves
        per_child = 2 * len(BATCH_SIZES)
        # every decoder process warmed up, in every language, before it reported ready
        assert [c.warmup.decodes for c in pool._children] == [per_child, per_child]
        assert all(c.warmup.errors == [] for c in pool._children)
        warmed = next(e.detail for e in worker.model_events if e.kind == "warmed" and e.key == second)
        assert warmed.decodes == 2 * per_child
