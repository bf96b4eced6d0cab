"""Messages → sources, offsets of a batch, consumer lag: what to commit, where to rewind, done?"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumers.change import MessageRef
from worker.errors import ServiceError
from worker.logs import get_logger
from worker.metrics import CONSUMER_LAG

log = get_logger(__name__)

Partition = tuple[str, int]


def message_refs(messages: Iterable[Message]) -> list[MessageRef]:
    """The `MessageRef` of every real message; errors are logged (fatal ones raise)."""
    sources = []
    for msg in messages:
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error", error=str(error), topic=msg.topic())
                if error.fatal():
                    raise ServiceError(f"Kafka consumer failed: {error}")
            continue
        sources.append(
            MessageRef(
                topic=msg.topic() or "",
                partition=msg.partition() or 0,
                offset=msg.offset() or 0,
                key=msg.key(),
                value=msg.value(),
                timestamp_ms=msg.timestamp()[1],
            )
        )
    return sources


def commit_offsets(sources: Iterable[MessageRef]) -> list[TopicPartition]:
    """Kafka commits the *next* offset to read: the highest offset seen + 1, per partition."""
    highest: dict[Partition, int] = {}
    for src in sources:
        key = (src.topic, src.partition)
        highest[key] = max(highest.get(key, -1), src.offset)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(highest.items())]


def rewind_offsets(sources: Iterable[MessageRef]) -> dict[Partition, int]:
    """The first offset of a failed batch per partition: where to seek back to."""
    lowest: dict[Partition, int] = {}
    for src in sources:
        key = (src.topic, src.partition)
        lowest[key] = min(lowest.get(key, src.offset), src.offset)
    return lowest


def partition_lags(consumer: Consumer, timeout_s: float = 10.0) -> dict[Partition, int] | None:
    """Messages left per assigned partition (high watermark - position); None if unassigned
    or not known yet.

    The position is the next offset this consumer will hand to the application; before it
    consumed anything from a partition, the committed offset, else the low watermark (a
    compacted topic may start above 0).
    """
    assignment = consumer.assignment()
    if not assignment:
        return None
    positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(assignment)}
    committed: dict[Partition, int] = {}
    if any(offset < 0 for offset in positions.values()):
        try:
            for tp in consumer.committed(assignment, timeout=timeout_s):
                committed[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as exc:  # coordinator moving or loading: ask again later
            log.info("lag unknown for now", error=str(exc))
            return None
    lags: dict[Partition, int] = {}
    for (topic, partition), offset in positions.items():
        tp = TopicPartition(topic, partition)
        # The cached watermarks come with every fetch response (≤ fetch.wait.max.ms old);
        # a fresh query waits behind the connection's long-poll fetch (~0.5 s each).
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if low < 0 or high < 0:
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            except KafkaException as exc:
                # A fresh topic has no partition leader for a moment (NOT_LEADER_FOR_PARTITION):
                # the lag is unknown for now, not a reason to stop the worker.
                log.info("lag unknown for now", topic=topic, partition=partition, error=str(exc))
                return None
        if offset < 0:
            offset = committed.get((topic, partition), -1)
        if offset < 0:
            offset = low
        lags[(topic, partition)] = max(0, high - offset)
        CONSUMER_LAG.labels(topic, str(partition)).set(lags[(topic, partition)])
    return lags
