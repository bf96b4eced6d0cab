"""Chunk checksums computed where the data lives, so equal chunks never cross the wire.

Each row is rendered as one string — the same bytes on both sides when the row agrees —
and a chunk's checksum is (row count, XOR of CRC32 over the rows, XOR of CRC32 over the
rows with a prefix): 64 bits of digest plus the count. MySQL computes its side in SQL;
the source side is rendered by SQLite in SQL and only CRC-ed in Python (zlib, in C).

The rendering follows what the consumer writes: a timestamp becomes milliseconds since
the epoch on both sides, a boolean 0/1, a blob its hex, and so on. Where
the two sides cannot be made to agree byte for byte (a `real` stored as 3.0 in SQLite
renders as `3` in MySQL; MySQL 8 re-serialises JSON; a value of an unexpected storage
class), the checksums differ and the chunk falls back to the row-level diff, which
compares parsed values. So a checksum can only make verify slower, never wrong —
short of a 64-bit collision.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.schema.ddl import quote_mysql
from worker.schema.mapping import ColumnMapping, TableMapping
from worker.sources.base import Source, quote_sqlite

NULL_MARK = "\u2400"  # stands for NULL: CONCAT_WS would silently skip a NULL
SEPARATOR = "\u241f"


@dataclass(frozen=True)
class Checksum:
    rows: int
    crc_a: int
    crc_b: int


def checksum_of(rendered: Sequence[str]) -> Checksum:
    a = b = 0
    for text in rendered:
        data = text.encode("utf-8", "surrogatepass")
        a ^= zlib.crc32(data)
        b ^= zlib.crc32(b"#" + data)
    return Checksum(len(rendered), a, b)


def _sqlite_expr(column: ColumnMapping) -> str:
    c = quote_sqlite(column.name)
    kind = column.type.kind
    unmatched = f"'unmatched:' || {c}"
    if column.type.is_timestamp:
        # Milliseconds since the epoch: integer arithmetic for Drizzle's integer columns
        # (strftime() per value would cost more than the rest of the row).
        integer = {"timestamp_s": f"{c} * 1000", "timestamp_ms": c}.get(kind, unmatched)
        text = f"CAST(round((julianday({c}) - 2440587.5) * 86400000) AS INTEGER)"
        return (
            f"CASE typeof({c}) WHEN 'integer' THEN {integer} WHEN 'text' THEN {text} "
            f"ELSE {unmatched} END"
        )
    if kind == "blob":
        return f"hex({c})"
    if kind == "decimal":
        return f"printf('%.{column.type.scale}f', {c})"
    if kind in ("integer", "bigint", "boolean"):
        return f"CASE typeof({c}) WHEN 'integer' THEN {c} ELSE {unmatched} END"
    return f"CAST({c} AS TEXT)"


def _mysql_expr(column: ColumnMapping) -> str:
    c = quote_mysql(column.name)
    kind = column.type.kind
    if column.type.is_timestamp:
        # Exact for DATETIME(3) over its whole range, and independent of the time zone.
        return f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c}) DIV 1000"
    if kind == "blob":
        return f"HEX({c})"
    # Binary: columns of different collations cannot be concatenated otherwise.
    return f"CAST({c} AS BINARY)"


def _sqlite_row(table: TableMapping) -> str:
    # Not coalesce(): SQLite's hex(NULL) is '' and printf('%.2f', NULL) is '0.00'.
    parts = [
        f"CASE WHEN {quote_sqlite(c.name)} IS NULL THEN '{NULL_MARK}' ELSE {_sqlite_expr(c)} END"
        for c in table.columns.values()
    ]
    return f" || '{SEPARATOR}' || ".join(parts)


def _mysql_row(table: TableMapping) -> str:
    parts = [
        f"COALESCE({_mysql_expr(c)}, CAST('{NULL_MARK}' AS BINARY))" for c in table.columns.values()
    ]
    return f"CONCAT_WS(CAST('{SEPARATOR}' AS BINARY), {', '.join(parts)})"


class SourceRenderer:
    """Source rows of a key range rendered to strings by SQLite, with their keys."""

    def __init__(self, source: Source, table: TableMapping) -> None:
        self.source = source
        self.table = table
        pk = ", ".join(quote_sqlite(k) for k in table.primary_key)
        self._pk = pk
        keys = ", ".join(f"{quote_sqlite(k)} AS k{i}" for i, k in enumerate(table.primary_key))
        self._select = f"SELECT {keys}, {_sqlite_row(table)} AS r FROM {quote_sqlite(table.name)}"

    def after(self, last_key: Sequence[Any] | None, limit: int) -> tuple[list[Any], Checksum]:
        """(the chunk's last raw key or [] when empty, its checksum), `limit` rows at most."""
        if last_key is None:
            rows = self.source.query(f"{self._select} ORDER BY {self._pk} LIMIT ?", [limit])
        else:
            marks = ", ".join("?" for _ in last_key)
            rows = self.source.query(
                f"{self._select} WHERE ({self._pk}) > ({marks}) ORDER BY {self._pk} LIMIT ?",
                [*last_key, limit],
            )
        width = len(self.table.primary_key)
        last = [rows[-1][f"k{i}"] for i in range(width)] if rows else []
        return last, checksum_of([str(r["r"]) for r in rows])


class TargetChecksums:
    """The same checksum, computed by MySQL over a primary-key range."""

    def __init__(self, engine: Engine, table: TableMapping) -> None:
        self.engine = engine
        self.table = table
        pk = [quote_mysql(k) for k in table.primary_key]
        self._key = pk[0] if len(pk) == 1 else f"({', '.join(pk)})"
        self._row = _mysql_row(table)
        self._from = quote_mysql(table.name)

    def _bound(self, name: str, key: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        params = {f"{name}{i}": v for i, v in enumerate(key)}
        marks = [f":{p}" for p in params]
        return (marks[0] if len(marks) == 1 else f"({', '.join(marks)})"), params

    def between(self, low: Sequence[Any] | None, high: Sequence[Any] | None) -> Checksum:
        where, params = [], {}
        if low is not None:
            mark, bound = self._bound("lo", low)
            where.append(f"{self._key} > {mark}")
            params.update(bound)
        if high is not None:
            mark, bound = self._bound("hi", high)
            where.append(f"{self._key} <= {mark}")
            params.update(bound)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = (
            "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(r)), 0), "
            "COALESCE(BIT_XOR(CRC32(CONCAT('#', r))), 0) "
            f"FROM (SELECT {self._row} AS r FROM {self._from}{clause}) AS chunk"
        )
        with self.engine.connect() as conn:
            rows, a, b = conn.execute(sa.text(sql), params).one()
        return Checksum(int(rows), int(a), int(b))
