"""Hard deletes by key-set diff: keys the target holds that the source no longer has.

Watermark polling can never see a hard delete (the row is gone, with its `updatedAt`). So,
per table: read the target's keys FIRST, then the source's keys; a key in the target but
not in the source was deleted after it was applied. Reading the target first means a row
inserted meanwhile is absent from the target snapshot, so it can never be mistaken for a
delete. Each candidate is then looked up in the source once more (in ≤100-parameter
batches) right before its delete is emitted, so a key re-inserted during the diff survives.

Cost: one primary-key scan of each side per cycle. Only key columns whose value is the
same in SQLite and MySQL (text, string(n), integer, bigint) can be compared; tables with
other key types are skipped with a warning.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producers.keyset import Watermark, next_page
from worker.logs import get_logger
from worker.schema.ddl import quote_mysql
from worker.schema.mapping import TableMapping
from worker.sources.base import Source, key_chunks, rows_by_keys

COMPARABLE_KINDS = frozenset({"text", "string", "integer", "bigint"})
KEY_PAGE = 10_000
Key = tuple[Any, ...]
_log = get_logger("d1cdc.deletes")


def keys_comparable(table: TableMapping) -> bool:
    return all(table.columns[c].type.kind in COMPARABLE_KINDS for c in table.primary_key)


def vanished_keys(target: set[Key], source: set[Key]) -> list[Key]:
    """Keys present in the target snapshot and absent from the (later) source snapshot."""
    return sorted(target - source, key=repr)


def source_keys(source: Source, table: TableMapping) -> set[Key]:
    keys: set[Key] = set()
    mark = Watermark("scan")
    while True:
        page = next_page(table, mark, KEY_PAGE, columns=table.primary_key)
        rows = source.query(page.sql, page.params)
        keys.update(tuple(r[c] for c in table.primary_key) for r in rows)
        if len(rows) < KEY_PAGE:
            return keys
        mark = mark.advanced(rows[-1], table, len(rows))


def target_keys(engine: Engine, table: TableMapping, *, page: int = KEY_PAGE) -> set[Key] | None:
    """The target's keys, or None when the target table does not exist yet.

    Read in keyset pages of `page` keys, never one unbounded scan: PlanetScale refuses a
    result over 100,000 rows. The pages are not one snapshot, and need not be: a key that
    appears or vanishes between pages is settled by the source re-check before any delete.
    """
    if not sa.inspect(engine).has_table(table.name):
        return None
    columns = ", ".join(quote_mysql(c) for c in table.primary_key)
    marks = ", ".join(f":k{i}" for i in range(len(table.primary_key)))
    head = f"SELECT {columns} FROM {quote_mysql(table.name)}"
    tail = f" ORDER BY {columns} LIMIT {int(page)}"
    first, after = sa.text(head + tail), sa.text(f"{head} WHERE ({columns}) > ({marks}){tail}")
    keys: set[Key] = set()
    last: Key | None = None
    with engine.connect() as conn:
        while True:
            if last is None:
                rows = conn.execute(first).all()
            else:
                rows = conn.execute(after, {f"k{i}": v for i, v in enumerate(last)}).all()
            keys.update(tuple(row) for row in rows)
            if len(rows) < page:
                return keys
            last = tuple(rows[-1])


def target_has_rows(engine: Engine, table: TableMapping) -> bool:
    """Does the target table exist and hold at least one row?"""
    if not sa.inspect(engine).has_table(table.name):
        return False
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT 1 FROM {quote_mysql(table.name)} LIMIT 1")).first()
    return row is not None


def find_deleted_keys(source: Source, engine: Engine, table: TableMapping) -> list[Key]:
    """Keys deleted at the source but still in the target; see the module docstring."""
    if not keys_comparable(table):
        _log.warning(
            "delete detection skipped: key type differs between source and target", table=table.name
        )
        return []
    in_target = target_keys(engine, table)
    if in_target is None:
        return []
    candidates = vanished_keys(in_target, source_keys(source, table))
    if not candidates:
        return []
    still_there = {
        tuple(r[c] for c in table.primary_key)
        for r in rows_by_keys(source, table.name, table.primary_key, candidates)
    }
    return [k for k in candidates if k not in still_there]


def target_keys_present(engine: Engine, table: TableMapping, keys: list[Key]) -> set[Key]:
    """Which of `keys` the target holds now (the reverse diff's re-check), in bounded queries."""
    columns = [quote_mysql(c) for c in table.primary_key]
    row_value = columns[0] if len(columns) == 1 else "(" + ", ".join(columns) + ")"
    present: set[Key] = set()
    with engine.connect() as conn:
        for chunk in key_chunks(keys, len(columns)):
            marks: list[str] = []
            params: dict[str, Any] = {}
            for i, key in enumerate(chunk):
                names = [f"k{i}_{j}" for j in range(len(key))]
                params.update(zip(names, key, strict=True))
                one = ", ".join(f":{n}" for n in names)
                marks.append(one if len(names) == 1 else f"({one})")
            query = (
                f"SELECT {', '.join(columns)} FROM {quote_mysql(table.name)} "
                f"WHERE {row_value} IN ({', '.join(marks)})"
            )
            present.update(tuple(row) for row in conn.execute(sa.text(query), params))
    return present


def find_keys_gone_from_target(replica: Source, engine: Engine, table: TableMapping) -> list[Key]:
    """The reverse direction (after cut-over MySQL is the primary, D1 the replica): keys D1
    holds that MySQL no longer has. The same three reads in the same order as
    `find_deleted_keys`: the replica's keys first, then the primary's, then a re-check of
    each candidate in the primary right before its delete is emitted."""
    if not keys_comparable(table):
        _log.warning(
            "delete detection skipped: key type differs between source and target", table=table.name
        )
        return []
    in_replica = source_keys(replica, table)
    if not in_replica:
        return []
    in_primary = target_keys(engine, table)
    if in_primary is None:
        return []  # no such table in MySQL: nothing can have been deleted from it
    candidates = vanished_keys(in_replica, in_primary)
    if not candidates:
        return []
    still_there = target_keys_present(engine, table, candidates)
    return [k for k in candidates if k not in still_there]
