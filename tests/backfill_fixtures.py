"""Test helper: a small hand-made source (SQLite file + mapping) for backfill tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from worker.schema.mapping import Mapping, mapping_from_dict

BASE_TS = 1_700_000_000  # Unix seconds

MAPPING_TOML = """
[tables.team]
primary_key = ["id"]
version_columns = ["updatedAt"]
level = 0
[tables.team.columns.id]
type = "string(32)"
nullable = false
[tables.team.columns.name]
type = "text"
[tables.team.columns.updatedAt]
type = "timestamp_s"

[tables.member]
primary_key = ["id"]
version_columns = ["updatedAt"]
level = 1
[tables.member.columns.id]
type = "string(32)"
nullable = false
[tables.member.columns.teamId]
type = "string(32)"
[tables.member.columns.score]
type = "integer"
[tables.member.columns.updatedAt]
type = "timestamp_s"

[tables.limit]
primary_key = ["key"]
level = 0
[tables.limit.columns.key]
type = "string(32)"
nullable = false
[tables.limit.columns.value]
type = "integer"
"""


def load_test_mapping() -> Mapping:
    import tomllib

    return mapping_from_dict(tomllib.loads(MAPPING_TOML))


def make_source(path: Path, teams: int = 5, members: int = 40, limits: int = 3) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE team (id TEXT PRIMARY KEY, name TEXT, updatedAt INTEGER);
        CREATE TABLE member (id TEXT PRIMARY KEY, teamId TEXT REFERENCES team(id),
                             score INTEGER, updatedAt INTEGER);
        CREATE TABLE "limit" ("key" TEXT PRIMARY KEY, value INTEGER);
        """
    )
    conn.executemany(
        "INSERT INTO team VALUES (?, ?, ?)",
        [(f"tm{i:03d}", f"Team {i}", BASE_TS + i % 3) for i in range(teams)],
    )
    conn.executemany(
        "INSERT INTO member VALUES (?, ?, ?, ?)",
        [(f"mb{i:05d}", f"tm{i % teams:03d}", i, BASE_TS + i % 7) for i in range(members)],
    )
    conn.executemany('INSERT INTO "limit" VALUES (?, ?)', [(f"k{i}", i) for i in range(limits)])
    conn.commit()
    conn.close()
    return path


def write_mapping(path: Path) -> Path:
    path.write_text(MAPPING_TOML, encoding="utf-8")
    return path
