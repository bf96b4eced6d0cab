"""SQL for the D1 sink (reverse pipeline, issue 16): version-guarded upserts and deletes in
SQLite's dialect, each statement binding at most 100 parameters (D1's limit), framed by the
no-echo marker. Pure: `consumers.d1_sink` runs the statements as one `batch()` (D1's only
transaction; one transaction for the SQLite file).

Version guard: `ON CONFLICT … DO UPDATE … WHERE NOT (<stored newer than excluded>)`, the
same rule as the MySQL sink's (`consumers.sql`): a tie applies (the later event wins), an
older version never overwrites, NULL is the lowest version (a plain `>=` with a NULL is
NULL in SQLite, and the update would be skipped). SQLite evaluates that WHERE against the
stored row before any assignment, so unlike MySQL the order of the SET list does not
matter. Tombstones (an old upsert after a delete) are not SQL's business: the sink plans
against its side table (`consumers.plan`), as the MySQL sink does.

The guard compares values as SQLite stores them, and rows written before cut-over may hold
a version in a form the sink never writes: TEXT from `DEFAULT CURRENT_TIMESTAMP` in a
`timestamp_s`/`timestamp_ms` column, where the sink writes INTEGER (SQLite orders any TEXT
above any INTEGER, so every update would be skipped), or the app's ISO
'2026-12-01T10:00:00' in a `timestamp_text` column, where the sink writes
'2026-12-01 10:00:00' ('T' sorts above ' ' on the same day). So, still in one statement:
`timestamp_text` versions are compared through `strftime('%Y-%m-%d %H:%M:%f', …)` on both
sides, and where the two values differ in storage class (INTEGER and REAL being one) the
incoming event wins. That is safe: after cut-over MySQL is the primary and was level with
D1 at the switch, so an incoming MySQL version is never older than a pre-switch D1 one;
rows the sink wrote itself are in its canonical form, the same class as what it sends, so
their guard is exact. NULL stays the lowest version, whatever the other side's class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from worker.chunking import chunks
from worker.no_echo import MARKER_DDL, MARKER_TABLE
from worker.schema.mapping import TableMapping
from worker.sources.base import MAX_PARAMS, quote_sqlite

__all__ = [
    "DEFER_FOREIGN_KEYS",
    "MARKER_DDL",
    "MARKER_TABLE",
    "Statement",
    "delete_statements",
    "framed",
    "guarded_delete_statement",
    "held_is_newer",
    "incoming_is_newer",
    "upsert_statements",
]


class Statement(NamedTuple):
    """One statement of a batch; a (sql, params) pair, what `batch()` of a source takes."""

    sql: str
    params: tuple[Any, ...]


def _row_value(prefix: str, columns: Sequence[str]) -> str:
    names = [f"{prefix}{quote_sqlite(c)}" for c in columns]
    return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"


def _normalised(expr: str, kind: str) -> str:
    # `timestamp_text`: the app's ISO 'T' form and the sink's space form compare as moments;
    # text strftime() cannot read stays itself (never NULL for a non-NULL value).
    if kind == "timestamp_text":
        return f"coalesce(strftime('%Y-%m-%d %H:%M:%f', {expr}), {expr})"
    return expr


def _storage_class(expr: str) -> str:
    # INTEGER and REAL compare as numbers; TEXT, BLOB and NULL are classes of their own.
    return f"replace(typeof({expr}), 'real', 'integer')"


def _newer(
    first: Sequence[str], second: Sequence[str], kinds: Sequence[str], *, mismatch: bool
) -> str:
    """SQL: the version tuple `first` > `second`, lexicographically, NULL lowest; a column
    whose two non-NULL values differ in storage class counts as `mismatch` (first newer or
    not). Never NULL itself (`IS` is SQLite's NULL-safe equality, MySQL's `<=>`)."""
    equal: list[str] = []
    greater: list[str] = []
    for a, b, kind in zip(first, second, kinds, strict=True):
        classes = f"{_storage_class(a)} = {_storage_class(b)}"
        na, nb = _normalised(a, kind), _normalised(b, kind)
        equal.append(f"({classes} AND {na} IS {nb})")
        compare = f"(NOT {classes} OR {na} > {nb})" if mismatch else f"({classes} AND {na} > {nb})"
        greater.append(f"({a} IS NOT NULL AND ({b} IS NULL OR {compare}))")
    terms = [" AND ".join([*equal[:i], greater[i]]) for i in range(len(greater))]
    return "(" + " OR ".join(terms) + ")"


def held_is_newer(table: TableMapping, held: Sequence[str], incoming: Sequence[str]) -> str:
    """SQL: the stored versions `held` are newer than `incoming` (the guard's test)."""
    return _newer(held, incoming, _kinds(table), mismatch=False)


def incoming_is_newer(table: TableMapping, held: Sequence[str], incoming: Sequence[str]) -> str:
    """SQL: `incoming` is strictly newer than the stored versions `held` (backfill's test)."""
    return _newer(incoming, held, _kinds(table), mismatch=True)


def _kinds(table: TableMapping) -> list[str]:
    return [table.columns[c].type.kind for c in table.version_columns]


def upsert_statements(
    table: TableMapping, rows: Sequence[Mapping[str, Any]], *, strict: bool = False
) -> list[Statement]:
    """Multi-row upserts of `rows` (source representation), ≤ MAX_PARAMS parameters each.

    `strict` (backfill snapshots): only a strictly greater version replaces the stored row."""
    columns = table.column_names
    if len(columns) > MAX_PARAMS:
        raise ValueError(f"table {table.name!r} has more than {MAX_PARAMS} columns")
    per_statement = MAX_PARAMS // len(columns)
    name = quote_sqlite(table.name)
    cols = ", ".join(quote_sqlite(c) for c in columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    updates = ", ".join(
        f"{quote_sqlite(c)} = excluded.{quote_sqlite(c)}"
        for c in columns
        if c not in table.primary_key
    )
    conflict = ", ".join(quote_sqlite(c) for c in table.primary_key)
    if updates:
        action = f"DO UPDATE SET {updates}"
        if table.version_columns:
            incoming = [f"excluded.{quote_sqlite(c)}" for c in table.version_columns]
            held = [f"{name}.{quote_sqlite(c)}" for c in table.version_columns]
            applies = (
                incoming_is_newer(table, held, incoming)
                if strict
                else f"NOT {held_is_newer(table, held, incoming)}"
            )
            action += f" WHERE {applies}"
    else:
        action = "DO NOTHING"
    statements = []
    for chunk in chunks(rows, per_statement):
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
    for chunk in chunks(keys, per_statement):
        match = ", ".join(one for _ in chunk)
        if len(pk) > 1:
            match = f"VALUES {match}"
        sql = f"DELETE FROM {quote_sqlite(table.name)} WHERE {_row_value('', pk)} IN ({match})"
        statements.append(Statement(sql, tuple(key[c] for key in chunk for c in pk)))
    return statements


def guarded_delete_statement(
    table: TableMapping, key: Mapping[str, Any], versions: Sequence[Any]
) -> Statement:
    """Delete one key unless the stored row is newer than `versions` (the before-image's
    version columns, source representation): a delete never removes a later write."""
    pk = table.primary_key
    where = [f"{quote_sqlite(c)} = ?{i + 1}" for i, c in enumerate(pk)]
    held = [quote_sqlite(c) for c in table.version_columns]
    # Numbered parameters (`?NNN`, supported by D1): the guard names each version twice.
    incoming = [f"?{len(pk) + i + 1}" for i in range(len(held))]
    where.append(f"NOT {held_is_newer(table, held, incoming)}")
    sql = f"DELETE FROM {quote_sqlite(table.name)} WHERE {' AND '.join(where)}"
    return Statement(sql, (*(key[c] for c in pk), *versions))


DEFER_FOREIGN_KEYS = Statement("PRAGMA defer_foreign_keys = on", ())


def framed(statements: Sequence[Statement]) -> list[Statement]:
    """`statements` as one batch: foreign keys checked when it commits, not statement by
    statement (D1 enforces them and allows deferring them until the end of the current
    transaction: https://developers.cloudflare.com/d1/sql-api/foreign-keys/), so a child
    ahead of its parent in the batch applies; between the marker's insert and delete, so
    nothing echoes."""
    return [
        DEFER_FOREIGN_KEYS,
        Statement(f'INSERT INTO "{MARKER_TABLE}" (id) VALUES (1)', ()),
        *statements,
        Statement(f'DELETE FROM "{MARKER_TABLE}"', ()),
    ]
