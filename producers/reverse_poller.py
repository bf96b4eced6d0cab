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

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producers.backfill import Backfill, BackfillOptions, ProgressSink
from producers.deletes import find_keys_gone_from_target
from producers.emitter import ChangeEmitter
from producers.keyset import MYSQL, Watermark
from producers.reverse_events import REVERSE_ORIGIN
from producers.watermarks import REVERSE_PREFIX, WatermarkStore
from worker.schema.mapping import TableMapping
from worker.schema.unconvert import unconvert_row
from worker.sources.base import Source, quote_ident
from worker.sources.mysql import MySQLSource


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
        )
        self.replica = replica

    def _emit_row(self, table: TableMapping, row: dict[str, Any], read_ms: int) -> None:
        source_row = unconvert_row(table, row)
        key = {c: source_row[c] for c in table.primary_key}
        self.emitter.upsert(table.name, source_row, key=key, origin=self.origin, ts_ms=read_ms)

    def _deleted_keys(self, table: TableMapping) -> list[tuple[Any, ...]]:
        return find_keys_gone_from_target(self.replica, self.target, table)

    def _replica_has_rows(self, table: TableMapping) -> bool:
        rows = self.replica.query(f"SELECT 1 AS one FROM {quote_ident(table.name)} LIMIT 1")
        return bool(rows)


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
        rows = reader.query(f"SELECT max({version}) AS v FROM {MYSQL.quote(table.name)}")
        marks[table.name] = Watermark("incremental", version=rows[0]["v"] if rows else None)
    return marks


def unread_rows(mysql: Engine, table: TableMapping, mark: Watermark | None) -> int | None:
    """Rows of `table` MySQL holds at a version newer than the reverse poller has read and
    Kafka acknowledged (0: the poller is current); None when a watermark cannot say (a
    table without a version column is re-read whole every cycle)."""
    if not table.version_columns or not sa.inspect(mysql).has_table(table.name):
        return None
    name, version = MYSQL.quote(table.name), MYSQL.quote(table.version_columns[0])
    if mark is None or mark.phase != "incremental":
        rows = MySQLSource(mysql).query(f"SELECT count(*) AS n FROM {name}")
    elif mark.version is None:
        rows = MySQLSource(mysql).query(
            f"SELECT count(*) AS n FROM {name} WHERE {version} IS NOT NULL"
        )
    else:
        rows = MySQLSource(mysql).query(
            f"SELECT count(*) AS n FROM {name} WHERE {version} > %s", (mark.version,)
        )
    return int(rows[0]["n"])
