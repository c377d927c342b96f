"""Deliveries to another server are split to fit the backplane's limit."""

from __future__ import annotations

import json

from switchboard.chat.hub import PAYLOAD_BUDGET, _chunks


def test_large_batches_are_split_under_the_budget() -> None:
    entries = [(["c:1", "a:2"], json.dumps({"body": 'é"' * 2000})) for _ in range(200)]
    chunks = _chunks(entries, PAYLOAD_BUDGET)
    assert len(chunks) > 1
    assert [e for chunk in chunks for e in chunk] == entries
    for chunk in chunks:
        encoded = json.dumps({"d": chunk}, ensure_ascii=False).encode()
        assert len(encoded) <= PAYLOAD_BUDGET


def test_small_batches_stay_in_one_publish() -> None:
    entries = [(["c:1"], '{"type":"typing"}') for _ in range(10)]
    assert _chunks(entries, PAYLOAD_BUDGET) == [entries]
