"""consumers.d1_statements against a real SQLite: guard, tie rule, ≤100 params, marker."""

from __future__ import annotations

import sqlite3

from consumers.d1_statements import (
    MARKER_DDL,
    MARKER_TABLE,
    Statement,
    delete_statements,
    framed,
    guarded_delete_statement,
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


def test_a_pre_cutover_text_version_does_not_block_updates_or_deletes() -> None:
    """A row from before cut-over with TEXT from `DEFAULT CURRENT_TIMESTAMP` in a
    `timestamp_s` column: SQLite orders any TEXT above any INTEGER, so the sink's INTEGER
    versions were all skipped. Across storage classes the incoming event wins."""
    db = database()
    db.execute(
        'INSERT INTO "limit" VALUES (?, ?, ?, ?, ?)', ("a", 2**60, "old", "2026-12-01 10:00:00", 9)
    )
    db.execute(
        'INSERT INTO "limit" VALUES (?, ?, ?, ?, ?)', ("b", 2**60, "old", "2026-12-01 10:00:00", 9)
    )
    run(db, upsert_statements(TABLE, [row("a", "after cut-over", 1_796_119_200)]))
    assert values(db) == [("a", "after cut-over"), ("b", "old")]
    run(db, [guarded_delete_statement(TABLE, {"id": "b", "n": 2**60}, [1_796_119_200, 0])])
    assert values(db) == [("a", "after cut-over")]
    run(db, upsert_statements(TABLE, [row("a", "older", 1_796_119_199, 99)]))
    assert values(db) == [("a", "after cut-over")]  # the sink's own rows: guard exact


TEXT_TABLE = mapping_from_dict(
    {
        "tables": {
            "event": {
                "primary_key": ["id"],
                "version_columns": ["at"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "v": {"type": "text"},
                    "at": {"type": "timestamp_text"},
                },
            }
        }
    }
).table("event")


def test_iso_and_space_text_timestamps_compare_as_moments() -> None:
    """The app's ISO '…T10:00:00' against the sink's '… 11:00:00': compared as text, 'T'
    sorts above ' ' and a later update on the same day was skipped."""
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE "event" (id TEXT PRIMARY KEY, v TEXT, "at" TEXT)')
    db.executemany(
        'INSERT INTO "event" VALUES (?, ?, ?)',
        [("a", "app", "2026-12-01T10:00:00"), ("b", "app", "2026-12-01T10:00:00.250Z")],
    )

    def upsert(key: str, v: str, at: str | None) -> None:
        run(db, upsert_statements(TEXT_TABLE, [{"id": key, "v": v, "at": at}]))

    def rows() -> dict[str, str]:
        return dict(db.execute('SELECT id, v FROM "event"').fetchall())

    upsert("a", "earlier", "2026-12-01 09:59:59.999")
    upsert("b", "earlier", "2026-12-01 10:00:00.249")
    assert rows() == {"a": "app", "b": "app"}  # older: still stale
    upsert("a", "tie", "2026-12-01 10:00:00")
    upsert("b", "later", "2026-12-01 11:00:00")
    assert rows() == {"a": "tie", "b": "later"}
    upsert("a", "null", None)
    assert rows()["a"] == "tie"  # NULL is still the lowest version
    run(db, [guarded_delete_statement(TEXT_TABLE, {"id": "b"}, ["2026-12-01 10:59:59"])])
    assert rows() == {"a": "tie", "b": "later"}
    db.execute("UPDATE \"event\" SET \"at\" = '2026-12-01T12:00:00' WHERE id = 'b'")
    run(db, [guarded_delete_statement(TEXT_TABLE, {"id": "b"}, ["2026-12-01 12:00:00.000"])])
    assert rows() == {"a": "tie"}
