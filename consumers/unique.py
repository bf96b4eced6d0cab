"""Detect upserts that would hit a secondary UNIQUE index and overwrite a different row.

`INSERT … ON DUPLICATE KEY UPDATE` fires on *any* unique index: an incoming row whose
unique column equals another key's row would update that other row instead of inserting
(DESIGN.md, "MySQL / PlanetScale facts"). Before the upsert, each unique index is looked
up for the batch's values; a hit on a row with a different primary key — or two changes of
one batch sharing a value — rejects the later change with a reason for the dead-letter
topic. A NULL in a unique column never collides (SQL semantics). Runs after the batch's
deletes, so a value freed by a delete in the same batch is free.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Connection

from consumers import sql
from consumers.change import Change
from worker.chunking import chunks
from worker.schema.mapping import TableMapping

_LOOKUP_CHUNK = 500


def find_unique_collisions(
    conn: Connection, table: TableMapping, upserts: list[Change]
) -> Iterator[tuple[Change, str]]:
    """(change, reason) for each upsert that would overwrite a different row."""
    rejected: set[int] = set()
    for index in table.indexes:
        if not index.unique or set(index.columns) == set(table.primary_key):
            continue
        owner: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        candidates: list[tuple[tuple[Any, ...], Change]] = []
        for change in upserts:
            if id(change) in rejected or change.row is None:
                continue
            value = tuple(change.row[c] for c in index.columns)
            if any(v is None for v in value):
                continue
            pk = tuple(change.key[c] for c in table.primary_key)
            if value in owner and owner[value] != pk:
                rejected.add(id(change))
                yield change, _reason(table, index.name, "another event of the same batch")
                continue
            owner[value] = pk
            candidates.append((value, change))
        stored = _stored_owners(conn, table, index.columns, list(owner))
        for value, change in candidates:
            pk = tuple(change.key[c] for c in table.primary_key)
            if value in stored and stored[value] != pk and id(change) not in rejected:
                rejected.add(id(change))
                yield change, _reason(table, index.name, f"existing row with key {stored[value]}")


def _stored_owners(
    conn: Connection, table: TableMapping, columns: tuple[str, ...], values: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    owners: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    width = len(table.primary_key)
    for part in chunks(values, _LOOKUP_CHUNK):
        query = sql.build_unique_lookup(table, columns, len(part))
        params = tuple(v for value in part for v in value)
        for row in conn.exec_driver_sql(query, params):
            owners[tuple(row[width:])] = tuple(row[:width])
    return owners


COLLISION_PREFIX = "UniqueCollision: "  # the held reason; its dead letter says the class


def _reason(table: TableMapping, index: str, other: str) -> str:
    return (
        f"{COLLISION_PREFIX}{table.name}: value of unique index {index!r} already belongs to "
        f"{other}; the upsert would overwrite a different row"
    )
