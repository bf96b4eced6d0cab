"""The SQLite-file source: a D1 export or wrangler's local state file, opened read-only."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker.errors import ConfigError, ServiceError
from worker.sources.base import Row, check_param_count


class SqliteSource:
    """Access to an SQLite file; safe to read while an application writes to it.

    Read-only unless `writable` (capture install, the relay, which deletes shipped
    change-log entries, and the D1 sink of the reverse pipeline): the poller and the
    verifier must never write to the app's data.
    """

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        if not path.is_file():
            raise ConfigError(f"source file {path} (D1CDC_SOURCE_PATH) does not exist")
        self.name = f"sqlite:{path}"
        mode = "rw" if writable else "ro"
        self._conn = sqlite3.connect(
            f"file:{path}?mode={mode}", uri=True, check_same_thread=False, timeout=30
        )
        self._conn.row_factory = sqlite3.Row

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        check_param_count(params)
        try:
            cursor = self._conn.execute(sql, tuple(params))
            rows = [dict(r) for r in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise ServiceError(f"source query failed on {self.name}: {exc}") from None
        # End the implicit read transaction so the next query sees newer commits.
        self._conn.commit()
        return rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one writing statement in its own transaction; the number of rows changed."""
        check_param_count(params)
        try:
            cursor = self._conn.execute(sql, tuple(params))
            self._conn.commit()
        except sqlite3.Error as exc:
            self._conn.rollback()
            raise ServiceError(f"source statement failed on {self.name}: {exc}") from None
        return cursor.rowcount

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run `statements` in one transaction, all or nothing, like D1's `batch()`; the rows
        changed by each. `BEGIN IMMEDIATE` takes the write lock first, so a concurrent
        writer makes it wait (up to the 30 s busy timeout), never fail halfway."""
        for _sql, params in statements:
            check_param_count(params)
        changes = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                changes.append(self._conn.execute(sql, tuple(params)).rowcount)
            self._conn.commit()
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise ServiceError(f"source batch failed on {self.name}: {exc}") from None
        return changes

    def close(self) -> None:
        self._conn.close()
