"""Backpressure while the target (MySQL, or D1 for the reverse pipeline) is unavailable:
pause, rewind, keep polling, probe, resume.

Sleeping in the loop would exceed `max.poll.interval.ms` and get the worker evicted from
its group (DESIGN.md, "Kafka facts"). Instead the partitions are paused — `consume()` keeps
the membership alive and returns nothing for them — and sought back to the first offset
not yet applied, so nothing fetched meanwhile is skipped. A probe every few seconds
decides when to resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumers.change import MessageRef
from consumers.offsets import Partition, rewind_offsets
from worker import metrics
from worker.errors import ServiceError
from worker.logs import get_logger

log = get_logger(__name__)
PROBE_EVERY_S = 3.0


class Backpressure:
    def __init__(
        self, probe: Callable[[], None], health: metrics.Health, *, target: str = "MySQL"
    ) -> None:
        """`probe` raises `ServiceError` while the target (named `target` in logs) is down."""
        self.probe = probe
        self.target = target
        self.health = health
        self.rewind: dict[Partition, int] | None = None  # set while paused
        self._next_probe = 0.0

    @property
    def active(self) -> bool:
        return self.rewind is not None

    def pause(self, consumer: Consumer, failed: Iterable[MessageRef], reason: str) -> None:
        """Stop fetching; rewind to the failed batch's first offsets; never commit it."""
        log.error(f"apply failed; pausing partitions until {self.target} answers", error=reason)
        self.health.mysql_ok = False
        self.rewind = rewind_offsets(failed)
        metrics.PAUSED.set(1)
        consumer.pause(consumer.assignment())
        self._seek(consumer)
        self._next_probe = time.monotonic() + PROBE_EVERY_S

    def hold_back(self, consumer: Consumer, fetched: Iterable[MessageRef]) -> None:
        """Messages already fetched when we paused are not applied now: rewind to them too,
        or their partitions would skip them after the resume."""
        fetched_from = rewind_offsets(fetched)
        if self.rewind is None or not fetched_from:
            return  # paused partitions fetch nothing: no seek on every idle poll
        for partition, offset in fetched_from.items():
            self.rewind[partition] = min(offset, self.rewind.get(partition, offset))
        self._seek(consumer)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked or lost: their new owner starts from the committed offset."""
        for tp in partitions:
            if self.rewind is not None:
                self.rewind.pop((tp.topic, tp.partition), None)

    def probe_and_resume(self, consumer: Consumer) -> None:
        if self.rewind is None or time.monotonic() < self._next_probe:
            return
        try:
            self.probe()
        except ServiceError as exc:
            log.warning(f"{self.target} still unavailable", error=str(exc))
            self._next_probe = time.monotonic() + PROBE_EVERY_S
            return
        log.info(f"{self.target} is back; resuming")
        self.health.mysql_ok = True
        self._seek(consumer)  # again: a fetch that raced the first seek must not win
        consumer.resume(consumer.assignment())
        self.rewind = None
        metrics.PAUSED.set(0)

    def _seek(self, consumer: Consumer) -> None:
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in (self.rewind or {}).items():
            if (topic, partition) in assigned:
                try:
                    consumer.seek(TopicPartition(topic, partition, offset))
                except KafkaException as exc:
                    log.warning("seek failed", topic=topic, partition=partition, error=str(exc))
