"""Pure keyset paging: where a table's scan stands, and the SQL for its next page.

Never OFFSET: each page starts strictly after the last (version, primary key) seen, so a
page costs the same at row 10 and at row 10 million, and concurrent inserts cannot shift
rows between pages. Comparisons happen in SQLite on the source's own representation
(Unix seconds, milliseconds or text), with SQLite's row-value ordering; the reverse poller
pages MySQL the same way (`MYSQL` dialect), its versions being `DATETIME(3)` values.

A table's scan goes through phases:

- `snapshot` (tables with a version column, first run): page by primary key — cheap on
  the rowid/PK index — after noting `snapshot_high`, the highest version before it began;
- `incremental`: page by (version, primary key) from `lookback_floor(watermark)`; rows
  changed during the snapshot have versions ≥ `snapshot_high` - lookback and are re-read;
- `scan` (tables without a version column): a full primary-key pass every cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from worker.schema.ddl import quote_mysql
from worker.schema.infer import MS_THRESHOLD  # above: ms, even in a seconds column
from worker.schema.mapping import TableMapping
from worker.sources.base import quote_sqlite

Phase = Literal["snapshot", "incremental", "scan"]


@dataclass(frozen=True)
class Dialect:
    """How a page's SQL names things and binds values: the forward poller reads SQLite (D1),
    the reverse poller (issue 16) reads MySQL with the same algorithm."""

    quote: Callable[[str], str]
    mark: str  # one bound parameter


def _mysql_ident(name: str) -> str:
    # PyMySQL formats the statement with `%` whenever parameters are given: a literal `%`
    # in a name must be doubled to survive it.
    return quote_mysql(name).replace("%", "%%")


SQLITE = Dialect(quote_sqlite, "?")
MYSQL = Dialect(_mysql_ident, "%s")


@dataclass(frozen=True)
class Watermark:
    """How far a table's scan got; persisted after Kafka acknowledged every row up to it."""

    phase: Phase
    pk: tuple[Any, ...] | None = None  # last primary key emitted in this phase
    version: Any = None  # incremental: version of the last row emitted
    snapshot_high: Any = None  # snapshot: max(version) read before it started
    rows_emitted: int = 0

    def advanced(self, last_row: dict[str, Any], table: TableMapping, count: int) -> Watermark:
        pk = tuple(last_row[c] for c in table.primary_key)
        version = last_row[table.version_columns[0]] if self.phase == "incremental" else None
        return replace(self, pk=pk, version=version, rows_emitted=self.rows_emitted + count)


def start_watermark(table: TableMapping) -> Watermark:
    return Watermark("snapshot" if table.version_columns else "scan")


def lookback_floor(version: Any, kind: str, seconds: float) -> Any:
    """`version` moved back by `seconds`, in the same representation (int s/ms or text).

    Integer versions that are not timestamps (a plain counter) have no time axis: they are
    returned unchanged, so the re-read starts at the watermark's own version (ties re-read).
    """
    if seconds <= 0 or version is None or isinstance(version, bool):
        return version
    if isinstance(version, int | float):
        if kind == "timestamp_ms" or (kind.startswith("timestamp") and version > MS_THRESHOLD):
            return version - int(seconds * 1000)
        if kind.startswith("timestamp"):
            return version - int(seconds)
        return version
    if isinstance(version, datetime):  # MySQL's DATETIME(3), read by the reverse poller
        return version - timedelta(seconds=seconds)
    if isinstance(version, str):
        try:
            moment = datetime.fromisoformat(version)
        except ValueError:
            return version  # not a date: compare from the watermark itself
        earlier = moment - timedelta(seconds=seconds)
        if "T" in version:
            return earlier.isoformat()
        return earlier.strftime("%Y-%m-%d %H:%M:%S")
    return version


@dataclass(frozen=True)
class Page:
    sql: str
    params: tuple[Any, ...]


def _row_value(columns: Sequence[str], dialect: Dialect) -> str:
    quoted = [dialect.quote(c) for c in columns]
    return quoted[0] if len(quoted) == 1 else "(" + ", ".join(quoted) + ")"


def _placeholders(count: int, dialect: Dialect) -> str:
    marks = [dialect.mark] * count
    return marks[0] if count == 1 else "(" + ", ".join(marks) + ")"


def next_page(
    table: TableMapping,
    mark: Watermark,
    limit: int,
    *,
    floor: Any = None,
    first: bool = False,
    columns: Sequence[str] | None = None,
    dialect: Dialect = SQLITE,
) -> Page:
    """The SELECT for the page after `mark`: every column, or only `columns`.

    In the incremental phase the first page of a cycle starts at `floor` (the watermark's
    version minus the lookback), inclusive; later pages continue after (version, pk).
    """
    q, mark_sql = dialect.quote, dialect.mark
    name = q(table.name)
    selected = ", ".join(q(c) for c in columns) if columns else "*"
    head = f"SELECT {selected} FROM {name}"
    limit_sql = f"LIMIT {mark_sql}"
    pk = table.primary_key
    if mark.phase in ("snapshot", "scan"):
        order = ", ".join(q(c) for c in pk)
        if mark.pk is None:
            return Page(f"{head} ORDER BY {order} {limit_sql}", (limit,))
        where = f"{_row_value(pk, dialect)} > {_placeholders(len(pk), dialect)}"
        return Page(f"{head} WHERE {where} ORDER BY {order} {limit_sql}", (*mark.pk, limit))
    version_col = table.version_columns[0]
    order_cols = (version_col, *pk)
    order = ", ".join(q(c) for c in order_cols)
    v = q(version_col)
    if first or mark.pk is None:
        params: tuple[Any, ...] = ()
        if floor is None:
            where = f"{v} IS NOT NULL"
        else:
            where, params = f"{v} >= {mark_sql}", (floor,)
        return Page(f"{head} WHERE {where} ORDER BY {order} {limit_sql}", (*params, limit))
    where = f"{_row_value(order_cols, dialect)} > {_placeholders(len(order_cols), dialect)}"
    return Page(
        f"{head} WHERE {where} ORDER BY {order} {limit_sql}",
        (mark.version, *mark.pk, limit),
    )


def unread_count(table: TableMapping, mark: Watermark | None, dialect: Dialect = SQLITE) -> Page:
    """The count of `table`'s rows a poller at `mark` has not read yet: newer than its
    version (incremental), or all of them (no mark, or a first snapshot not finished).
    Only for tables with a version column: without one every cycle re-reads all rows."""
    name = dialect.quote(table.name)
    head = f"SELECT count(*) AS n FROM {name}"
    if mark is None or mark.phase != "incremental":
        return Page(head, ())
    version = dialect.quote(table.version_columns[0])
    if mark.version is None:
        return Page(f"{head} WHERE {version} IS NOT NULL", ())
    return Page(f"{head} WHERE {version} > {dialect.mark}", (mark.version,))
