"""Time-ordered ids: sorting outbox rows by id sorts them by creation."""

from __future__ import annotations

import time

from fastapi_server.lib.ids import uuid7


def test_ids_are_version_7_unique_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(20_000)]  # many share a millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {value.version for value in ids} == {7}


def test_ids_carry_their_creation_time() -> None:
    before_ms = time.time_ns() // 1_000_000
    value = uuid7()
    after_ms = time.time_ns() // 1_000_000
    assert before_ms <= value.int >> 80 <= after_ms + 1
