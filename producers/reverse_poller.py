"""The reverse poller (issue 16): MySQL rows → `origin: "reverse"` events, for D1.

From cut-over until cleanup the app writes to MySQL (PlanetScale) through Drizzle's MySQL
driver, whose `$onUpdate` bumps `updatedAt` on every ORM write. To keep D1 current (so a
rollback loses nothing) this runs the backfill poller's algorithm the other way round —
keyset pages by (version, primary key), the lookback window, acknowledged-before-saved
watermarks, a key-set diff for hard deletes — with three differences:

- the pages are read from MySQL (`producers.keyset.MYSQL`), where versions are DATETIME(3);
- each row is turned back into the source representation (`producers.reverse_events`,
  `worker.schema.unconvert`) and produced to `{prefix}.reverse.{table}`;
- the delete diff looks for keys D1 still holds that MySQL no longer has.

Its watermarks live next to the forward ones in `_d1cdc_watermarks`, named
`reverse:{table}`. `d1cdc cutover start` writes the first ones — each table's highest
version just before the switch — so the poller ships what changed since, not a copy of
every table (a fresh start without them begins with a snapshot, which is correct but
spends D1's request budget on rows D1 already has).

What it cannot see, like the forward poller: a write that does not bump the version
column (a raw SQL update); tables without a version column are fully re-read each cycle.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producers.backfill import Backfill, BackfillOptions, ProgressSink
from producers.capture_sql import CHANGES_TABLE
from producers.deletes import find_keys_gone_from_target
from producers.emitter import ChangeEmitter
from producers.keyset import MYSQL, Watermark, unread_count
from producers.reverse_events import REVERSE_ORIGIN
from producers.watermarks import REVERSE_PREFIX, WatermarkStore
from worker.errors import ConversionError, UnconvertibleRowError
from worker.logs import get_logger
from worker.schema.mapping import TableMapping
from worker.schema.unconvert import unconvert_row
from worker.sources.base import Source, quote_sqlite
from worker.sources.mysql import MySQLSource

_log = get_logger("d1cdc.reverse")


class ReversePoller(Backfill):
    origin = REVERSE_ORIGIN
    dialect = MYSQL

    def __init__(
        self,
        mysql: Engine,
        replica: Source,
        emitter: ChangeEmitter,
        options: BackfillOptions | None = None,
        *,
        progress: ProgressSink | None = None,
        stop: threading.Event | None = None,
        applied: Callable[[str], Callable[[], bool]] | None = None,
        before_pass: Callable[[], None] | None = None,
    ) -> None:
        """`replica` is D1 (or its SQLite file), read only for the delete diff; `applied`
        as for `Backfill`, but it must also wait for the forward pipeline (a D1 write
        not yet in MySQL looks like a row MySQL deleted)."""
        super().__init__(
            MySQLSource(mysql),
            emitter,
            reverse_watermarks(mysql),
            mysql,
            options,
            progress=progress,
            stop=stop,
            applied=applied,
            before_pass=before_pass,
        )
        self.replica = replica

    def _emit_row(self, table: TableMapping, row: dict[str, Any], read_ms: int) -> None:
        try:
            source_row = unconvert_row(table, row)
        except ConversionError as exc:
            raise unconvertible(self.emitter.topic(table.name), table, row, exc) from None
        key = {c: source_row[c] for c in table.primary_key}
        self.emitter.upsert(table.name, source_row, key=key, origin=self.origin, ts_ms=read_ms)

    def _deleted_keys(self, table: TableMapping) -> list[tuple[Any, ...]]:
        return find_keys_gone_from_target(self.replica, self.target, table)

    def _target_settled(self, table: TableMapping, settled: Callable[[], bool]) -> bool:
        """Also: no D1 write of the table still waits in the capture change log. Such a row
        (written just before the switch, not relayed yet) is in D1 and not in MySQL: the
        diff would delete it from D1 although it was never deleted anywhere."""
        if self._unshipped_writes(table):
            self._warn_unsettled(table.name, "D1 writes of this table wait in the change log")
            return False
        return super()._target_settled(table, settled)

    def _unshipped_writes(self, table: TableMapping) -> int:
        found = self.replica.query(
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
            [CHANGES_TABLE],
        )
        if not found or not found[0]["n"]:
            return 0  # no capture installed: the forward poller's settle check covers it
        rows = self.replica.query(
            f"SELECT count(*) AS n FROM {quote_sqlite(CHANGES_TABLE)} WHERE tbl = ?", [table.name]
        )
        return int(rows[0]["n"])

    def _replica_has_rows(self, table: TableMapping) -> bool:
        rows = self.replica.query(f"SELECT 1 AS one FROM {quote_sqlite(table.name)} LIMIT 1")
        return bool(rows)


def unconvertible(
    topic: str, table: TableMapping, row: dict[str, Any], exc: ConversionError
) -> UnconvertibleRowError:
    """The dead letter of a MySQL row D1's representation cannot hold: its key and the row
    as JSON (values as text), with the converter's reason."""
    key = {c: row.get(c) for c in table.primary_key}
    return UnconvertibleRowError(
        f"reverse: {exc.reason}",
        topic=topic,
        key=json.dumps(key, default=str, sort_keys=True).encode("utf-8"),
        value=json.dumps(row, default=str).encode("utf-8"),
    )


def reverse_watermarks(mysql: Engine) -> WatermarkStore:
    return WatermarkStore(mysql, prefix=REVERSE_PREFIX)


def start_marks(mysql: Engine, tables: list[TableMapping]) -> dict[str, Watermark]:
    """Each table's reverse start position, taken just before writes switch to MySQL: the
    highest version there now (the forward pipeline has brought MySQL level with D1), so
    the first cycle re-reads only the lookback window below it. Tables without a version
    column start a full scan, as they always do."""
    reader = MySQLSource(mysql)
    marks = {}
    for table in tables:
        if not table.version_columns:
            marks[table.name] = Watermark("scan")
            continue
        version = MYSQL.quote(table.version_columns[0])
        rows = reader.query(
            f"SELECT max({version}) AS v, NOW(3) AS now FROM {MYSQL.quote(table.name)}"
        )
        high, now = rows[0]["v"], rows[0]["now"]
        if isinstance(high, datetime) and high > now:
            # One future-dated row (bad data carried over) would otherwise put every write
            # after the switch below the mark minus the lookback: never shipped.
            _log.warning(
                "rows are dated in the future; the reverse start mark is now instead",
                table=table.name,
                newest=str(high),
            )
            high = now
        marks[table.name] = Watermark("incremental", version=high)
    return marks


def unread_rows(mysql: Engine, table: TableMapping, mark: Watermark | None) -> int | None:
    """Rows of `table` MySQL holds at a version newer than the reverse poller has read and
    Kafka acknowledged (0: the poller is current); None when a watermark cannot say (a
    table without a version column is re-read whole every cycle)."""
    if not table.version_columns or not sa.inspect(mysql).has_table(table.name):
        return None
    page = unread_count(table, mark, MYSQL)
    return int(MySQLSource(mysql).query(page.sql, page.params)[0]["n"])
