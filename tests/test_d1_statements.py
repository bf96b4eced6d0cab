"""consumers.d1_statements against a real SQLite: guard, tie rule, ≤100 params, marker."""

from __future__ import annotations

import sqlite3

from consumers.d1_statements import (
    MARKER_DDL,
    MARKER_TABLE,
    Statement,
    delete_statements,
    framed,
    upsert_statements,
)
from worker.schema.mapping import mapping_from_dict

TABLE = mapping_from_dict(
    {
        "tables": {
            "limit": {
                "primary_key": ["id", "n"],
                "version_columns": ["updatedAt", "updateCounter"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "n": {"type": "bigint", "nullable": False},
                    "v": {"type": "text"},
                    "updatedAt": {"type": "timestamp_s", "nullable": False},
                    "updateCounter": {"type": "integer", "nullable": False},
                },
            }
        }
    }
).table("limit")


def database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        'CREATE TABLE "limit" (id TEXT, n INTEGER, v TEXT, "updatedAt" INTEGER,'
        ' "updateCounter" INTEGER, PRIMARY KEY (id, n))'
    )
    db.execute(MARKER_DDL)
    return db


def run(db: sqlite3.Connection, statements: list[Statement]) -> None:
    with db:  # one transaction, like one D1 batch()
        for s in statements:
            db.execute(s.sql, s.params)


def row(key: str, v: str, at: int, counter: int = 0) -> dict[str, object]:
    return {"id": key, "n": 2**60, "v": v, "updatedAt": at, "updateCounter": counter}


def values(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return db.execute('SELECT id, v FROM "limit" ORDER BY id').fetchall()


def test_older_version_never_overwrites_newer() -> None:
    db = database()
    run(db, upsert_statements(TABLE, [row("a", "new", 200)]))
    run(db, upsert_statements(TABLE, [row("a", "old", 100, 9)]))
    assert values(db) == [("a", "new")]


def test_counter_breaks_timestamp_ties_and_an_exact_tie_applies() -> None:
    db = database()
    run(db, upsert_statements(TABLE, [row("a", "first", 100, 1)]))
    run(db, upsert_statements(TABLE, [row("a", "second", 100, 2)]))
    assert values(db) == [("a", "second")]
    run(db, upsert_statements(TABLE, [row("a", "tie", 100, 2)]))
    assert values(db) == [("a", "tie")]


def test_every_statement_binds_at_most_100_parameters_and_all_rows_land() -> None:
    rows = [row(f"k{i:03d}", "x", 1) for i in range(250)]
    statements = upsert_statements(TABLE, rows)
    assert len(statements) == 13  # 20 rows of 5 columns per statement
    assert all(len(s.params) <= 100 for s in statements)
    db = database()
    run(db, statements)
    assert db.execute('SELECT count(*) FROM "limit"').fetchone() == (250,)
    deletes = delete_statements(TABLE, [{"id": r["id"], "n": r["n"]} for r in rows[:120]])
    assert all(len(s.params) <= 100 for s in deletes)
    run(db, deletes)
    assert db.execute('SELECT count(*) FROM "limit"').fetchone() == (130,)


def test_marker_is_present_inside_the_batch_and_gone_after() -> None:
    db = database()
    db.execute("CREATE TABLE seen (marker INTEGER)")
    db.execute(
        'CREATE TRIGGER t AFTER INSERT ON "limit" BEGIN'
        f' INSERT INTO seen SELECT count(*) FROM "{MARKER_TABLE}"; END'
    )
    run(db, framed(upsert_statements(TABLE, [row("a", "x", 1)])))
    assert db.execute("SELECT marker FROM seen").fetchall() == [(1,)]
    assert db.execute(f'SELECT count(*) FROM "{MARKER_TABLE}"').fetchone() == (0,)
