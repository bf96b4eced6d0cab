"""`Relay`: ship the D1 change log to Kafka in commit order; delete only what was acknowledged.

One cycle: renew the lease → read the oldest entries → produce them as v1 envelopes with
`origin: "capture"` (idempotent producer, `acks=all`) → wait for every acknowledgement →
delete those entries (fenced by the lease). A crash anywhere leaves the entries in the log,
so the next relay ships them again: a duplicate, harmless by P1, never a loss (P5).

An entry that cannot become an event (a table the mapping does not know, a value the
envelope refuses such as an infinite REAL) is dead-lettered with its reason, byte for byte
as it sat in the log, and then deleted like the others: it never blocks the entries behind it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from producers.capture_drift import find_drift
from producers.changelog import (
    BadEntry,
    ChangeLog,
    LeaseHeld,
    LogEntry,
    RelayLease,
    decode_entry,
)
from producers.emitter import ChangeEmitter
from worker.dead_letters import DeadLetterWriter, error_headers
from worker.errors import D1cdcError, EnvelopeError, ServiceError
from worker.logs import get_logger
from worker.metrics import CAPTURE_DRIFT, RELAY_EVENTS, RELAY_LAG, RELAY_LOG_DEPTH, Health
from worker.schema.mapping import Mapping
from worker.topics import dlq_topic, topic_for

ORIGIN = "capture"
DRIFT_CHECK_S = 60.0  # how often the relay runs `capture check` on its own source
_log = get_logger("d1cdc.relay")


@dataclass
class RelayOutcome:
    shipped: int = 0
    dead_letters: int = 0
    cycles: int = 0
    per_table: dict[str, int] = field(default_factory=dict)


class _DeadLetters:
    """Entries that cannot be events, to `{prefix}._dlq`, acknowledged before deletion.
    Headers are the consumers' (`worker.dead_letters`), with the change-log sequence number
    as the offset and partition -1."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._writer = DeadLetterWriter(bootstrap, topic)

    def send(self, prefix: str, bad: BadEntry) -> None:
        value = json.dumps(bad.raw, default=str, ensure_ascii=False).encode("utf-8", "replace")
        table = str(bad.raw.get("tbl", "?"))
        ts_ms = bad.raw.get("ts_ms")
        timestamp = ts_ms if isinstance(ts_ms, int) and not isinstance(ts_ms, bool) else 0
        headers = error_headers(bad, topic_for(prefix, table), -1, bad.seq, timestamp)
        self._writer.send(None, value, headers)

    def flush(self, timeout_s: float) -> None:
        self._writer.flush(timeout_s)


