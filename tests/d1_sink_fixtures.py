"""Test helper for the D1 sink: a mapping, its SQLite schema, reverse changes as decoded."""

from __future__ import annotations

import sqlite3
from itertools import count
from pathlib import Path
from typing import Any

from consumers.change import Change, MessageRef
from consumers.decode import to_change
from worker.envelope import Op, encode_event, new_event
from worker.schema.mapping import Mapping, mapping_from_dict

MAPPING: Mapping = mapping_from_dict(
    {
        "tables": {
            "item": {
                "primary_key": ["id"],
                "version_columns": ["updatedAt"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "name": {"type": "text"},  # nullable in MySQL, NOT NULL in D1 (below)
                    "updatedAt": {"type": "timestamp_ms", "nullable": False},
                },
            },
            "tag": {  # no version columns: ordered by ts_ms
                "primary_key": ["id"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "label": {"type": "text"},
                },
            },
            "note": {  # a nullable version column
                "primary_key": ["id"],
                "version_columns": ["rev"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "body": {"type": "text"},
                    "rev": {"type": "integer"},
                },
            },
        }
    }
)
SCHEMA = (
    'CREATE TABLE "item" (id TEXT PRIMARY KEY, name TEXT NOT NULL, "updatedAt" INTEGER NOT NULL)',
    'CREATE TABLE "tag" (id TEXT PRIMARY KEY, label TEXT)',
    'CREATE TABLE "note" (id TEXT PRIMARY KEY, body TEXT, rev INTEGER)',
)
# Foreign keys, as real D1 enforces them: a member's `team` is a team's id (a team's `team`
# is its name, NOT NULL in D1: a row to refuse).
FK_MAPPING: Mapping = mapping_from_dict(
    {
        "tables": {
            name: {
                "primary_key": ["id"],
                "version_columns": ["updatedAt"],
                "level": level,
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "team": {"type": "string(20)"},
                    "updatedAt": {"type": "timestamp_ms", "nullable": False},
                },
            }
            for name, level in (("team", 0), ("member", 1))
        }
    }
)
FK_SCHEMA = (
    'CREATE TABLE "team" (id TEXT PRIMARY KEY, team TEXT NOT NULL, "updatedAt" INTEGER)',
    'CREATE TABLE "member" (id TEXT PRIMARY KEY, team TEXT REFERENCES "team" (id),'
    ' "updatedAt" INTEGER)',
)
PREFIX = "d1cdc"
_offsets = count()


def create_database(path: Path, schema: tuple[str, ...] = SCHEMA) -> Path:
    db = sqlite3.connect(path)
    for sql in schema:
        db.execute(sql)
    db.commit()
    db.close()
    return path


def reverse_change(
    table: str,
    op: Op,
    key: str,
    row: dict[str, Any] | None = None,
    *,
    ts_ms: int,
    mapping: Mapping = MAPPING,
) -> Change:
    """A reverse event (source representation, origin "reverse") as the consumer decodes it."""
    full = None if row is None else {"id": key, **row}
    event = new_event(table, op, {"id": key}, full, origin="reverse", ts_ms=ts_ms)
    message_key, value = encode_event(event)
    source = MessageRef(f"{PREFIX}.reverse.{table}", 0, next(_offsets), message_key, value)
    return to_change(source, mapping)


def item(key: str, name: str | None, at: int, *, ts_ms: int | None = None) -> Change:
    row = {"name": name, "updatedAt": at}
    return reverse_change("item", "upsert", key, row, ts_ms=at if ts_ms is None else ts_ms)


def item_deleted(key: str, ts_ms: int) -> Change:
    """A delete from the reverse poller's key-set diff: no before-image."""
    return reverse_change("item", "delete", key, ts_ms=ts_ms)


def table_rows(path: Path, table: str) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in db.execute(f'SELECT * FROM "{table}"')}
    finally:
        db.close()
