"""Read the schema of an SQLite source file: tables, columns, indexes, foreign keys.

The file is opened read-only through a `file:` URI (`mode=ro`), so introspecting a live
`wrangler dev` state file can never write to it. Everything returned is plain data.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import SchemaError, ServiceError
from worker.sources.base import quote_sqlite as quote_sqlite

# Tables D1, SQLite and Drizzle keep for themselves; they are not application data.
INTERNAL_TABLE_PATTERNS = ("sqlite_*", "_cf_*", "d1_migrations", "__drizzle_migrations")


@dataclass(frozen=True)
class SourceColumn:
    name: str
    declared_type: str  # as PRAGMA table_info reports it, e.g. "INTEGER", "text", "" (none)
    not_null: bool
    default: str | None  # the DEFAULT expression verbatim, e.g. "CURRENT_TIMESTAMP", "0"
    pk_position: int  # 1-based position in the primary key; 0 when not part of it


@dataclass(frozen=True)
class SourceIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool
    origin: str  # "c" = CREATE INDEX, "u" = UNIQUE constraint, "pk" = PRIMARY KEY


@dataclass(frozen=True)
class SourceForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]  # empty when the FK names only the table (its PK is meant)


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[SourceColumn, ...]
    indexes: tuple[SourceIndex, ...]
    foreign_keys: tuple[SourceForeignKey, ...]

    @property
    def primary_key(self) -> tuple[str, ...]:
        keyed = sorted((c for c in self.columns if c.pk_position), key=lambda c: c.pk_position)
        return tuple(c.name for c in keyed)

    def column(self, name: str) -> SourceColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise SchemaError(f"source table {self.name!r} has no column {name!r}")


@contextmanager
def open_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the SQLite file at `path`."""
    if not path.is_file():
        raise SchemaError(f"source SQLite file {path} (D1CDC_SOURCE_PATH) does not exist")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ServiceError(f"cannot open source SQLite file {path}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def is_selected(
    name: str,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    *,
    skip_internal: bool = True,
) -> bool:
    """Whether table `name` is replicated: glob patterns; exclude wins over include."""
    include, exclude = tuple(include), tuple(exclude)
    if skip_internal and any(fnmatch.fnmatchcase(name, p) for p in INTERNAL_TABLE_PATTERNS):
        return False
    if include and not any(fnmatch.fnmatchcase(name, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in exclude)


def table_names(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _columns(conn: sqlite3.Connection, table: str) -> tuple[SourceColumn, ...]:
    rows = conn.execute(f"PRAGMA table_info({quote_sqlite(table)})").fetchall()
    return tuple(
        SourceColumn(
            name=name,
            declared_type=str(declared or ""),
            not_null=bool(notnull),
            default=None if default is None else str(default),
            pk_position=int(pk),
        )
        for _cid, name, declared, notnull, default, pk in rows
    )


def _indexes(conn: sqlite3.Connection, table: str) -> tuple[SourceIndex, ...]:
    indexes = []
    for _seq, name, unique, origin, partial in conn.execute(
        f"PRAGMA index_list({quote_sqlite(table)})"
    ).fetchall():
        if partial:
            continue  # a partial index (WHERE …) has no MySQL equivalent; not replicated
        info = conn.execute(f"PRAGMA index_info({quote_sqlite(name)})").fetchall()
        columns = tuple(str(r[2]) for r in sorted(info, key=lambda r: r[0]) if r[2] is not None)
        if len(columns) == len(info):  # skip expression indexes (a column name of NULL)
            indexes.append(SourceIndex(str(name), columns, bool(unique), str(origin)))
    return tuple(sorted(indexes, key=lambda i: i.name))


def _foreign_keys(conn: sqlite3.Connection, table: str) -> tuple[SourceForeignKey, ...]:
    groups: dict[int, list[Any]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({quote_sqlite(table)})").fetchall():
        groups.setdefault(int(row[0]), []).append(row)
    keys = []
    for _fk_id, rows in sorted(groups.items()):
        rows.sort(key=lambda r: r[1])
        ref_columns = tuple(str(r[4]) for r in rows if r[4] is not None)
        keys.append(SourceForeignKey(tuple(str(r[3]) for r in rows), str(rows[0][2]), ref_columns))
    return tuple(keys)


def read_table(conn: sqlite3.Connection, name: str) -> SourceTable:
    return SourceTable(name, _columns(conn, name), _indexes(conn, name), _foreign_keys(conn, name))


def introspect(
    conn: sqlite3.Connection,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    skip_internal: bool = True,
) -> list[SourceTable]:
    """Every selected table of the source, by name."""
    include, exclude = tuple(include), tuple(exclude)
    return [
        read_table(conn, name)
        for name in table_names(conn)
        if is_selected(name, include, exclude, skip_internal=skip_internal)
    ]


def introspect_file(
    path: Path, *, include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[SourceTable]:
    with open_readonly(path) as conn:
        return introspect(conn, include=include, exclude=exclude)


# -- sampling, for inference ------------------------------------------------------------------


def sample_values(
    conn: sqlite3.Connection, table: str, column: str, limit: int = 1000
) -> list[tuple[str, Any]]:
    """Up to `limit` non-NULL values of a column with their storage class (`typeof()`)."""
    col = quote_sqlite(column)
    rows = conn.execute(
        f"SELECT typeof({col}), {col} FROM {quote_sqlite(table)} WHERE {col} IS NOT NULL LIMIT ?",
        (limit,),
    ).fetchall()
    return [(str(kind), value) for kind, value in rows]


def max_text_length(conn: sqlite3.Connection, table: str, column: str) -> int:
    """Longest text value of a column in characters over the whole table (0 when none)."""
    col = quote_sqlite(column)
    value = conn.execute(
        f"SELECT max(length({col})) FROM {quote_sqlite(table)} WHERE typeof({col}) = 'text'"
    ).fetchone()
    return int(value[0] or 0) if value else 0
