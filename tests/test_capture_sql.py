"""The capture triggers, run by a real SQLite: what they log is exactly what was written."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture_drift import find_drift
from producers.capture_sql import install_statements, migration_text
from producers.changelog import ChangeLog, LeaseHeld, LogEntry, RelayLease, decode_entry
from worker.errors import SchemaError
from worker.schema.mapping import Mapping, mapping_from_dict
from worker.sources import SqliteSource

WIDE = 40  # more columns than one json_object call may hold on D1 (15 pairs)


def edge_mapping() -> Mapping:
    columns: dict[str, Any] = {"id": {"type": "string(40)"}, "v": {"type": "text"}}
    columns.update({f"c{i}": {"type": "text"} for i in range(WIDE)})
    return mapping_from_dict(
        {
            "tables": {
                "limit": {"primary_key": ["id"], "columns": columns},
                "child": {
                    "primary_key": ["a", "b"],
                    "columns": {"a": {"type": "string(40)"}, "b": {"type": "integer"}},
                },
            }
        }
    )


def make_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    cols = ", ".join(f"c{i}" for i in range(WIDE))
    conn.execute(f'CREATE TABLE "limit" (id TEXT PRIMARY KEY, v, {cols})')
    conn.execute(
        'CREATE TABLE child (a TEXT REFERENCES "limit"(id) ON DELETE CASCADE, b INTEGER, '
        "PRIMARY KEY (a, b))"
    )
    for statement in install_statements(edge_mapping()):
        conn.execute(statement)
    return conn


def entries(path: Path) -> list[LogEntry]:
    source = SqliteSource(path)
    try:
        return [decode_entry(r) for r in ChangeLog(source).read(10_000)]  # type: ignore[arg-type]
    finally:
        source.close()


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    path = tmp_path / "d1.sqlite"
    return path, make_db(path)


def test_migration_is_one_statement_per_line_uppercase_and_without_case() -> None:
    """D1's server-side splitter breaks on lowercase begin, CRLF, CASE…END and comments."""
    text = migration_text(edge_mapping())
    assert "\r" not in text and "--" not in text and " CASE " not in text.upper()
    for line in text.splitlines():
        assert line.endswith(";")
        if line.startswith("CREATE TRIGGER"):
            assert " BEGIN " in line and line.endswith(" END;")


def test_no_sql_function_call_has_more_than_32_arguments() -> None:
    """D1 limits SQL functions to 32 arguments: wide rows are built from several calls."""
    text = migration_text(edge_mapping())
    for start in (m.end() for m in re.finditer(r"\b(json_object|json_set)\(", text)):
        depth, args, i, quoted = 1, 1, start, False
        while depth:
            ch = text[i]
            if ch == "'":
                quoted = not quoted
            elif not quoted:
                depth += {"(": 1, ")": -1}.get(ch, 0)
                args += ch == "," and depth == 1
            i += 1
        assert args <= 32


values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.just(0.0),
    # quote() on SQLite 3.40 is exact in this range (see producers/capture_sql.py)
    st.floats(min_value=1e-100, max_value=1e100).flatmap(lambda f: st.sampled_from([f, -f])),
    st.text(),
    st.binary(max_size=64),
)


@settings(max_examples=60, deadline=None)
@given(v=values, wide=values)
def test_every_sqlite_value_is_logged_exactly(tmp_path_factory: Any, v: Any, wide: Any) -> None:
    """Blobs, 64-bit integers, REALs (0.1+0.2), any text and NULL round-trip unchanged,
    in the first json_object call and in a json_set continuation (column 39)."""
    path = tmp_path_factory.mktemp("rt") / "d1.sqlite"
    conn = make_db(path)
    conn.execute('INSERT INTO "limit" (id, v, c39) VALUES (?, ?, ?)', ("k", v, wide))
    (entry,) = entries(path)
    assert entry.op == "upsert" and entry.key == {"id": "k"}
    assert entry.row is not None
    for name, want in (("v", v), ("c39", wide)):
        got = entry.row[name]
        assert type(got) is type(want) and got == want, name


