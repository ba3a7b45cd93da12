"""Many writers at once: every message stored exactly once, numbered 1..N per conversation, in order."""

from __future__ import annotations

import threading
from collections import defaultdict

from sqlalchemy import select

from chatbot.store.models import Conversation, Message
from tests.shortcuts import ShortcutStore

THREADS, PER_THREAD, CONVERSATIONS = 50, 100, 5


def test_50_threads_x_100_messages_into_5_conversations(store: ShortcutStore) -> None:
    conv_ids = [store.start_conversation().id for _ in range(CONVERSATIONS)]
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                role = "customer" if i % 2 == 0 else "bot"
                store.append_message(conv_ids[(t + i) % CONVERSATIONS], role, f"{t}:{i}")
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    with store.transaction(read_only=True) as session:
        rows = session.execute(
            select(Message.conversation_id, Message.seq, Message.text).order_by(Message.conversation_id, Message.seq)
        ).all()
        last_seq = dict(session.execute(select(Conversation.id, Conversation.last_seq)).tuples().all())
    assert len(rows) == THREADS * PER_THREAD
    assert len({text for _, _, text in rows}) == THREADS * PER_THREAD  # each message exactly once

    seqs: dict[int, list[int]] = defaultdict(list)
    order_per_writer: dict[tuple[int, str], list[int]] = defaultdict(list)
    for conv_id, seq, text in rows:
        seqs[conv_id].append(seq)
        writer_id, i = text.split(":")
        order_per_writer[(conv_id, writer_id)].append(int(i))
    for conv_id in conv_ids:
        assert seqs[conv_id] == list(range(1, len(seqs[conv_id]) + 1))  # gap-free, no duplicates
        assert last_seq[conv_id] == len(seqs[conv_id])
    # One writer's messages to one conversation keep the order they were sent in.
    assert all(order == sorted(order) for order in order_per_writer.values())
