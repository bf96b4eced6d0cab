"""Chunk checksums: SQLite's rendering and MySQL's agree byte for byte on equal rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from worker.config import Settings
from worker.db import create_target_engine
from worker.schema.convert import convert_row
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import TableMapping, mapping_from_dict
from worker.sources.sqlite import SqliteSource
from worker.verify.checksum import SourceRenderer, TargetChecksums, checksum_of

pytestmark = pytest.mark.integration

TYPES = {
    "id": "string(20)",
    "name": "text",
    "small": "integer",
    "big": "bigint",
    "flag": "boolean",
    "at_s": "timestamp_s",
    "at_ms": "timestamp_ms",
    "at_text": "timestamp_text",
    "doc": "json",
    "price": "decimal(10,2)",
    "raw": "blob",
}
ROWS = [
    ("a", "Zoë 🚀", 7, 2**62, 1, 1_700_000_000, 1_700_000_000_123, "2024-02-29 23:59:59",
     '{"b":[1,2],"a":"x"}', "12.50", b"\x00\xff"),
    ("b", "", -2**31, -(2**63), 0, -86_400, -1, "1999-12-31T23:59:59.5",
     "[]", 0, b""),
    ("c", None, None, None, None, "2024-01-01 00:00:00", None, None, None, None, None),
]  # fmt: skip


@pytest.fixture
def table(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> tuple[TableMapping, SqliteSource, sa.Engine, Path]:
    """The same rows in an SQLite source and (converted) in the MariaDB target."""
    columns = {
        name: {"type": kind, "nullable": name not in ("id", "at_s")} for name, kind in TYPES.items()
    }
    mapping = mapping_from_dict({"tables": {"t": {"primary_key": ["id"], "columns": columns}}})
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE t ({', '.join(TYPES)}, PRIMARY KEY (id))")
    conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in TYPES)})", ROWS)
    conn.commit()
    conn.close()
    settings = make_settings()
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    source = SqliteSource(path)
    t = mapping.table("t")
    with engine.begin() as db:
        db.execute(
            sa.table("t", *(sa.column(c) for c in TYPES)).insert(),
            [convert_row(t, r) for r in source.query("SELECT * FROM t")],
        )
    return t, source, engine, path


def test_equal_rows_have_equal_checksums_for_every_logical_type(
    table: tuple[TableMapping, SqliteSource, sa.Engine, Path],
) -> None:
    """Text, ints, booleans, all timestamp kinds, JSON as written, decimals, blobs, NULLs."""
    t, source, engine, _ = table
    _, source_sum = SourceRenderer(source, t).after(None, 100)
    assert source_sum.rows == len(ROWS)
    assert source_sum == TargetChecksums(engine, t).between(None, None)


def test_a_changed_value_changes_the_checksum(
    table: tuple[TableMapping, SqliteSource, sa.Engine, Path],
) -> None:
    """One millisecond, one character or a NULL-vs-empty change is enough to differ."""
    t, source, engine, _ = table
    _, source_sum = SourceRenderer(source, t).after(None, 100)
    target = TargetChecksums(engine, t)
    for change in (
        "UPDATE t SET at_ms = at_ms + INTERVAL 1000 MICROSECOND WHERE id = 'a'",
        "UPDATE t SET name = 'Zoe 🚀' WHERE id = 'a'",
        "UPDATE t SET name = '' WHERE id = 'c'",
    ):
        with engine.begin() as db:
            db.exec_driver_sql(change)
        assert target.between(None, None) != source_sum, change
        with engine.begin() as db:  # put the row back for the next change
            db.exec_driver_sql("DELETE FROM t")
            db.execute(
                sa.table("t", *(sa.column(c) for c in TYPES)).insert(),
                [convert_row(t, r) for r in source.query("SELECT * FROM t")],
            )
        assert target.between(None, None) == source_sum


def test_checksum_is_order_independent_but_count_sensitive() -> None:
    """XOR of CRCs: the order rows arrive in does not matter; a duplicate row does."""
    assert checksum_of(["x", "y"]) == checksum_of(["y", "x"])
    assert checksum_of(["x", "x", "y"]) != checksum_of(["y"])
