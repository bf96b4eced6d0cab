"""The change log in the source (`_d1cdc_changes`) and the relay's lease, as I/O on a source.

Entries are read in `seq` order: `AUTOINCREMENT` on a single-writer database (D1 is one
thread per database) is commit order. They are deleted only after Kafka acknowledged them,
and only while this relay holds the lease, in the same statement, so a relay that lost its
lease (a stall longer than the lease) can never delete what the new holder has not shipped.

Entry values are the JSON the capture triggers write (`producers.capture_sql`): scalars as
themselves, `{"$hex"}` for a BLOB, `{"$real"}` (17 significant digits) for a REAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from producers.capture_sql import CHANGES_TABLE, LEASE_TABLE, NOW_MS
from worker.envelope import Op, parse_json
from worker.errors import EnvelopeError, ServiceError
from worker.sources.base import Row, WritableSource, quote_sqlite

_CHANGES = quote_sqlite(CHANGES_TABLE)
_LEASE = quote_sqlite(LEASE_TABLE)


@dataclass(frozen=True)
class LogEntry:
    seq: int
    table: str
    op: Op
    key: dict[str, Any]
    row: dict[str, Any] | None
    ts_ms: int


class BadEntry(EnvelopeError):
    """A change-log entry the relay cannot turn into an event (it is dead-lettered)."""

    def __init__(self, seq: int, table: str, reason: str, raw: Row) -> None:
        super().__init__(f"change-log entry {seq} of table {table!r}: {reason}")
        self.seq = seq
        self.raw = raw


def decode_value(value: Any) -> Any:
    """A trigger-written JSON value back to its SQLite value, exactly."""
    if isinstance(value, dict):
        if set(value) == {"$hex"}:
            return bytes.fromhex(value["$hex"])
        if set(value) == {"$real"}:
            return float(value["$real"])
        raise ValueError(f"unexpected object {sorted(value)}")
    return value


def decode_entry(raw: Row) -> LogEntry:
    seq, table = int(raw["seq"]), str(raw["tbl"])
    try:
        op = raw["op"]
        if op not in ("upsert", "delete"):
            raise ValueError(f"unknown op {op!r}")
        key = {k: decode_value(v) for k, v in _object(raw["pk"]).items()}
        row_text = raw["row"]
        row = (
            None if row_text is None else {k: decode_value(v) for k, v in _object(row_text).items()}
        )
        return LogEntry(seq, table, op, key, row, int(raw["ts_ms"]))
    except (ValueError, TypeError, KeyError, EnvelopeError) as exc:
        raise BadEntry(seq, table, str(exc), raw) from None


def _object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ValueError("not JSON text")
    value = parse_json(text.encode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True)
class LogState:
    depth: int
    oldest_ts_ms: int | None
    now_ms: int

    @property
    def lag_s(self) -> float:
        return 0.0 if self.oldest_ts_ms is None else max(0, self.now_ms - self.oldest_ts_ms) / 1000


class ChangeLog:
    def __init__(self, source: WritableSource) -> None:
        self.source = source

    def read(self, limit: int) -> list[Row]:
        """The oldest `limit` entries, raw (decode each with `decode_entry`)."""
        return self.source.query(
            f'SELECT "seq", "tbl", "op", "pk", "row", "ts_ms" FROM {_CHANGES} '
            'ORDER BY "seq" LIMIT ?',
            [limit],
        )

    def delete_through(self, seq: int, owner: str) -> int:
        """Delete entries up to `seq`, only while `owner` holds an unexpired lease."""
        return self.source.execute(
            f'DELETE FROM {_CHANGES} WHERE "seq" <= ? AND EXISTS (SELECT 1 FROM {_LEASE} '
            f'WHERE "id" = 1 AND "owner" = ? AND "expires_ms" > {NOW_MS})',
            [seq, owner],
        )

    def state(self) -> LogState:
        row = self.source.query(
            f'SELECT count(*) AS "depth", min("ts_ms") AS "oldest", {NOW_MS} AS "now" '
            f"FROM {_CHANGES}"
        )[0]
        oldest = row["oldest"]
        return LogState(int(row["depth"]), None if oldest is None else int(oldest), int(row["now"]))


class LeaseHeld(ServiceError):
    """Another relay ships this database's log; two would interleave."""


class RelayLease:
    """One relay per database: a row in the source with an owner and an expiry on D1's
    clock, taken when free or expired, renewed every cycle, released on a clean stop."""

    def __init__(self, source: WritableSource, owner: str, ttl_s: float) -> None:
        self.source = source
        self.owner = owner
        self.ttl_ms = int(ttl_s * 1000)

    def acquire(self) -> None:
        """Take or renew the lease; raise `LeaseHeld` naming the holder when it is taken."""
        self.source.execute(
            f'INSERT INTO {_LEASE} ("id", "owner", "expires_ms") VALUES (1, ?, {NOW_MS} + ?) '
            'ON CONFLICT ("id") DO UPDATE SET "owner" = excluded."owner", '
            '"expires_ms" = excluded."expires_ms" '
            f'WHERE {_LEASE}."owner" = excluded."owner" OR {_LEASE}."expires_ms" <= {NOW_MS}',
            [self.owner, self.ttl_ms],
        )
        rows = self.source.query(
            f'SELECT "owner", "expires_ms" - {NOW_MS} AS "left_ms" FROM {_LEASE} WHERE "id" = 1'
        )
        if not rows or rows[0]["owner"] != self.owner:
            holder, left_ms = (rows[0]["owner"], int(rows[0]["left_ms"])) if rows else ("?", 0)
            raise LeaseHeld(
                f"another relay ({holder}) ships the change log of "
                f"{self.source.name}; its lease expires in {left_ms / 1000:.0f} s "
                "(only one relay per database: stop the other one, or wait)"
            )

    def release(self) -> None:
        self.source.execute(f'DELETE FROM {_LEASE} WHERE "owner" = ?', [self.owner])
