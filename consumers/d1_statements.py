"""SQL for the D1 sink (reverse pipeline, issue 16): version-guarded upserts in SQLite's
dialect, each statement binding at most 100 parameters (D1's limit), framed by the no-echo
marker. Pure: the statements are run by the sink as one `batch()` (D1's only transaction;
one transaction for the SQLite file).

Version guard: `ON CONFLICT … DO UPDATE … WHERE (excluded.v…) >= ("t".v…)`, the same rule as
the MySQL sink's `IF(VALUES(u) >= u, …)`: a tie applies (the later event wins), an older
version never overwrites. Not covered here yet: tombstones for deletes (an old upsert after
a delete would insert the row again) and NULL versions (SQLite's comparison with NULL is
NULL, so such an update is skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.no_echo import MARKER_DDL, MARKER_TABLE
from worker.schema.mapping import TableMapping
from worker.sources.base import MAX_PARAMS, quote_ident

__all__ = [
    "MARKER_DDL",
    "MARKER_TABLE",
    "Statement",
    "delete_statements",
    "framed",
    "upsert_statements",
]


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...]


def _row_value(prefix: str, columns: Sequence[str]) -> str:
    names = [f"{prefix}{quote_ident(c)}" for c in columns]
    return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"


def upsert_statements(table: TableMapping, rows: Sequence[Mapping[str, Any]]) -> list[Statement]:
    """Multi-row upserts of `rows` (source representation), ≤ MAX_PARAMS parameters each."""
    columns = table.column_names
    if len(columns) > MAX_PARAMS:
        raise ValueError(f"table {table.name!r} has more than {MAX_PARAMS} columns")
    per_statement = MAX_PARAMS // len(columns)
    name = quote_ident(table.name)
    cols = ", ".join(quote_ident(c) for c in columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    updates = ", ".join(
        f"{quote_ident(c)} = excluded.{quote_ident(c)}"
        for c in columns
        if c not in table.primary_key
    )
    conflict = ", ".join(quote_ident(c) for c in table.primary_key)
    if updates:
        action = f"DO UPDATE SET {updates}"
        if table.version_columns:
            newer = _row_value("excluded.", table.version_columns)
            held = _row_value(f"{name}.", table.version_columns)
            action += f" WHERE {newer} >= {held}"
    else:
        action = "DO NOTHING"
    statements = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        # `WHERE true` keeps SQLite's parser from reading ON CONFLICT as a join clause.
        sql = (
            f"INSERT INTO {name} ({cols}) SELECT * FROM (VALUES {', '.join(one for _ in chunk)})"
            f" WHERE true ON CONFLICT ({conflict}) {action}"
        )
        params = tuple(row.get(c) for row in chunk for c in columns)
        statements.append(Statement(sql, params))
    return statements


def delete_statements(table: TableMapping, keys: Sequence[Mapping[str, Any]]) -> list[Statement]:
    """Deletes by primary key, ≤ MAX_PARAMS parameters each."""
    pk = table.primary_key
    per_statement = MAX_PARAMS // len(pk)
    one = "?" if len(pk) == 1 else "(" + ", ".join("?" for _ in pk) + ")"
    statements = []
    for start in range(0, len(keys), per_statement):
        chunk = keys[start : start + per_statement]
        match = ", ".join(one for _ in chunk)
        if len(pk) > 1:
            match = f"VALUES {match}"
        sql = f"DELETE FROM {quote_ident(table.name)} WHERE {_row_value('', pk)} IN ({match})"
        statements.append(Statement(sql, tuple(key[c] for key in chunk for c in pk)))
    return statements


def framed(statements: Sequence[Statement]) -> list[Statement]:
    """`statements` between the marker's insert and delete: one batch, no echo."""
    return [
        Statement(f'INSERT INTO "{MARKER_TABLE}" (id) VALUES (1)', ()),
        *statements,
        Statement(f'DELETE FROM "{MARKER_TABLE}"', ()),
    ]
