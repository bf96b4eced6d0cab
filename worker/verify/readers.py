"""Keyset chunk readers for both sides of verify. Never OFFSET: `WHERE key > last ORDER BY key`.

The source side speaks SQLite SQL through any `SourceQuery` (a local SQLite file, or the
D1 HTTP API, which allows at most 100 bound parameters per query); the target side is
SQLAlchemy Core over the MySQL engine. Identifiers come only from the mapping.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.errors import ServiceError
from worker.schema.mapping import TableMapping

SourceQuery = Callable[[str, Sequence[Any]], list[dict[str, Any]]]
D1_MAX_PARAMS = 100


def quote_sqlite(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_query(path: Path) -> SourceQuery:
    """A read-only `SourceQuery` over a local SQLite file (one connection, reused)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ServiceError(f"source file {path} cannot be opened: {exc}") from None
    conn.row_factory = sqlite3.Row

    def query(sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return [dict(row) for row in conn.execute(sql, tuple(params))]

    return query


class SourceChunks:
    """Reads a source table in primary-key order, `limit` rows at a time."""

    def __init__(self, query: SourceQuery, table: TableMapping) -> None:
        self.query = query
        self.table = table
        cols = ", ".join(quote_sqlite(c) for c in table.column_names)
        self._pk = ", ".join(quote_sqlite(k) for k in table.primary_key)
        self._select = f"SELECT {cols} FROM {quote_sqlite(table.name)}"

    def after(self, last_key: Sequence[Any] | None, limit: int) -> list[dict[str, Any]]:
        if last_key is None:
            return self.query(f"{self._select} ORDER BY {self._pk} LIMIT ?", [limit])
        marks = ", ".join("?" for _ in last_key)
        return self.query(
            f"{self._select} WHERE ({self._pk}) > ({marks}) ORDER BY {self._pk} LIMIT ?",
            [*last_key, limit],
        )

    def by_keys(self, keys: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        width = len(self.table.primary_key)
        per_query = max(1, D1_MAX_PARAMS // width)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(keys), per_query):
            batch = keys[start : start + per_query]
            tuples = ", ".join("(" + ", ".join("?" for _ in range(width)) + ")" for _ in batch)
            where = f"({self._pk}) IN (VALUES {tuples})"
            rows += self.query(f"{self._select} WHERE {where}", [v for k in batch for v in k])
        return rows


class TargetChunks:
    """Reads a target table's rows by primary-key range, values in mapping column order."""

    def __init__(self, engine: Engine, table: TableMapping) -> None:
        self.engine = engine
        self.table = table
        self._t = sa.table(table.name, *(sa.column(c) for c in table.column_names))
        self._pk = [self._t.c[k] for k in table.primary_key]

    def _key_expr(self) -> Any:
        return self._pk[0] if len(self._pk) == 1 else sa.tuple_(*self._pk)

    def _value(self, key: Sequence[Any]) -> Any:
        return key[0] if len(self._pk) == 1 else sa.tuple_(*(sa.literal(v) for v in key))

    def between(
        self, low: Sequence[Any] | None, high: Sequence[Any] | None, limit: int | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows with low < key <= high (either bound may be open), in key order."""
        stmt = sa.select(self._t).order_by(*self._pk)
        if low is not None:
            stmt = stmt.where(self._key_expr() > self._value(low))
        if high is not None:
            stmt = stmt.where(self._key_expr() <= self._value(high))
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt)]

    def by_keys(self, keys: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 1000):
                batch = keys[start : start + 1000]
                if len(self._pk) == 1:
                    cond = self._pk[0].in_([k[0] for k in batch])
                else:
                    cond = sa.tuple_(*self._pk).in_([tuple(k) for k in batch])
                rows += [tuple(r) for r in conn.execute(sa.select(self._t).where(cond))]
        return rows
