"""Messages → sources, offsets of a batch, consumer lag: what to commit, where to rewind, done?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from consumers.change import MessageRef
from worker.errors import ServiceError
from worker.logs import get_logger
from worker.metrics import CONSUMER_LAG

log = get_logger(__name__)

Partition = tuple[str, int]
_TIMEOUT_S = 30.0


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


# -- "caught up": one definition, for `consume --until-caught-up`, `rebuild` and `status` --


@dataclass(frozen=True)
class GroupProgress:
    """Where a consumer group stands on every partition of a set of topics.

    Lag is counted from the group's *committed* offsets, never from one member's
    assignment: a member that holds 6 of 18 partitions (the others still held by members
    that have not timed out) is not caught up because its own 6 are. Lag of a partition is
    end - max(committed, start): messages below the start offset (compacted or expired)
    no longer exist, and an uncommitted partition owes everything from its start.
    """

    ends: Mapping[Partition, int]
    starts: Mapping[Partition, int]
    committed: Mapping[Partition, int]  # -1 (or absent): nothing committed yet
    group_state: str = "UNKNOWN"

    def lag(self, partition: Partition, *, end: int | None = None) -> int:
        stop = self.ends[partition] if end is None else end
        done = max(self.committed.get(partition, -1), self.starts.get(partition, 0))
        return max(0, stop - done)

    def lag_of(self, topic: str) -> int:
        return sum(self.lag(p) for p in self.ends if p[0] == topic)

    @property
    def total_lag(self) -> int:
        return sum(self.lag(p) for p in self.ends)

    def caught_up(self, *, until: Mapping[Partition, int] | None = None) -> bool:
        """Every partition committed through its end (or through `until`, end offsets taken
        earlier), and the group not in the middle of a rebalance. A group that never existed
        (DEAD) has committed nothing: caught up only when there was nothing to apply (e.g. the
        forward topic of a table never written in D1, asked by the reverse delete diff)."""
        if self.group_state not in ("STABLE", "EMPTY", "DEAD"):
            return False
        if until is not None:
            return all(self.lag(p, end=end) == 0 for p, end in until.items())
        return self.total_lag == 0

    def lagging(self, limit: int = 5) -> list[str]:
        behind = [(p, self.lag(p)) for p in sorted(self.ends) if self.lag(p)]
        return [f"{t}[{n}]={lag}" for (t, n), lag in behind[:limit]]


def _result(future: Any) -> Any:
    """A Kafka admin future's result; its timeout is a KafkaException like every other
    Kafka failure (callers retry those), not concurrent.futures' TimeoutError."""
    try:
        return future.result(timeout=_TIMEOUT_S)
    except TimeoutError:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "admin request timed out")) from None


def topic_offsets(
    admin: AdminClient, topics: Iterable[str], spec: OffsetSpec
) -> dict[Partition, int]:
    """`spec` (earliest/latest) offset of every partition of those `topics` that exist."""
    meta = admin.list_topics(timeout=_TIMEOUT_S)
    request = {
        TopicPartition(t, p): spec
        for t in topics
        if t in meta.topics
        for p in meta.topics[t].partitions
    }
    if not request:
        return {}
    result: dict[Partition, int] = {}
    for tp, future in admin.list_offsets(request, request_timeout=_TIMEOUT_S).items():
        result[(tp.topic, tp.partition)] = _result(future).offset
    return result


def group_progress(admin: AdminClient, group: str, topics: Iterable[str]) -> GroupProgress:
    """The group's progress on every partition of `topics` (raises KafkaException)."""
    wanted = list(topics)
    ends = topic_offsets(admin, wanted, OffsetSpec.latest())  # type: ignore[no-untyped-call]
    starts = topic_offsets(admin, wanted, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    committed = committed_offsets(admin, group, ends)
    described = admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)[group]
    state = _result(described).state
    name = state.name if isinstance(state, ConsumerGroupState) else str(state)
    return GroupProgress(ends, starts, committed, name)


def committed_offsets(
    admin: AdminClient, group: str, partitions: Iterable[Partition]
) -> dict[Partition, int]:
    """`group`'s committed offset of each of `partitions` (negative: none yet); one request."""
    parts = [TopicPartition(t, p) for t, p in sorted(partitions)]
    if not parts:
        return {}
    request = ConsumerGroupTopicPartitions(group, parts)
    answer = admin.list_consumer_group_offsets([request], request_timeout=_TIMEOUT_S)[group]
    return {(tp.topic, tp.partition): tp.offset for tp in _result(answer).topic_partitions}