def test_edge_values_survive(db: tuple[Path, sqlite3.Connection]) -> None:
    path, conn = db
    row = ("k", 0.1 + 0.2, b"\x00\xff", 2**63 - 1, "🦄 4-byte", '{ "b": 1,  "a": [2] }')
    conn.execute('INSERT INTO "limit" (id, v, c0, c1, c2, c3) VALUES (?, ?, ?, ?, ?, ?)', row)
    (entry,) = entries(path)
    assert entry.row is not None
    got = tuple(entry.row[c] for c in ("id", "v", "c0", "c1", "c2", "c3"))
    assert got == row and entry.row["c20"] is None


def test_primary_key_change_is_a_delete_then_an_upsert(db: tuple[Path, sqlite3.Connection]) -> None:
    path, conn = db
    conn.execute("""INSERT INTO "limit" (id, v) VALUES ('old', 1)""")
    conn.execute("""UPDATE "limit" SET v = 2 WHERE id = 'old'""")
    conn.execute("""UPDATE "limit" SET id = 'new' WHERE id = 'old'""")
    log = [(e.op, e.key["id"]) for e in entries(path)]
    assert log == [("upsert", "old"), ("upsert", "old"), ("delete", "old"), ("upsert", "new")]


def test_rolled_back_writes_leave_nothing_and_cascades_are_captured(
    db: tuple[Path, sqlite3.Connection],
) -> None:
    path, conn = db
    conn.execute("BEGIN")
    conn.execute("""INSERT INTO "limit" (id) VALUES ('gone')""")
    conn.execute("ROLLBACK")
    assert entries(path) == []
    conn.execute("""INSERT INTO "limit" (id) VALUES ('p')""")
    conn.execute("INSERT INTO child (a, b) VALUES ('p', 1), ('p', 2)")
    conn.execute("""INSERT INTO child (a, b) VALUES ('p', 1) ON CONFLICT DO UPDATE SET b = 3""")
    conn.execute("""DELETE FROM "limit" WHERE id = 'p'""")
    log = [(e.table, e.op, str(e.key)) for e in entries(path)]
    assert set(log[-3:]) == {
        ("child", "delete", str({"a": "p", "b": 2})),
        ("child", "delete", str({"a": "p", "b": 3})),
        ("limit", "delete", str({"id": "p"})),
    }
    # ON CONFLICT DO UPDATE SET b = 3 changed a primary key: delete of (p, 1), upsert (p, 3)
    assert ("child", "delete", str({"a": "p", "b": 1})) in log


def test_check_finds_a_drizzle_kit_rebuild(db: tuple[Path, sqlite3.Connection]) -> None:
    """drizzle-kit rebuilds a table as __new_x + copy + drop + rename: its triggers are gone."""
    path, conn = db
    source = SqliteSource(path)
    assert find_drift(edge_mapping(), source) == []
    conn.executescript(
        "PRAGMA foreign_keys=OFF; CREATE TABLE __new_child (a TEXT, b TEXT, PRIMARY KEY (a, b));"
        "INSERT INTO __new_child SELECT * FROM child; DROP TABLE child;"
        "ALTER TABLE __new_child RENAME TO child; PRAGMA foreign_keys=ON;"
    )
    conn.execute('ALTER TABLE "limit" ADD COLUMN extra TEXT')
    drift = [str(d) for d in find_drift(edge_mapping(), source)]
    assert sum(d.startswith("child: trigger _d1cdc_child_") for d in drift) == 3
    assert any(d.startswith("limit: column 'extra' is not captured") for d in drift)


def test_table_without_primary_key_is_refused() -> None:
    with pytest.raises(SchemaError, match="no primary key"):
        mapping_from_dict(
            {"tables": {"t": {"primary_key": [], "columns": {"a": {"type": "text"}}}}}
        )


def test_a_second_lease_holder_is_refused_until_the_lease_expires(
    db: tuple[Path, sqlite3.Connection],
) -> None:
    path, conn = db
    source = SqliteSource(path, writable=True)
    first, second = RelayLease(source, "one", 30), RelayLease(source, "two", 30)
    first.acquire()
    first.acquire()  # renewing one's own lease is fine
    with pytest.raises(LeaseHeld, match=r"another relay \(one\)"):
        second.acquire()
    conn.execute('UPDATE "_d1cdc_relay_lease" SET expires_ms = 0')  # as if it ran out
    second.acquire()
    conn.execute("""INSERT INTO "limit" (id) VALUES ('x')""")
    log = ChangeLog(source)
    assert log.delete_through(10**9, "one") == 0  # the old holder is fenced off
    assert log.state().depth == 1
    assert log.delete_through(10**9, "two") == 1
