"""A stand-in for the user's app: random inserts, updates and deletes on the demo D1
database, each emitted through the producer shim after its commit — the way the real app
wraps Drizzle's writes. Used by the demo (`d1cdc demo`) and the live-writer tests.

It also makes the writes that watermark polling alone would get wrong, so backfill and
the version guard are exercised: many writes per second share one `updatedAt` (Drizzle
stores seconds), some `updatedAt` values are set a few seconds in the past (a late
commit), and a share of updates are *not* emitted (a write that bypassed the shim, which
only `backfill --follow` can catch).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from worker.demo.catalog import DEMO_TABLES
from worker.demo.model import DemoColumn, DemoTable
from worker.demo.values import cuid_like
from worker.sources.base import quote_sqlite

# How far in the past a "late" write's updatedAt may lie. Per row it never goes backwards
# (`max(updatedAt, ?)`): writes to one row are serialised by the database, and the version
# guard orders a row's writes by (updatedAt, updateCounter) — see README, "Versions".
LATE_COMMIT_S = 3


class Emitter(Protocol):
    def upsert(self, table: str, row: Mapping[str, Any]) -> None: ...

    def delete(
        self, table: str, key: Mapping[str, Any], before: Mapping[str, Any] | None = None
    ) -> None: ...

    def poll(self, timeout: float = 0.0) -> None: ...


@dataclass
class WriterStats:
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    unemitted: int = 0  # updates that bypassed the shim on purpose
    per_table: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.inserts + self.updates + self.deletes


def _writable(tables: tuple[DemoTable, ...]) -> tuple[list[DemoTable], list[DemoTable]]:
    """(tables with an `id` and version columns, those of them nothing references)."""
    referenced = {c.ref for t in tables for c in t.columns if c.ref}
    versioned = [t for t in tables if t.prefix and t.versioned]
    return versioned, [t for t in versioned if t.name not in referenced]


class DemoApp:
    def __init__(
        self,
        path: Path,
        emitter: Emitter,
        *,
        seed: int = 1,
        unemitted_share: float = 0.1,
        late_share: float = 0.1,
    ) -> None:
        # WAL: the backfill poller reads while we write (the mode persists in the file).
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.emitter = emitter
        self.rng = random.Random(seed)
        self.unemitted_share = unemitted_share
        self.late_share = late_share
        self.tables, self.leaves = _writable(DEMO_TABLES)
        self.stats = WriterStats()
        self._serial = 0

    # -- one write ---------------------------------------------------------------------

    def _now(self) -> int:
        now = int(time.time())
        if self.rng.random() < self.late_share:
            return now - self.rng.randint(1, LATE_COMMIT_S)
        return now

    def _random_id(self, table: str) -> str | None:
        row = self.conn.execute(
            f"SELECT id FROM {quote_sqlite(table)} ORDER BY random() LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])

    def _value(self, table: DemoTable, column: DemoColumn) -> Any:
        if column.ref:
            return self._random_id(column.ref)
        if column.name == "id":
            return cuid_like(table.prefix, self.rng)
        if column.name in ("createdAt", "updatedAt"):
            return self._now()
        if column.name == "updateCounter":
            return 0
        assert column.generate is not None
        # A large row index keeps index-derived unique values (emails) clear of existing ones.
        self._serial += 1
        return column.generate(self.rng, 10_000_000 + self._serial * 7919)

    def _read(self, table: str, row_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            f"SELECT * FROM {quote_sqlite(table)} WHERE id = ?", (row_id,)
        ).fetchone()
        return dict(row)

    def insert(self, table: DemoTable) -> None:
        row = {c.name: self._value(table, c) for c in table.all_columns}
        if any(row[c.name] is None and not c.nullable for c in table.all_columns):
            return  # a parent table is empty: nothing to reference yet
        names = ", ".join(quote_sqlite(n) for n in row)
        marks = ", ".join("?" for _ in row)
        try:
            self.conn.execute(
                f"INSERT INTO {quote_sqlite(table.name)} ({names}) VALUES ({marks})",
                tuple(row.values()),
            )
        except sqlite3.IntegrityError:
            return  # a random composite/unique value collided: the app would retry
        self.emitter.upsert(table.name, self._read(table.name, row["id"]))
        self.stats.inserts += 1

    def update(self, table: DemoTable) -> None:
        row_id = self._random_id(table.name)
        candidates = [c for c in table.columns if c.generate is not None and not c.ref]
        if row_id is None or not candidates:
            return
        column = self.rng.choice(candidates)
        try:
            self.conn.execute(
                f"UPDATE {quote_sqlite(table.name)} SET {quote_sqlite(column.name)} = ?, "
                '"updatedAt" = max("updatedAt", ?), '
                '"updateCounter" = coalesce("updateCounter", 0) + 1 '
                "WHERE id = ?",
                (self._value(table, column), self._now(), row_id),
            )
        except sqlite3.IntegrityError:
            return
        if self.rng.random() < self.unemitted_share:
            self.stats.unemitted += 1
        else:
            self.emitter.upsert(table.name, self._read(table.name, row_id))
        self.stats.updates += 1

    def delete(self, table: DemoTable) -> None:
        row_id = self._random_id(table.name)
        if row_id is None:
            return
        before = self._read(table.name, row_id)
        self.conn.execute(f"DELETE FROM {quote_sqlite(table.name)} WHERE id = ?", (row_id,))
        self.emitter.delete(table.name, {"id": row_id}, before)
        self.stats.deletes += 1

    def step(self) -> None:
        """One random write: 50 % update, 35 % insert, 15 % delete (of a leaf table)."""
        roll = self.rng.random()
        if roll < 0.15 and self.leaves:
            table = self.rng.choice(self.leaves)
            self.delete(table)
        else:
            table = self.rng.choice(self.tables)
            (self.update if roll < 0.65 else self.insert)(table)
        self.stats.per_table[table.name] = self.stats.per_table.get(table.name, 0) + 1
        self.emitter.poll(0)

    def run(self, seconds: float, rate: float, stop: threading.Event | None = None) -> WriterStats:
        """About `rate` writes per second for `seconds` (or until `stop` is set)."""
        deadline = time.monotonic() + seconds
        interval = 1.0 / rate
        next_at = time.monotonic()
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            self.step()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the writer, not waiting for a condition
        return self.stats

    def close(self) -> None:
        self.conn.close()
