"""The whole path with a real (tiny, random-weight) checkpoint: worker -> ReplyGenerator -> store -> registry."""

from __future__ import annotations

import time

import pytest
import torch
from sqlalchemy import select

from chatbot.model.checkpoint import save_checkpoint
from chatbot.model.seq2seq import Seq2Seq, Seq2SeqConfig
from chatbot.service.batching import GenerationWorker
from chatbot.service.chat import ChatService
from chatbot.service.models import active_model, loader
from chatbot.settings import load_settings
from chatbot.store import registry
from chatbot.store.models import Message
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

WORDS = ["hello", "where", "is", "my", "order", "refund", "please", "thanks", "the", "parcel", "arrived", "late", "sorry", "we", "can", "help"]


def tiny_checkpoint(directory, seed: int):
    torch.manual_seed(seed)
    vocab = Vocab([*SPECIAL_TOKENS, *WORDS])
    model = Seq2Seq(Seq2SeqConfig(vocab_size=len(vocab), emb_dim=16, hidden=32, enc_layers=1, dropout=0.0)).eval()
    return save_checkpoint(directory, model, vocab)


@pytest.mark.slow
def test_real_model_replies_and_hot_reload_from_the_registry(store, tmp_path):
    torch.set_num_threads(1)
    settings = load_settings(data_dir=tmp_path / "data", database_url=store.url, quantize_int8=False,
                             num_beams=2, num_return_sequences=2, max_new_tokens=6, handoff_min_score=-1e9)
    first, second = tiny_checkpoint(tmp_path / "m1", 1), tiny_checkpoint(tmp_path / "m2", 2)
    with store.transaction() as s:
        v1 = registry.register(s, "m1", str(first)).id
        v2 = registry.register(s, "m2", str(second)).id
        registry.promote(s, v1)
    worker = GenerationWorker(loader(settings), lambda: active_model(store, settings), max_wait_ms=2,
                              reload_poll_s=0.05)
    service = ChatService(store, settings, worker)
    with worker:
        cid, _ = service.start_conversation("en")
        reply = service.send(cid, "hello where is my order").reply
        assert reply is not None and reply.model_version_id == v1
        with store.transaction() as s:
            registry.promote(s, v2)
        deadline = time.monotonic() + 10
        while getattr(worker.model_key, "version_id", None) != v2 and time.monotonic() < deadline:
            service.send(cid, "thanks")  # keep traffic flowing while the new model loads
        assert service.send(cid, "refund please").reply.model_version_id == v2
    with store.transaction(read_only=True) as s:
        bots = list(s.scalars(select(Message).where(Message.role == "bot").order_by(Message.seq)))
        assert len(bots[0].candidates) == 2
        assert "hello" in bots[0].attention["source_tokens"]
        assert len(bots[0].attention["weights"]) == len(bots[0].attention["target_tokens"])
