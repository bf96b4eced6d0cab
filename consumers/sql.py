"""SQL text for applying changes: version-guarded upserts and deletes. Pure.

Only names from the mapping reach SQL text, always backtick-quoted; every value is a bound
parameter. The upsert is `INSERT … VALUES (%s, …) ON DUPLICATE KEY UPDATE …` because that
is the one form PyMySQL's `executemany` rewrites into a single multi-row INSERT
(pymysql.cursors.RE_INSERT_VALUES), and it runs on MySQL 8, MariaDB and Vitess alike.

The version guard. MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right, each
seeing the columns already assigned. So every non-version column is assigned first, under
`IF(NOT <stored newer than incoming>, VALUES(c), c)`, while the stored version is intact;
then the version columns, **least significant first**: when the guard re-reads a version
column assigned before it, that column already equals the incoming value, which turns the
lexicographic comparison into "equal so far", never into a different decision.
Comparisons are NULL-safe with NULL as the lowest version (a row without a version yields).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from worker.schema.ddl import quote_mysql
from worker.schema.mapping import TableMapping


def _greater(left: str, right: str) -> str:
    """`left > right` with NULL lowest; never NULL itself."""
    return f"({left} IS NOT NULL AND ({right} IS NULL OR {left} > {right}))"


def stored_is_newer(stored: Sequence[str], incoming: Sequence[str]) -> str:
    """SQL: the tuple `stored` > the tuple `incoming`, lexicographically, NULL lowest."""
    terms = []
    for i, (s, n) in enumerate(zip(stored, incoming, strict=True)):
        equal_prefix = [f"{stored[j]} <=> {incoming[j]}" for j in range(i)]
        terms.append(" AND ".join([*equal_prefix, _greater(s, n)]))
    return "(" + " OR ".join(terms) + ")"


def build_upsert(table: TableMapping, *, strict: bool = False) -> str:
    """Multi-row-able upsert of all mapped columns; guarded when the table has versions.

    `strict` (backfill snapshots): the stored row is replaced only by a strictly greater
    version, so an equal-version write the snapshot did not see is kept."""
    columns = list(table.columns)
    versions = list(table.version_columns)
    placeholders = ", ".join(["%s"] * len(columns))
    head = (
        f"INSERT INTO {quote_mysql(table.name)} ({', '.join(quote_mysql(c) for c in columns)}) "
        f"VALUES ({placeholders})"
    )
    plain = [c for c in columns if c not in table.primary_key and c not in versions]
    if not versions:
        targets = plain or [table.primary_key[0]]
        sets = [f"{quote_mysql(c)} = VALUES({quote_mysql(c)})" for c in targets]
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets)}"
    stored, incoming = (
        [quote_mysql(v) for v in versions],
        [f"VALUES({quote_mysql(v)})" for v in versions],
    )
    applies = (
        stored_is_newer(incoming, stored) if strict else f"NOT {stored_is_newer(stored, incoming)}"
    )
    ordered = plain + list(reversed(versions))
    sets = [
        f"{quote_mysql(c)} = IF({applies}, VALUES({quote_mysql(c)}), {quote_mysql(c)})"
        for c in ordered
    ]
    return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets)}"


def row_values(table: TableMapping) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A fast row → parameter tuple function, in the column order of `build_upsert`."""
    getter = itemgetter(*table.columns)
    if len(table.columns) == 1:
        return lambda row: (getter(row),)
    return getter


def build_delete(table: TableMapping, *, guarded: bool) -> str:
    """Delete one key; `guarded`: only when the stored version is not newer than `%(vN)s`.

    Parameters are named: `%(kN)s` for the key columns, `%(vN)s` for the delete's version.
    """
    where = [f"{quote_mysql(c)} = %(k{i})s" for i, c in enumerate(table.primary_key)]
    if guarded:
        versions = table.version_columns
        newer = stored_is_newer(
            [quote_mysql(v) for v in versions], [f"%(v{i})s" for i in range(len(versions))]
        )
        where.append(f"NOT {newer}")
    return f"DELETE FROM {quote_mysql(table.name)} WHERE {' AND '.join(where)}"


def delete_params(
    table: TableMapping, key: dict[str, object], version_values: Sequence[object] | None
) -> dict[str, object]:
    params = {f"k{i}": key[c] for i, c in enumerate(table.primary_key)}
    for i, value in enumerate(version_values or ()):
        params[f"v{i}"] = value
    return params


def build_unique_lookup(table: TableMapping, columns: Sequence[str], count: int) -> str:
    """Rows whose `columns` equal any of `count` incoming tuples: for collision checks."""
    selected = ", ".join(quote_mysql(c) for c in (*table.primary_key, *columns))
    if len(columns) == 1:
        match = f"{quote_mysql(columns[0])} IN ({', '.join(['%s'] * count)})"
    else:
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        match = f"({', '.join(quote_mysql(c) for c in columns)}) IN ({', '.join([one] * count)})"
    return f"SELECT {selected} FROM {quote_mysql(table.name)} WHERE {match}"
