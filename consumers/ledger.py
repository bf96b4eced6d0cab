"""The offset ledger: which offsets are applied but not yet committed, and committing them
without ever blocking the loop.

Commits are asynchronous (`Consumer.commit(asynchronous=True)`); librdkafka reports each
outcome to `on_commit`, from inside the loop's own `consume()`. An offset stays pending
until the group acknowledges exactly it, so a failed commit (a rebalance in progress, the
broker gone) is simply sent again later, merged with newer offsets; while one is in flight
it is not sent again for `resend_after_s`. A synchronous commit would block the main
thread for as long as the coordinator is away, and with it SIGTERM (issue 11, defect 4).

`ceilings` hold a partition's commit below an event the loop still owes (a change held
back by a unique collision, `consumers.collisions`): a crash then redelivers it.
Released partitions (revoked or lost) are forgotten: their new owner starts from the
committed offset, and P1/P2 make whatever it applies again harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol

from confluent_kafka import KafkaError, TopicPartition

from consumers.change import MessageRef
from consumers.offsets import Partition, commit_offsets
from worker.logs import get_logger

log = get_logger(__name__)

RESEND_AFTER_S = 10.0


class Committer(Protocol):
    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[True]) -> object: ...

    def poll(self, timeout: float) -> object: ...


class OffsetLedger:
    def __init__(
        self,
        *,
        resend_after_s: float = RESEND_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resend_after_s = resend_after_s
        self._clock = clock
        self._pending: dict[Partition, int] = {}  # next offset to read, per partition
        self._in_flight: dict[Partition, tuple[int, float]] = {}  # (offset sent, when)
        self._acked: dict[Partition, int] = {}  # below a ceiling: acknowledged, not pending

    @property
    def pending(self) -> dict[Partition, int]:
        """Offsets applied and not yet acknowledged by the group (a copy)."""
        return dict(self._pending)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def applied(self, sources: Iterable[MessageRef]) -> None:
        """Record a batch whose transaction and dead letters are done."""
        for tp in commit_offsets(sources):
            key = (tp.topic, tp.partition)
            self._pending[key] = max(self._pending.get(key, -1), tp.offset)

    def commit(
        self, consumer: Committer, *, ceilings: Mapping[Partition, int] | None = None
    ) -> dict[str, int]:
        """Send what is pending (capped by `ceilings`) and not already on its way; returns
        {"topic[partition]": offset} of what was sent. Never waits for the answer."""
        now = self._clock()
        offsets = []
        for key, offset in sorted(self._pending.items()):
            if ceilings and key in ceilings:
                offset = min(offset, ceilings[key])
            if self._acked.get(key, -1) >= offset:
                continue
            sent = self._in_flight.get(key)
            if sent is not None and sent[0] >= offset and now - sent[1] < self.resend_after_s:
                continue
            offsets.append(TopicPartition(key[0], key[1], offset))
        if not offsets:
            return {}
        for tp in offsets:
            self._in_flight[(tp.topic, tp.partition)] = (tp.offset, now)
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # KafkaException, e.g. _STATE before the first assignment
            for tp in offsets:
                self._in_flight.pop((tp.topic, tp.partition), None)
            log.warning("offset commit not sent; will retry", error=str(exc))
            return {}
        return {f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets}

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (`on_commit` in the consumer configuration)."""
        for tp in partitions:
            key = (tp.topic, tp.partition)
            sent = self._in_flight.get(key)
            if sent is not None and sent[0] == tp.offset:
                del self._in_flight[key]
            failure = tp.error or error
            if failure is not None:
                if failure.code() != KafkaError._NO_OFFSET:
                    log.warning(
                        "offset commit failed; will retry",
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=tp.offset,
                        error=str(failure),
                    )
                continue
            if self._pending.get(key) == tp.offset:
                del self._pending[key]
                self._acked.pop(key, None)
            elif key in self._pending:
                self._acked[key] = max(self._acked.get(key, -1), tp.offset)

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions this member no longer owns."""
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._pending.pop(key, None)
            self._in_flight.pop(key, None)
            self._acked.pop(key, None)

    def drain(
        self,
        consumer: Committer,
        timeout_s: float,
        *,
        ceilings: Mapping[Partition, int] | None = None,
    ) -> bool:
        """Commit what is pending and wait at most `timeout_s` for the answers (leaving the
        group). True when nothing is left; otherwise the next owner re-applies the rest."""
        deadline = self._clock() + timeout_s
        self.commit(consumer, ceilings=ceilings)
        while self._in_flight and self._clock() < deadline:
            consumer.poll(0.1)  # serves on_commit; a message polled now is never committed
        if self._in_flight:
            log.warning(
                "offsets not committed before leaving; their next owner re-applies them",
                partitions=len(self._in_flight),
            )
        return not self._in_flight
