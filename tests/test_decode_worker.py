"""consumers.decode_worker: decoding in child processes equals decoding in this one."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.change import Source
from consumers.decode import DecodedBatch, decode_batch
from consumers.decode_worker import DecodeWorkers
from tests.consume_helpers import MAPPING, tag_event, user_event
from worker.envelope import encode_event, new_event


@pytest.fixture(scope="module")
def workers() -> Iterator[DecodeWorkers]:
    pool = DecodeWorkers(MAPPING, processes=2)
    yield pool
    pool.close()


def _message(kind: str, n: int) -> tuple[str, bytes | None]:
    """(topic suffix, value) of a message of some kind, good or poison."""
    if kind == "user":
        return "user", encode_event(user_event(f"u{n}", n))[1]
    if kind == "user-delete":
        return "user", encode_event(user_event(f"u{n}", n, op="delete"))[1]
    if kind == "tag":
        return "tag", encode_event(tag_event(f"t{n}", n))[1]
    if kind == "unconvertible":
        return "user", encode_event(user_event(f"b{n}", n, active=2))[1]
    if kind == "unknown-table":
        return "user", encode_event(new_event("ghost", "upsert", {"id": "x"}, {"id": "x"}))[1]
    if kind == "wrong-topic":
        return "user", encode_event(tag_event(f"t{n}", n))[1]
    if kind == "not-json":
        return "user", b"{oops"
    return "user", None  # a compaction tombstone


KINDS = st.sampled_from(
    [
        *("user", "user-delete", "tag", "tombstone"),
        *("unconvertible", "unknown-table", "wrong-topic", "not-json"),
    ]
)


def _sources(kinds: list[str]) -> list[Source]:
    sources = []
    for offset, kind in enumerate(kinds):
        table, value = _message(kind, offset)
        sources.append(Source(f"p.{table}", offset % 3, offset, b"k", value, 1000 + offset))
    return sources


def _shape(batch: DecodedBatch) -> tuple[Any, ...]:
    changes = [
        (c.table, c.op, c.key, c.row, c.version, c.ts_ms, c.source, c.version_values)
        for c in batch.changes
    ]
    return changes, [(d.source, d.reason) for d in batch.dead], batch.skipped


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(KINDS, max_size=30))
def test_child_processes_decode_like_this_one(workers: DecodeWorkers, kinds: list[str]) -> None:
    """Same changes (with the caller's Source objects), dead letters and reasons, in order."""
    sources = _sources(kinds)
    assert _shape(workers.decode(sources)) == _shape(decode_batch(sources, MAPPING))


def test_a_killed_child_loses_nothing(workers: DecodeWorkers) -> None:
    """A decode process killed between batches: the next batch is still decoded in full
    (here, in this process) and the restarted children decode the one after."""
    sources = _sources(["user", "not-json", "tag", "tombstone"] * 5)
    expected = _shape(decode_batch(sources, MAPPING))
    for pid in list(workers._pool._processes):  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
    assert _shape(workers.decode(sources)) == expected
    assert _shape(workers.decode(sources)) == expected
    assert all(p.is_alive() for p in workers._pool._processes.values())  # type: ignore[union-attr]
