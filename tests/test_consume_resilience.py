"""The loop survives rebalances and fresh topics: failed commits retried, unknown lag waited."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.change import MessageRef
from consumers.loop import ConsumeLoop
from tests.consume_helpers import MAPPING
from worker.config import load_settings


class FlakyCommits:
    """The part of a Consumer `_commit` uses; the first `failures` commits raise."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.committed: list[list[tuple[str, int, int]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        assert asynchronous is False
        if self.failures:
            self.failures -= 1
            raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION))
        self.committed.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])
        return offsets


def source(offset: int, partition: int = 0) -> MessageRef:
    return MessageRef("p.user", partition, offset, b"k", b"v")


def test_failed_commit_is_retried_with_the_newest_offsets() -> None:
    """After a failed commit the next attempt commits it — merged with newer batches."""
    loop = ConsumeLoop(load_settings(None, metrics_port=0), MAPPING)
    consumer = FlakyCommits(failures=1)
    loop._commit(consumer, [source(4), source(9, partition=1)])  # type: ignore[arg-type]
    assert consumer.committed == []
    loop._commit(consumer, [source(5)])  # type: ignore[arg-type]
    assert consumer.committed == [[("p.user", 0, 6), ("p.user", 1, 10)]]
    loop._commit_pending(consumer)  # type: ignore[arg-type]
    assert len(consumer.committed) == 1  # nothing left to commit
    loop.engine.dispose()


def test_released_partitions_are_not_retried() -> None:
    """Offsets of a partition we lost belong to its new owner: never committed by us."""
    loop = ConsumeLoop(load_settings(None, metrics_port=0), MAPPING)
    consumer = FlakyCommits(failures=1)
    loop._commit(consumer, [source(4)])  # type: ignore[arg-type]

    class Assignment:
        def assignment(self) -> list[TopicPartition]:
            return []

    loop._release(Assignment(), [TopicPartition("p.user", 0)])  # type: ignore[arg-type]
    loop._commit_pending(consumer)  # type: ignore[arg-type]
    assert consumer.committed == []
    loop.engine.dispose()


def test_lag_is_unknown_not_fatal_while_a_fresh_topic_has_no_leader() -> None:
    """NOT_LEADER_FOR_PARTITION from a watermark query means "ask later", not a crash."""
    from consumers.offsets import partition_lags

    class NoLeaderYet:
        def assignment(self) -> list[TopicPartition]:
            return [TopicPartition("p.user", 0)]

        def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
            return [TopicPartition("p.user", 0, 3)]

        def get_watermark_offsets(
            self, tp: TopicPartition, timeout: float = 0, cached: bool = False
        ) -> tuple[int, int]:
            if cached:
                return (-1, -1)
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))

    assert partition_lags(NoLeaderYet()) is None  # type: ignore[arg-type]
