"""Write the demo D1 database: an SQLite file shaped like the user's Drizzle app.

The DDL is what drizzle-kit writes for SQLite (backtick identifiers, `text`/`integer`/
`real`/`blob`, FOREIGN KEY clauses, separate CREATE INDEX statements), plus the internal
tables a real D1 database has (`d1_migrations`, `_cf_KV`). Rows are inserted with
`executemany` in one transaction per table: 1M rows take well under a minute.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.demo.catalog import DEMO_TABLES, INTERNAL_TABLES_SQL
from worker.demo.model import DemoColumn, DemoTable
from worker.demo.values import cuid_like
from worker.errors import ConfigError

# scale=1.0 gives ~5.8k rows (fast tests); BENCHMARK_SCALE gives ≥ 1M rows.
BENCHMARK_SCALE = 175.0
_CHUNK = 20_000  # rows per executemany call: bounded memory at any scale
_UPDATED_AFTER_CREATED_MAX_S = 30_000_000  # updatedAt lands within ~1 year after createdAt


@dataclass
class DemoReport:
    path: Path
    seed: int
    scale: float
    rows_per_table: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows_per_table.values())


def _q(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _column_ddl(table: DemoTable, column: DemoColumn) -> str:
    parts = [_q(column.name), column.declared]
    if table.primary_key == (column.name,):
        parts.append("PRIMARY KEY")
    if not column.nullable:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    return " ".join(parts)


def create_table_statements(table: DemoTable) -> list[str]:
    """drizzle-kit-style CREATE TABLE and CREATE INDEX statements for one demo table."""
    lines = [_column_ddl(table, c) for c in table.all_columns]
    if len(table.primary_key) > 1:
        lines.append(f"PRIMARY KEY({', '.join(_q(c) for c in table.primary_key)})")
    for column in table.all_columns:
        if column.ref:
            action = "set null" if column.nullable else "cascade"
            lines.append(
                f"FOREIGN KEY ({_q(column.name)}) REFERENCES {_q(column.ref)}(`id`) "
                f"ON UPDATE no action ON DELETE {action}"
            )
    statements = [f"CREATE TABLE {_q(table.name)} (\n\t" + ",\n\t".join(lines) + "\n)"]
    for index in table.indexes:
        unique = "UNIQUE " if index.unique else ""
        columns = ", ".join(_q(c) for c in index.columns)
        statements.append(f"CREATE {unique}INDEX {_q(index.name)} ON {_q(table.name)} ({columns})")
    return statements


def row_count(table: DemoTable, scale: float) -> int:
    return max(1, round(table.rows * scale))


class _RowMaker:
    """Rows of one table; remembers generated ids so children can reference them."""

    def __init__(self, table: DemoTable, rng: random.Random, ids: dict[str, list[str]]) -> None:
        self.table, self.rng, self.ids = table, rng, ids
        self.own_ids: list[str] = []
        self.seen_keys: set[tuple[Any, ...]] = set()

    def _value(self, column: DemoColumn, i: int, row: list[Any]) -> Any:
        rng = self.rng
        if column.nullable and column.null_rate and rng.random() < column.null_rate:
            return None
        if column.ref == self.table.name:  # self-reference: an earlier row of this table
            return rng.choice(self.own_ids) if self.own_ids else None
        if column.ref:
            return rng.choice(self.ids[column.ref])
        if column.name == "id":
            return cuid_like(self.table.prefix, rng)
        if column.name == "updatedAt" and row:
            return row[1] + rng.randint(0, _UPDATED_AFTER_CREATED_MAX_S)  # row[1] = createdAt
        assert column.generate is not None, f"{self.table.name}.{column.name} has no generator"
        return column.generate(rng, i)

    def rows(self, count: int) -> Iterator[list[Any]]:
        columns = self.table.all_columns
        key_at = [i for i, c in enumerate(columns) if c.name in self.table.primary_key]
        attempts = 0
        while len(self.seen_keys) < count and attempts < count * 20:
            attempts += 1
            row: list[Any] = []
            for column in columns:
                row.append(self._value(column, len(self.seen_keys), row))
            key = tuple(row[i] for i in key_at)
            if key in self.seen_keys:  # composite keys drawn at random can repeat
                continue
            self.seen_keys.add(key)
            if self.table.prefix:
                self.own_ids.append(row[0])
            yield row


def _insert(conn: sqlite3.Connection, table: DemoTable, rows: Iterator[list[Any]]) -> int:
    names = ", ".join(_q(c.name) for c in table.all_columns)
    marks = ", ".join("?" for _ in table.all_columns)
    sql = f"INSERT INTO {_q(table.name)} ({names}) VALUES ({marks})"
    total = 0
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == _CHUNK:
            conn.executemany(sql, chunk)
            total, chunk = total + len(chunk), []
    conn.executemany(sql, chunk)
    return total + len(chunk)


def _internal_rows(conn: sqlite3.Connection) -> None:
    for statement in INTERNAL_TABLES_SQL:
        conn.execute(statement)
    # applied_at is given, not left to DEFAULT CURRENT_TIMESTAMP: the file must be a pure
    # function of (scale, seed), whatever second it is generated in.
    conn.executemany(
        "INSERT INTO d1_migrations (name, applied_at) VALUES (?, ?)",
        [
            ("0000_initial.sql", "2024-01-02 09:00:00"),
            ("0001_teams.sql", "2024-03-04 10:30:00"),
            ("0002_competitions.sql", "2024-06-07 11:45:00"),
        ],
    )
    conn.execute("INSERT INTO _cf_KV VALUES ('__cf_meta', x'00')")


def generate_demo_db(
    path: Path, *, scale: float = 1.0, seed: int = 0, overwrite: bool = False
) -> DemoReport:
    """Create the demo SQLite database at `path`; deterministic for (`scale`, `seed`)."""
    if scale <= 0:
        raise ConfigError(f"demo scale must be > 0, not {scale}")
    if path.exists():
        if not overwrite:
            raise ConfigError(f"{path} already exists; pass --force to replace it")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = DemoReport(path, seed, scale)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # A fresh file nobody reads yet: durability during generation buys nothing.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        _internal_rows(conn)
        for table in DEMO_TABLES:
            for statement in create_table_statements(table):
                conn.execute(statement)
        conn.execute("COMMIT")
        ids: dict[str, list[str]] = {}
        for table in DEMO_TABLES:  # in level order: parents exist before children
            maker = _RowMaker(table, random.Random(f"{seed}:{table.name}"), ids)
            conn.execute("BEGIN")
            report.rows_per_table[table.name] = _insert(
                conn, table, maker.rows(row_count(table, scale))
            )
            conn.execute("COMMIT")
            ids[table.name] = maker.own_ids
    finally:
        conn.close()
    report.seconds = time.monotonic() - started
    return report
