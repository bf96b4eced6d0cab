"""The dead-letter topic `{prefix}._dlq`: write refused events, list them, replay them.

A dead letter is the original message, byte for byte (key and value), plus headers saying
why and where from. It is produced by the idempotent producer and flushed — every delivery
acknowledged — before the consumer commits the offsets of its batch (DESIGN.md P4), so an
event is never both uncommitted-nowhere and lost. Replay re-produces the original to its
original topic; the apply path is idempotent (P1), so replaying twice is harmless.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from consumers.change import DeadLetter
from worker.errors import ServiceError
from worker.kafka import DLQ_MAX_BYTES, consumer_config, producer_config
from worker.logs import get_logger
from worker.metrics import DEAD_LETTERS

log = get_logger(__name__)

REASON, TOPIC, PARTITION, OFFSET, TIMESTAMP = (
    "d1cdc.reason",
    "d1cdc.topic",
    "d1cdc.partition",
    "d1cdc.offset",
    "d1cdc.timestamp",
)
# Only on a dead letter too big for the DLQ, stored truncated: what the original was.
ORIGINAL_SIZE, ORIGINAL_SHA256 = "d1cdc.original_size", "d1cdc.original_sha256"
_MAX_REASON = 2000  # header size is bounded; the reason names table/column/key first
_ROOM = 64 * 1024  # headers and librdkafka's per-message overhead, below DLQ_MAX_BYTES


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Why and where from. The reason may quote hostile input (a column name holding an
    unpaired surrogate): what UTF-8 cannot hold is written as a backslash escape."""
    src = letter.source
    return [
        (REASON, letter.reason[:_MAX_REASON].encode("utf-8", "backslashreplace")),
        (TOPIC, src.topic.encode("utf-8")),
        (PARTITION, str(src.partition).encode("ascii")),
        (OFFSET, str(src.offset).encode("ascii")),
        (TIMESTAMP, str(src.timestamp_ms).encode("ascii")),
    ]


