"""Dead letters as both sides write them: the header contract and an acknowledged producer.

A dead letter is the original message (key and value, byte for byte) plus headers saying
why and where from. The consumers write one for an event they cannot apply; the relay and
the backfill poller for a change they cannot make an event of. Both use this module, so
`dlq list`, `dlq replay` and `status` read them alike.
"""

from __future__ import annotations

import hashlib
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from worker.errors import EventError, ServiceError, reason_of
from worker.kafka import DLQ_MAX_BYTES, produce_never_dropping, producer_config
from worker.logs import get_logger

log = get_logger("d1cdc.dead_letters")

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


def error_headers(
    error: EventError, topic: str, partition: int, offset: int, timestamp_ms: int
) -> list[tuple[str, bytes]]:
    """`headers_for` an error: its reason in the one shape of `reason_of`."""
    return headers_for(reason_of(error), topic, partition, offset, timestamp_ms)


def headers_for(
    reason: str, topic: str, partition: int, offset: int, timestamp_ms: int
) -> list[tuple[str, bytes]]:
    """Why and where from. The reason may quote hostile input (a column name holding an
    unpaired surrogate): what UTF-8 cannot hold is written as a backslash escape."""
    return [
        (REASON, reason[:_MAX_REASON].encode("utf-8", "backslashreplace")),
        (TOPIC, topic.encode("utf-8", "backslashreplace")),
        (PARTITION, str(partition).encode("ascii")),
        (OFFSET, str(offset).encode("ascii")),
        (TIMESTAMP, str(timestamp_ms).encode("ascii")),
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


class AckedProducer:
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
        produce_never_dropping(
            self._producer, topic, key, value, headers=headers, on_delivery=self._delivered
        )
        self._producer.poll(0)  # serve delivery reports as we go

    def flush(self, timeout_s: float) -> tuple[int, list[str]]:
        """Wait for every event; (how many are still unacknowledged, failed deliveries)."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        return remaining, failures


class DeadLetterWriter:
    """Writes dead letters to one topic, fitted to its size limit, and confirms them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = AckedProducer(
            bootstrap, **{"linger.ms": 5, "message.max.bytes": DLQ_MAX_BYTES}
        )

    def send(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self._producer.produce(self.topic, *fit_for_dlq(key, value, headers))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every dead letter to be acknowledged; raise `ServiceError` otherwise."""
        remaining, failures = self._producer.flush(timeout_s)
        if remaining or failures:
            raise ServiceError(
                f"dead-letter topic {self.topic}: {remaining} unacknowledged, "
                f"failed: {'; '.join(failures[:3]) or 'timeout'}"
            )
