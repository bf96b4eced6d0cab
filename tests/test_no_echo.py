"""No echo: rows the D1 sink writes are not captured by the triggers; app writes still are."""

from __future__ import annotations

import sqlite3

from consumers.d1_statements import Statement, delete_statements, framed, upsert_statements
from producers.capture_sql import CHANGES_TABLE, install_statements
from tests.simple_mapping import versioned_table

MAPPING = versioned_table("item", name="text")
TABLE = MAPPING.table("item")


def captured_database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute('CREATE TABLE "item" (id TEXT PRIMARY KEY, name TEXT, "updatedAt" INTEGER)')
    for sql in install_statements(MAPPING):
        db.execute(sql)
    return db


def batch(db: sqlite3.Connection, statements: list[Statement]) -> None:
    db.execute("BEGIN")  # one transaction, like one D1 batch()
    for s in statements:
        db.execute(s.sql, s.params)
    db.execute("COMMIT")


def log(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return db.execute(f'SELECT op, pk FROM "{CHANGES_TABLE}" ORDER BY seq').fetchall()


def test_sink_writes_are_not_captured_but_app_writes_are() -> None:
    db = captured_database()
    rows = [{"id": f"r{i}", "name": "from mysql", "updatedAt": 1000 + i} for i in range(40)]
    batch(db, framed(upsert_statements(TABLE, rows)))
    batch(db, framed(upsert_statements(TABLE, [dict(rows[0], name="again", updatedAt=5000)])))
    batch(db, framed(delete_statements(TABLE, [{"id": "r1"}])))
    assert log(db) == []  # nothing for the relay to send back to MySQL
    assert db.execute('SELECT count(*) FROM "item"').fetchone() == (39,)
    # The app's own writes, outside a sink batch, are captured as before.
    db.execute('INSERT INTO "item" VALUES (?, ?, ?)', ("app", "x", 1))
    db.execute('UPDATE "item" SET name = ? WHERE id = ?', ("y", "r2"))
    db.execute('DELETE FROM "item" WHERE id = ?', ("r3",))
    assert log(db) == [
        ("upsert", '{"id":"app"}'),
        ("upsert", '{"id":"r2"}'),
        ("delete", '{"id":"r3"}'),
    ]


def test_a_failed_sink_batch_leaves_no_marker_behind() -> None:
    """A marker left by a rolled-back batch would silently stop all capture."""
    db = captured_database()
    statements = framed(upsert_statements(TABLE, [{"id": "a", "name": "n", "updatedAt": 1}]))
    db.execute("BEGIN")
    for s in statements[:-1]:
        db.execute(s.sql, s.params)
    db.execute("ROLLBACK")
    db.execute('INSERT INTO "item" VALUES (?, ?, ?)', ("app", "x", 1))
    assert log(db) == [("upsert", '{"id":"app"}')]
