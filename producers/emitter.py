"""`ChangeEmitter`: the producer shim an application (or the backfill poller) calls.

Every event is keyed by the row's primary key and enveloped per the v1 contract, produced
by an idempotent producer (`enable.idempotence`, `acks=all`), so one row's events stay in
order on one partition. Nothing is ever dropped:

- a full local queue (`BufferError`) is served with `poll()` and the produce retried;
- a delivery failure (broker unreachable until `message.timeout.ms`) is counted, logged and,
  when a spool directory is configured, appended to the on-disk `Spool`. While the spool
  holds anything, new events go to the spool too, so the topic order stays the write
  order; `flush()` and every `SPOOL_RETRY_SECONDS` replay the spool, oldest first, and
  switch back to direct produce once the whole spool was acknowledged;
- without a spool (the backfill poller), `flush()` raises `ServiceError` on any failure,
  and the caller retries from its last acknowledged position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from producers.spool import DEFAULT_MAX_BYTES, Spool, SpooledMessage
from worker.config import Settings
from worker.dead_letters import DeadLetterWriter, error_headers
from worker.envelope import ChangeEvent, encode_event, new_event
from worker.errors import EventTooLargeError, SchemaError, ServiceError, UnshippableError
from worker.kafka import EVENT_ROOM, MAX_EVENT_BYTES, produce_never_dropping, producer_config
from worker.logs import get_logger
from worker.schema.mapping import Mapping as SchemaMapping
from worker.topics import dlq_topic, topic_for

SPOOL_RETRY_SECONDS = 5.0
SPOOL_DELIVERY_TIMEOUT_MS = 30_000
_log = get_logger("d1cdc.emitter")


class ChangeEmitter:
    """Turn row changes into keyed, enveloped Kafka messages; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        *,
        mapping: SchemaMapping | None = None,
        spool_dir: Path | None = None,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        origin: str = "app",
        topic_of: Callable[[str, str], str] = topic_for,
        **producer_overrides: Any,
    ) -> None:
        """`topic_of(prefix, table)` names a table's topic: `topic_for` (forward), or
        `worker.topics.reverse_topic_for` for the reverse poller."""
        self.topic_prefix = topic_prefix
        self._topic_of = topic_of
        self._bootstrap = bootstrap
        self._dead_letters: DeadLetterWriter | None = None
        self.mapping = mapping
        self.origin = origin
        self.spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        self._replay_outstanding = 0  # spool copies handed to librdkafka, not yet settled
        self.delivered = 0
        self.failed = 0
        self.spooled = 0
        # produced, neither acknowledged nor failed yet (spool replays excluded)
        self._in_flight = 0
        # Every produced message gets a sequence number; `acked_through` is the highest one
        # with it and all before it acknowledged (deliveries across partitions complete out
        # of order), so a caller can checkpoint without waiting for a full flush.
        self.last_sequence = 0
        self.acked_through = 0
        self._acked_ahead: set[int] = set()
        self._failures: list[tuple[SpooledMessage, str]] = []
        self._lock = threading.RLock()
        self._next_spool_retry = 0.0
        if self.spool is not None:
            # Surface an unreachable broker in seconds, not librdkafka's default 5 minutes.
            producer_overrides.setdefault("message.timeout.ms", SPOOL_DELIVERY_TIMEOUT_MS)
        self._producer = Producer(producer_config(bootstrap, **producer_overrides))
        self._spool_holds_events = self.spool is not None and not self.spool.is_empty()
        if self._spool_holds_events:
            _log.warning("spool holds undelivered events; replaying", spool=str(spool_dir))
            self._replay_spool(timeout=10.0)

    @classmethod
    def from_settings(
        cls, settings: Settings, mapping: SchemaMapping | None = None, **kwargs: Any
    ) -> ChangeEmitter:
        return cls(settings.kafka_bootstrap, settings.topic_prefix, mapping=mapping, **kwargs)

    # -- the application's API -------------------------------------------------------------

    def upsert(
        self,
        table: str,
        row: Mapping[str, Any],
        *,
        key: Mapping[str, Any] | None = None,
        origin: str | None = None,
        ts_ms: int | None = None,
    ) -> None:
        """Emit the full `row` (source representation) of `table` as an upsert."""
        event_key = dict(key) if key is not None else self._key_of(table, row)
        self.emit(
            new_event(table, "upsert", event_key, row, origin=origin or self.origin, ts_ms=ts_ms)
        )

    def delete(
        self,
        table: str,
        key: Mapping[str, Any],
        before: Mapping[str, Any] | None = None,
        *,
        origin: str | None = None,
        ts_ms: int | None = None,
    ) -> None:
        """Emit a delete for `key`, then a tombstone (same key, null value) for compaction."""
        event = new_event(table, "delete", key, before, origin=origin or self.origin, ts_ms=ts_ms)
        topic = self._topic_of(self.topic_prefix, table)
        message_key, value = _encoded(event, topic)
        with self._lock:
            self._send(SpooledMessage(topic, message_key, value))
            self._send(SpooledMessage(topic, message_key, None))

    def emit(self, event: ChangeEvent) -> None:
        topic = self._topic_of(self.topic_prefix, event.table)
        message_key, value = _encoded(event, topic)
        with self._lock:
            self._send(SpooledMessage(topic, message_key, value))

    def topic(self, table: str) -> str:
        """The topic this emitter produces `table`'s events to."""
        return self._topic_of(self.topic_prefix, table)

    def dead_letter(self, refused: UnshippableError) -> None:
        """Store a change that cannot be an event (too large for Kafka's topics, or a row
        the reverse pipeline cannot convert) in the dead-letter topic (truncated to fit,
        with its size and hash), acknowledged before this returns. For workers that must go
        on past one row (the pollers); an app gets the error instead."""
        if self._dead_letters is None:
            self._dead_letters = DeadLetterWriter(self._bootstrap, dlq_topic(self.topic_prefix))
        headers = error_headers(refused, refused.topic, -1, -1, int(time.time() * 1000))
        self._dead_letters.send(refused.key, refused.value, headers)
        self._dead_letters.flush()
        _log.error("change cannot be shipped; dead-lettered", reason=refused.reason)

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery callbacks (spooling any failures); cheap, call it often."""
        with self._lock:
            self._producer.poll(timeout)
            self._spool_failures()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every event is acknowledged or spooled; raise when neither happened."""
        with self._lock:
            self._wait_for(lambda: self._in_flight == 0, timeout)
            self._spool_failures()
            if self._in_flight:
                raise ServiceError(
                    f"Kafka did not acknowledge {self._in_flight} event(s) within {timeout:.0f} s"
                )
            if self.spooling:
                self._replay_spool(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)

    @property
    def spooling(self) -> bool:
        """True while the spool holds events (kept in memory: checked on every send)."""
        return self._spool_holds_events

    # -- internals ---------------------------------------------------------------------

    def _key_of(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        if self.mapping is None:
            raise SchemaError(f"table {table!r}: pass key=… or give the emitter a mapping")
        pk = self.mapping.table(table).primary_key
        missing = [c for c in pk if c not in row]
        if missing:
            raise SchemaError(f"table {table!r}: row lacks primary-key column(s) {missing}")
        return {c: row[c] for c in pk}

    def _send(self, message: SpooledMessage) -> None:
        if self.spooling:
            self._maybe_retry_spool()
        if self.spooling:
            assert self.spool is not None
            self.spool.append([message])
            self._spool_holds_events = True
            self.spooled += 1
            return
        self._produce(message)

    def _produce(self, message: SpooledMessage) -> None:
        sequence = self.last_sequence + 1

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            self._in_flight -= 1
            if err is None:
                self.delivered += 1
                self._acked(sequence)
            else:
                self.failed += 1
                self._failures.append((message, err.str()))

        self._produce_raw(message, on_delivery)
        self._in_flight += 1
        self.last_sequence = sequence
        self._producer.poll(0)
        self._spool_failures()

    def _acked(self, sequence: int) -> None:
        self._acked_ahead.add(sequence)
        while self.acked_through + 1 in self._acked_ahead:
            self.acked_through += 1
            self._acked_ahead.discard(self.acked_through)

    def _spool_failures(self) -> None:
        if not self._failures:
            return
        failures, self._failures = self._failures, []
        _log.warning(
            "kafka delivery failed",
            count=len(failures),
            reason=failures[0][1],
            spooled=self.spool is not None,
        )
        if self.spool is None:
            raise ServiceError(f"Kafka did not accept {len(failures)} event(s): {failures[0][1]}")
        self.spool.append([m for m, _ in failures])
        self._spool_holds_events = True
        self.spooled += len(failures)
        self._next_spool_retry = time.monotonic() + SPOOL_RETRY_SECONDS

    def _maybe_retry_spool(self) -> None:
        # Never a second copy of the spool while the last replay's messages are still in
        # librdkafka's queue (they settle only at message.timeout.ms when Kafka is down).
        if self._replay_outstanding == 0 and time.monotonic() >= self._next_spool_retry:
            self._replay_spool(timeout=5.0)

    def _replay_spool(self, timeout: float) -> None:
        """Produce the whole spool in order; clear it only when every message was acked.

        Replayed messages stay in the spool until all are acknowledged, so a failed replay
        only causes duplicates later (harmless: consumers are idempotent), never a loss.
        """
        assert self.spool is not None
        pending = 0
        failed: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal pending
            pending -= 1
            self._replay_outstanding -= 1
            if err is not None:
                failed.append(err.str())

        self._wait_for(lambda: self._replay_outstanding == 0, timeout)
        if self._replay_outstanding:  # an earlier replay is still settling: not now
            self._next_spool_retry = time.monotonic() + SPOOL_RETRY_SECONDS
            return
        count = 0
        for message in self.spool.read():
            pending += 1
            self._replay_outstanding += 1
            self._produce_raw(message, on_delivery)
            count += 1
        self._wait_for(lambda: pending == 0 or bool(failed), timeout)
        if pending or failed:
            reason = failed[0] if failed else f"{pending} not acknowledged in {timeout:.0f} s"
            _log.warning("spool replay incomplete; keeping the spool", reason=reason)
            self._next_spool_retry = time.monotonic() + SPOOL_RETRY_SECONDS
            return
        self.spool.clear()
        self._spool_holds_events = False
        self.delivered += count
        _log.info("spool replayed", events=count)

    def _wait_for(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self._producer.poll(0.1)

    def _produce_raw(self, message: SpooledMessage, on_delivery: Any) -> None:
        produce_never_dropping(
            self._producer, message.topic, message.key, message.value, on_delivery=on_delivery
        )


def _encoded(event: ChangeEvent, topic: str) -> tuple[bytes, bytes]:
    """The event's Kafka key and value; `EventTooLargeError` (naming table, key and size)
    when Kafka would refuse it, raised before anything is produced or spooled."""
    message_key, value = encode_event(event)
    size = len(message_key) + len(value)
    if size > MAX_EVENT_BYTES - EVENT_ROOM:
        raise EventTooLargeError(
            f"{event.table} key={message_key[:200].decode('utf-8', 'replace')}: the event is "
            f"{size} bytes, over the {MAX_EVENT_BYTES - EVENT_ROOM}-byte limit of d1cdc's topics "
            "(D1 rows are at most 2 MB; a larger value came from elsewhere)",
            topic=topic,
            key=message_key,
            value=value,
        )
    return message_key, value
