"""Apply one batch in a background thread while the loop fetches and decodes the next one.

Why: decoding and converting a batch is CPU work in this process; applying it is mostly
waiting for MySQL (and the dead-letter acks). Run one beside the other and the wait is no
longer added to the CPU time (measured with ops/bench/bench_apply.py).

What must not change (consumers.loop): at most one batch is in flight (the sink may share
it among several MySQL connections, `consumers.lanes`, and returns when all are done),
and the loop waits for its outcome before it submits the next; a failed batch pauses the
loop (nothing more is submitted, nothing committed), a succeeded one has its offsets
committed. So batches reach MySQL in stream order, offsets are committed only after their
transaction and the dead-letter flush, and never after a failure, exactly as when
everything ran inline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from consumers.change import Change, DeadLetter, MessageRef
from consumers.dlq import DeadLetterProducer
from consumers.sink import ApplyResult
from worker.errors import ServiceError


class Sink(Protocol):
    """What applies a coalesced batch: `MySQLSink`, or `D1Sink` for the reverse pipeline."""

    def apply(self, changes: Sequence[Change]) -> ApplyResult: ...


@dataclass
class AppliedBatch:
    """A batch the MySQL transaction(s) and the dead-letter flush are done with."""

    sources: list[MessageRef]
    changes: list[Change]  # decoded, before coalescing (for metrics)
    result: ApplyResult
    dead: int  # dead letters produced: undecodable + refused by MySQL
    seconds: float  # apply + dead-letter flush


@dataclass
class FailedBatch:
    """MySQL stayed unavailable beyond the in-process retries: nothing of it is committed."""

    sources: list[MessageRef]
    error: ServiceError


@dataclass
class _Pending:
    sources: list[MessageRef]
    changes: list[Change]
    future: Future[tuple[ApplyResult, int, float]]


class BackgroundApplier:
    def __init__(self, sink: Sink, dlq: DeadLetterProducer) -> None:
        self.sink = sink
        self.dlq = dlq
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d1cdc-apply")
        self._pending: _Pending | None = None

    def submit(
        self,
        sources: list[MessageRef],
        changes: list[Change],
        coalesced: list[Change],
        dead: list[DeadLetter],
    ) -> None:
        """Start applying a batch; the previous one must have been taken (`wait`)."""
        if self._pending is not None:
            raise RuntimeError("a batch is still in flight; wait() for it first")
        future = self._executor.submit(self._apply, coalesced, dead)
        self._pending = _Pending(sources, changes, future)

    def busy(self) -> bool:
        """Is a batch still being applied (submitted, not finished)?"""
        return self._pending is not None and not self._pending.future.done()

    def wait(self) -> AppliedBatch | FailedBatch | None:
        """The outcome of the batch in flight (None if there is none); other errors raise."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            result, dead, seconds = pending.future.result()
        except ServiceError as exc:
            return FailedBatch(pending.sources, exc)
        return AppliedBatch(pending.sources, pending.changes, result, dead, seconds)

    def close(self) -> None:
        """Let a batch still running finish (its outcome is dropped: never committed)."""
        self._pending = None
        self._executor.shutdown(wait=True)

    def _apply(
        self, changes: list[Change], dead: list[DeadLetter]
    ) -> tuple[ApplyResult, int, float]:
        started = time.monotonic()
        result = self.sink.apply(changes)
        letters = dead + result.dead
        self.dlq.send(letters)
        self.dlq.flush()
        return result, len(letters), time.monotonic() - started
