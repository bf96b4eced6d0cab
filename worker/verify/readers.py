"""Keyset chunk readers for both sides of verify. Never OFFSET: `WHERE key > last ORDER BY key`.

The source side speaks SQLite SQL through the producers' `Source` (a local SQLite file, or
the D1 HTTP API, which allows at most 100 bound parameters per query); the target side is
SQLAlchemy Core over the MySQL engine. Identifiers come only from the mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.chunking import chunks
from worker.schema.mapping import TableMapping
from worker.sources.base import Row, Source, quote_sqlite, rows_by_keys


class SourceChunks:
    """Reads a source table in primary-key order, `limit` rows at a time."""

    def __init__(self, source: Source, table: TableMapping) -> None:
        self.source = source
        self.table = table
        cols = ", ".join(quote_sqlite(c) for c in table.column_names)
        self._pk = ", ".join(quote_sqlite(k) for k in table.primary_key)
        self._select = f"SELECT {cols} FROM {quote_sqlite(table.name)}"

    def after(
        self,
        last_key: Sequence[Any] | None,
        limit: int | None,
        upto: Sequence[Any] | None = None,
    ) -> list[Row]:
        """Rows with a key after `last_key` (and up to `upto`, inclusive), at most `limit`."""
        where: list[str] = []
        params: list[Any] = []
        for bound, op in ((last_key, ">"), (upto, "<=")):
            if bound is not None:
                where.append(f"({self._pk}) {op} ({', '.join('?' for _ in bound)})")
                params += bound
        sql = self._select + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += f" ORDER BY {self._pk}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self.source.query(sql, params)

    def by_keys(self, keys: Sequence[Sequence[Any]]) -> list[Row]:
        return rows_by_keys(
            self.source, self.table.name, self.table.primary_key, [tuple(k) for k in keys]
        )


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
            for batch in chunks(keys, 1000):
                if len(self._pk) == 1:
                    cond = self._pk[0].in_([k[0] for k in batch])
                else:
                    cond = sa.tuple_(*self._pk).in_([tuple(k) for k in batch])
                rows += [tuple(r) for r in conn.execute(sa.select(self._t).where(cond))]
        return rows