def fit_for_dlq(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter as stored: whole when it fits the DLQ, else truncated to fit, with
    the original value's size and SHA-256 in headers. Never dropped, never an error."""
    budget = DLQ_MAX_BYTES - _ROOM - sum(len(n) + len(v) for n, v in headers)
    size = len(key or b"") + len(value or b"")
    if size <= budget:
        return key, value, headers
    original = value or b""
    digest = hashlib.sha256(original).hexdigest()
    key = None if key is None else key[: budget // 2]
    kept = original[: max(0, budget - len(key or b""))]
    log.error(
        "dead letter too big for the dead-letter topic; stored truncated",
        size=size,
        kept=len(kept),
        sha256=digest,
    )
    extra = [(ORIGINAL_SIZE, str(len(original)).encode()), (ORIGINAL_SHA256, digest.encode())]
    return key, kept, [*headers, *extra]


class _AckedProducer:
    """A producer that never drops an event: it waits out a full local queue and remembers
    every failed delivery, for `flush` to report."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, **config))
        self._failures: list[str] = []

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failures.append(str(err))

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full (a large batch or replay): wait, never drop
                self._producer.poll(0.5)
        self._producer.poll(0)  # serve delivery reports as we go

    def flush(self, timeout_s: float) -> tuple[int, list[str]]:
        """Wait for every event; (how many are still unacknowledged, failed deliveries)."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        return remaining, failures


class DeadLetterProducer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = _AckedProducer(
            bootstrap, **{"linger.ms": 5, "message.max.bytes": DLQ_MAX_BYTES}
        )

    def send(self, letters: Iterable[DeadLetter]) -> None:
        for letter in letters:
            src = letter.source
            log.warning(
                "dead-lettered event",
                topic=src.topic,
                partition=src.partition,
                offset=src.offset,
                reason=letter.reason,
            )
            key, value, headers = fit_for_dlq(src.key, src.value, dead_letter_headers(letter))
            self._producer.produce(self.topic, key, value, headers)
            DEAD_LETTERS.inc()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every dead letter to be acknowledged; raise `ServiceError` otherwise."""
        remaining, failures = self._producer.flush(timeout_s)
        if remaining or failures:
            raise ServiceError(
                f"dead-letter topic {self.topic}: {remaining} unacknowledged, "
                f"failed: {'; '.join(failures[:3]) or 'timeout'}"
            )


@dataclass(frozen=True)
class DeadLetterRecord:
    """One entry of the dead-letter topic, as `dlq list` shows it."""

    dlq_partition: int
    dlq_offset: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    reason: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        """Stored cut to fit the DLQ: it can be inspected, not replayed."""
        return ORIGINAL_SIZE in self.headers

    def as_json(self) -> dict[str, Any]:
        return {
            "dlq_partition": self.dlq_partition,
            "dlq_offset": self.dlq_offset,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "reason": self.reason,
            "key": _text(self.key),
            "value": _text(self.value),
            **(
                {
                    "original_size": int(self.headers[ORIGINAL_SIZE]),
                    "original_sha256": self.headers.get(ORIGINAL_SHA256),
                }
                if self.truncated
                else {}
            ),
        }


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _record(msg: Message) -> DeadLetterRecord:
    headers: dict[str, str] = {}
    for header in msg.headers() or []:
        name, raw = header[0], header[1]
        if isinstance(raw, bytes):
            headers[name] = raw.decode("utf-8", errors="replace")
    return DeadLetterRecord(
        dlq_partition=msg.partition() or 0,
        dlq_offset=msg.offset() or 0,
        topic=headers.get(TOPIC, "?"),
        partition=int(headers.get(PARTITION, "-1")),
        offset=int(headers.get(OFFSET, "-1")),
        timestamp_ms=int(headers.get(TIMESTAMP, "0")),
        reason=headers.get(REASON, "?"),
        key=msg.key(),
        value=msg.value(),
        headers=headers,
    )


def read_dead_letters(
    bootstrap: str, topic: str, timeout_s: float = 30.0, *, pending_for: str | None = None
) -> list[DeadLetterRecord]:
    """Entries of the dead-letter topic up to its current end: all of them, or with
    `pending_for` only those after the offsets that group acknowledged (replayed)."""
    consumer = Consumer(consumer_config(bootstrap, f"d1cdc-dlq-reader-{uuid.uuid4().hex[:8]}"))
    acked = _acknowledged(bootstrap, topic, pending_for, timeout_s) if pending_for else {}
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return []  # no dead letter was ever written
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            low = max(low, acked.get(partition, low))
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        consumer.assign(starts)
        records: list[DeadLetterRecord] = []
        while ends:
            msg = consumer.poll(timeout_s)
            if msg is None:
                raise ServiceError(f"timed out reading dead-letter topic {topic}")
            if msg.error():
                raise ServiceError(f"reading dead-letter topic {topic}: {msg.error()}")
            record = _record(msg)
            records.append(record)
            if record.dlq_offset + 1 >= ends.get(record.dlq_partition, 0):
                ends.pop(record.dlq_partition, None)
        return sorted(records, key=lambda r: (r.dlq_partition, r.dlq_offset))
    finally:
        consumer.close()


def replay_dead_letters(bootstrap: str, records: Iterable[DeadLetterRecord]) -> int:
    """Re-produce each record's original key/value to its original topic; returns the count."""
    producer = _AckedProducer(bootstrap)
    count = 0
    for record in records:
        if record.truncated:
            log.error(
                "not replayed: stored truncated (the original was too big for the DLQ)",
                topic=record.topic,
                offset=record.offset,
                original_size=record.headers[ORIGINAL_SIZE],
            )
            continue
        producer.produce(record.topic, record.key, record.value)
        count += 1
    remaining, failures = producer.flush(30)
    if remaining or failures:
        raise ServiceError(
            f"replay: {remaining + len(failures)} event(s) not acknowledged: {failures[:3]}"
        )
    return count


def _acknowledged(bootstrap: str, topic: str, group: str, timeout_s: float) -> dict[int, int]:
    """Partition → first offset not yet acknowledged by `group` (absent: none acknowledged)."""
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        return {
            tp.partition: tp.offset for tp in consumer.committed(parts, timeout_s) if tp.offset >= 0
        }
    finally:
        consumer.close()


def acknowledge_dead_letters(
    bootstrap: str, topic: str, group: str, records: Iterable[DeadLetterRecord]
) -> None:
    """Mark `records` as handled: commit, per partition, the offset after the newest one in
    `group` (`d1cdc status` counts what lies beyond it as pending dead letters)."""
    newest: dict[int, int] = {}
    for record in records:
        newest[record.dlq_partition] = max(newest.get(record.dlq_partition, -1), record.dlq_offset)
    if not newest:
        return
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        offsets = [TopicPartition(topic, p, o + 1) for p, o in newest.items()]
        for tp in consumer.commit(offsets=offsets, asynchronous=False) or []:
            if tp.error is not None:
                raise ServiceError(f"acknowledging dead letters in {topic}: {tp.error}")
    finally:
        consumer.close()
