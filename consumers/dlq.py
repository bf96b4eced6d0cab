"""The dead-letter topic `{prefix}._dlq`: write refused events, list them, replay them.

A dead letter is the original message, byte for byte (key and value), plus headers saying
why and where from. It is produced by the idempotent producer and flushed — every delivery
acknowledged — before the consumer commits the offsets of its batch (DESIGN.md P4), so an
event is never both uncommitted-nowhere and lost. Replay re-produces the original to its
original topic; the apply path is idempotent (P1), so replaying twice is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from confluent_kafka import Consumer, Message, TopicPartition
from sqlalchemy.engine import Engine

from consumers.change import DeadLetter
from worker.dead_letters import (
    OFFSET,
    ORIGINAL_SHA256,
    ORIGINAL_SIZE,
    PARTITION,
    REASON,
    TIMESTAMP,
    TOPIC,
    AckedProducer,
    DeadLetterWriter,
    headers_for,
)
from worker.errors import ServiceError
from worker.kafka import consumer_config
from worker.logs import get_logger
from worker.metrics import DEAD_LETTERS

log = get_logger(__name__)


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    src = letter.source
    return headers_for(letter.reason, src.topic, src.partition, src.offset, src.timestamp_ms)


class DeadLetterProducer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._writer = DeadLetterWriter(bootstrap, topic)

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
            self._writer.send(src.key, src.value, dead_letter_headers(letter))
            DEAD_LETTERS.inc()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every dead letter to be acknowledged; raise `ServiceError` otherwise."""
        self._writer.flush(timeout_s)


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
    producer = AckedProducer(bootstrap)
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


# -- discarding: a dead letter a person decided not to replay, with the why recorded -----

DISCARDS_TABLE = "_d1cdc_dlq_discards"
_CREATE_DISCARDS = f"""
CREATE TABLE IF NOT EXISTS `{DISCARDS_TABLE}` (
  `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `discarded_at` DATETIME(3) NOT NULL,
  `dlq_partition` INT NOT NULL,
  `dlq_offset` BIGINT NOT NULL,
  `topic` VARCHAR(255) NOT NULL,
  `source_partition` INT NOT NULL,
  `source_offset` BIGINT NOT NULL,
  `dead_reason` TEXT NOT NULL,
  `discard_reason` TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


def others_acknowledged(
    selected: Iterable[DeadLetterRecord], pending: Iterable[DeadLetterRecord]
) -> list[DeadLetterRecord]:
    """Pending letters that acknowledging `selected` would also acknowledge (an offset
    commit covers everything before it in its partition) without being selected."""
    chosen = {(r.dlq_partition, r.dlq_offset) for r in selected}
    newest: dict[int, int] = {}
    for partition, offset in chosen:
        newest[partition] = max(newest.get(partition, -1), offset)
    return [
        r
        for r in pending
        if r.dlq_offset <= newest.get(r.dlq_partition, -1)
        and (r.dlq_partition, r.dlq_offset) not in chosen
    ]


def record_discards(engine: Engine, discarded: Iterable[tuple[DeadLetterRecord, str]]) -> int:
    """Write one row per (letter, why) to `_d1cdc_dlq_discards`, in one transaction;
    returns how many."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "at": now,
            "dp": r.dlq_partition,
            "do": r.dlq_offset,
            "topic": r.topic,
            "sp": r.partition,
            "so": r.offset,
            "dead": r.reason,
            "why": why,
        }
        for r, why in discarded
    ]
    if not rows:
        return 0
    with engine.begin() as conn:
        conn.execute(sa.text(_CREATE_DISCARDS))
        conn.execute(
            sa.text(
                f"INSERT INTO `{DISCARDS_TABLE}` (discarded_at, dlq_partition, dlq_offset, topic,"
                " source_partition, source_offset, dead_reason, discard_reason) "
                "VALUES (:at, :dp, :do, :topic, :sp, :so, :dead, :why)"
            ),
            rows,
        )
    return len(rows)
