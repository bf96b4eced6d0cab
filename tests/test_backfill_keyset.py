"""Keyset paging and the lookback floor: pure logic, checked against a real SQLite engine."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.keyset import Watermark, lookback_floor, next_page, start_watermark
from worker.schema.mapping import mapping_from_dict

TABLE = mapping_from_dict(
    {
        "tables": {
            "limit": {  # a reserved word: identifiers must be quoted
                "primary_key": ["id"],
                "version_columns": ["updatedAt"],
                "columns": {"id": {"type": "integer"}, "updatedAt": {"type": "timestamp_s"}},
            }
        }
    }
).table("limit")


def _db(rows: list[tuple[int, int | None]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute('CREATE TABLE "limit" (id INTEGER PRIMARY KEY, "updatedAt" INTEGER)')
    conn.executemany('INSERT INTO "limit" VALUES (?, ?)', rows)
    return conn


def _drain(conn: sqlite3.Connection, mark: Watermark, chunk: int, floor: Any = None) -> list[int]:
    seen: list[int] = []
    first = True
    while True:
        page = next_page(TABLE, mark, chunk, floor=floor, first=first)
        first = False
        rows = [dict(r) for r in conn.execute(page.sql, page.params)]
        seen.extend(r["id"] for r in rows)
        if rows:
            mark = mark.advanced(rows[-1], TABLE, len(rows))
        if len(rows) < chunk:
            return seen


versions = st.lists(st.integers(1_700_000_000, 1_700_000_005), min_size=0, max_size=60)


@settings(max_examples=60, deadline=None)
@given(stamps=versions, chunk=st.integers(1, 7))
def test_incremental_pages_visit_every_versioned_row_once_in_version_order(
    stamps: list[int], chunk: int
) -> None:
    """Many rows share a timestamp; whatever the chunk size, each row is read exactly once,
    ordered by (version, pk) — ties never straddle a page boundary and get lost."""
    conn = _db([(i + 1, v) for i, v in enumerate(stamps)])
    seen = _drain(conn, Watermark("incremental"), chunk)
    expected = [i for _, i in sorted((v, i + 1) for i, v in enumerate(stamps))]
    assert seen == expected


@settings(max_examples=40, deadline=None)
@given(
    stamps=st.lists(st.one_of(st.none(), st.integers(0, 9)), max_size=40), chunk=st.integers(1, 5)
)
def test_snapshot_pages_visit_every_row_including_null_versions(
    stamps: list[int | None], chunk: int
) -> None:
    """The primary-key pass sees rows whatever their version, NULL included."""
    conn = _db([(i + 1, v) for i, v in enumerate(stamps)])
    assert _drain(conn, start_watermark(TABLE), chunk) == list(range(1, len(stamps) + 1))


def test_incremental_pass_from_floor_includes_rows_at_the_floor() -> None:
    """Re-reading from the lookback floor is inclusive: a row stamped exactly there is seen."""
    conn = _db([(1, 100), (2, 200), (3, 300)])
    assert _drain(conn, Watermark("incremental", pk=(3,), version=300), 10, floor=200) == [2, 3]


def test_lookback_floor_respects_the_storage_unit() -> None:
    """Seconds minus seconds, milliseconds minus milliseconds, text stays text."""
    assert lookback_floor(1_700_000_300, "timestamp_s", 300) == 1_700_000_000
    assert lookback_floor(1_700_000_300_000, "timestamp_ms", 300) == 1_700_000_000_000
    # `.defaultNow()` wrote milliseconds into a seconds column:
    assert lookback_floor(1_700_000_300_000, "timestamp_s", 300) == 1_700_000_000_000
    assert lookback_floor("2024-05-01 00:05:00", "timestamp_text", 300) == "2024-05-01 00:00:00"
    assert lookback_floor("2024-05-01T00:05:00", "timestamp_text", 300) == "2024-05-01T00:00:00"


def test_lookback_floor_leaves_counters_and_non_dates_alone() -> None:
    """A plain counter has no time axis, and unparseable text cannot be moved back."""
    assert lookback_floor(42, "integer", 300) == 42
    assert lookback_floor("v7", "text", 300) == "v7"
    assert lookback_floor(None, "timestamp_s", 300) is None


def test_a_page_can_select_only_some_columns() -> None:
    """Delete detection pages over keys only: no row bodies copied (or sent over D1's API)."""
    page = next_page(TABLE, Watermark("scan"), 10, columns=TABLE.primary_key)
    assert page.sql.startswith("SELECT " + ", ".join(f'"{c}"' for c in TABLE.primary_key) + " FROM")
    assert next_page(TABLE, Watermark("scan"), 10).sql.startswith("SELECT * FROM")
