"""The real corpora in ../shared/data, read by the importers alone (no store): exact counts."""

from __future__ import annotations

import pytest

from tests.data.helpers import shared
from training.importers import BadRecord, get_importer


@pytest.mark.parametrize(("fmt", "relative", "conversations", "messages"), [
    ("sgd", "sgd/dev", 2098, 38768),
    ("taskmaster", "taskmaster4", 3500, 13129),
    ("abcd", "abcd/abcd_sample.json", 3, 72),
    ("crosswoz", "crosswoz/val.json.zip", 500, 8458),
])
def test_shared_corpus_counts(fmt: str, relative: str, conversations: int, messages: int) -> None:
    items = list(get_importer(fmt)(shared(relative), None))
    assert not [i for i in items if isinstance(i, BadRecord)]
    assert len(items) == conversations
    assert sum(len(r.messages) for r in items) == messages
    assert len({r.external_id for r in items}) == conversations


def test_sgd_spans_point_at_slot_values() -> None:
    records = get_importer("sgd")(shared("sgd/dev"), None)
    checked = 0
    for record in records:
        for message in record.messages:
            for span in message.meta.get("slots", []):
                assert 0 <= span["start"] < span["exclusive_end"] <= len(message.text)
                checked += 1
    assert checked > 10_000


def test_crosswoz_spans_point_at_informed_values() -> None:
    records = get_importer("crosswoz")(shared("crosswoz/val.json.zip"), None)
    checked = 0
    for record in records:
        assert record.language == "zh"
        for message in record.messages:
            for span in message.meta.get("slots", []):
                assert 0 <= span["start"] < span["exclusive_end"] <= len(message.text)
                checked += 1
    assert checked > 5_000