class Relay:
    def __init__(
        self,
        log: ChangeLog,
        emitter: ChangeEmitter,
        mapping: Mapping,
        *,
        bootstrap: str,
        batch_size: int = 500,
        interval_s: float = 1.0,
        lease_ttl_s: float = 30.0,
        health: Health | None = None,
        owner: str | None = None,
    ) -> None:
        self.log = log
        self.emitter = emitter
        self.mapping = mapping
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.owner = owner or f"relay-{uuid.uuid4().hex[:12]}"
        self.lease = RelayLease(log.source, self.owner, lease_ttl_s)
        self.health = health or Health()
        self.dead_letters = _DeadLetters(bootstrap, dlq_topic(emitter.topic_prefix))
        self._stop = threading.Event()
        self._next_drift_check = 0.0

    def stop(self) -> None:
        self._stop.set()

    def run(
        self, *, once: bool = False, on_cycle: Callable[[int], None] | None = None
    ) -> RelayOutcome:
        """Ship until stopped; with `once`, until the log is empty. The lease is taken
        first: a second relay on the same database is refused with a one-line reason."""
        outcome = RelayOutcome()
        self._take_lease(once)
        self.health.assigned = True
        _log.info("relay holds the change-log lease", owner=self.owner, source=self.log.source.name)
        try:
            while not self._stop.is_set():
                try:
                    shipped = self.cycle(outcome)
                except LeaseHeld:
                    raise
                except ServiceError as exc:
                    if once:
                        raise
                    self.health.mysql_ok = False
                    _log.warning("relay cycle failed; entries stay in the log", error=str(exc))
                    self._stop.wait(max(self.interval_s, 2.0))
                    continue
                if on_cycle is not None:
                    on_cycle(shipped)
                if shipped < self.batch_size:
                    if once:
                        break
                    self._stop.wait(self.interval_s)
        finally:
            if self._stop.is_set() or once:
                self._release()
        return outcome

    def _take_lease(self, once: bool) -> None:
        """Take the lease, waiting while another relay holds it: a second relay is a fenced
        standby that takes over when the first stops renewing. `--once` waits at most one
        lease period (a killed relay's lease runs out by then), then gives up."""
        deadline = time.monotonic() + self.lease.ttl_ms / 1000 + 5
        while True:
            try:
                self.lease.acquire()
                return
            except LeaseHeld as exc:
                if self._stop.is_set() or (once and time.monotonic() > deadline):
                    raise
                _log.info("standing by: the change-log lease is held", reason=str(exc))
                self.health.polled()
                self._stop.wait(min(2.0, self.lease.ttl_ms / 4000))

    def cycle(self, outcome: RelayOutcome) -> int:
        """One read → produce → acknowledge → delete; the number of entries shipped."""
        self.lease.acquire()
        self.health.polled()
        raw = self.log.read(self.batch_size)
        self._observe()
        if not raw:
            self.health.mysql_ok = True
            return 0
        entries: list[LogEntry] = []
        bad = 0
        for item in raw:
            try:
                entry = decode_entry(item)
                self.mapping.table(entry.table)
                self._produce(entry)
                entries.append(entry)
            except (BadEntry, D1cdcError) as exc:
                letter = (
                    exc
                    if isinstance(exc, BadEntry)
                    else BadEntry(int(item["seq"]), str(item["tbl"]), str(exc), item)
                )
                self.dead_letters.send(self.emitter.topic_prefix, letter)
                _log.error("change-log entry dead-lettered", seq=letter.seq, reason=letter.reason)
                bad += 1
        self.emitter.flush()
        if bad:
            self.dead_letters.flush(30.0)
        last = int(raw[-1]["seq"])
        deleted = self.log.delete_through(last, self.owner)
        if deleted == 0:
            raise LeaseHeld(
                "the relay lost its change-log lease while shipping (another relay took it); "
                "its entries stay in the log for the lease holder"
            )
        outcome.cycles += 1
        outcome.shipped += len(entries)
        outcome.dead_letters += bad
        for entry in entries:
            outcome.per_table[entry.table] = outcome.per_table.get(entry.table, 0) + 1
            RELAY_EVENTS.labels(entry.table).inc()
        self.health.mysql_ok = True
        return len(raw)

    def _produce(self, entry: LogEntry) -> None:
        try:
            if entry.op == "delete":
                self.emitter.delete(
                    entry.table, entry.key, entry.row, origin=ORIGIN, ts_ms=entry.ts_ms
                )
            else:
                assert entry.row is not None
                self.emitter.upsert(
                    entry.table, entry.row, key=entry.key, origin=ORIGIN, ts_ms=entry.ts_ms
                )
        except EnvelopeError as exc:
            raise BadEntry(entry.seq, entry.table, exc.reason, _raw(entry)) from None

    def _observe(self) -> None:
        if time.monotonic() >= self._next_drift_check:
            self._next_drift_check = time.monotonic() + DRIFT_CHECK_S
            drift = find_drift(self.mapping, self.log.source)
            CAPTURE_DRIFT.set(len(drift))
            for item in drift:
                _log.warning("capture drift: writes may not be captured", problem=str(item))
        state = self.log.state()
        RELAY_LOG_DEPTH.set(state.depth)
        RELAY_LAG.set(state.lag_s)

    def _release(self) -> None:
        try:
            self.lease.release()
        except D1cdcError as exc:
            _log.warning("could not release the relay lease; it expires by itself", error=str(exc))
        self.health.assigned = False


def _raw(entry: LogEntry) -> dict[str, object]:
    return {
        "seq": entry.seq,
        "tbl": entry.table,
        "op": entry.op,
        "pk": repr(entry.key),
        "row": None if entry.row is None else repr(entry.row),
        "ts_ms": entry.ts_ms,
    }
