"""consumers.d1_sink on a real SQLite file: version guard, ties, tombstones, NULL versions,
D1's limits, dead letters, no echo, and equality with the in-memory twin (property)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from consumers.coalesce import coalesce_batch
from consumers.d1_sink import STATES_TABLE, D1Sink
from consumers.memory_sink import MemorySink
from producers.capture_sql import CHANGES_TABLE, install_statements
from tests.d1_sink_fixtures import (
    FK_MAPPING,
    FK_SCHEMA,
    MAPPING,
    create_database,
    item,
    item_deleted,
    reverse_change,
    table_rows,
)
from worker.errors import ServiceError
from worker.no_echo import MARKER_DDL, MARKER_TABLE
from worker.schema.unconvert import unconvert_row
from worker.sources import SqliteSource


class RecordingWriter:
    """An SqliteSource that records every batch it runs."""

    def __init__(self, path: Path) -> None:
        self.source = SqliteSource(path, writable=True)
        self.batches: list[list[tuple[str, Sequence[Any]]]] = []

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.source.query(sql, params)

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        self.batches.append(list(statements))
        return self.source.batch(statements)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return create_database(tmp_path / "d1.sqlite")


@pytest.fixture
def writer(path: Path) -> Iterator[RecordingWriter]:
    recording = RecordingWriter(path)
    yield recording
    recording.source.close()


@pytest.fixture
def sink(writer: RecordingWriter) -> D1Sink:
    return D1Sink(writer, MAPPING)


def names(path: Path) -> dict[str, str]:
    return {k: r["name"] for k, r in table_rows(path, "item").items()}


def test_upsert_inserts_the_row_in_source_representation(sink: D1Sink, path: Path) -> None:
    result = sink.apply([item("a", "first", 1_760_000_000_123)])
    assert table_rows(path, "item") == {
        "a": {"id": "a", "name": "first", "updatedAt": 1_760_000_000_123}
    }
    assert result.applied[("item", "upsert")] == 1 and not result.dead


def test_older_version_never_overwrites_a_newer_one(sink: D1Sink, path: Path) -> None:
    sink.apply([item("a", "new", 200)])
    sink.apply([item("a", "old", 100)])
    assert names(path) == {"a": "new"}


def test_equal_version_applies(sink: D1Sink, path: Path) -> None:
    """The tie rule of the MySQL sink: the later event at an equal version wins."""
    sink.apply([item("a", "first", 100)])
    sink.apply([item("a", "second", 100)])
    assert names(path) == {"a": "second"}


def test_old_upsert_after_delete_does_not_resurrect_row(sink: D1Sink, path: Path) -> None:
    sink.apply([item("a", "live", 100)])
    sink.apply([item_deleted("a", ts_ms=500)])
    result = sink.apply([item("a", "replayed", 100, ts_ms=400)])
    assert names(path) == {}
    assert result.stale["item"] == 1


def test_reinsert_after_delete_with_later_ts_applies(sink: D1Sink, path: Path) -> None:
    """Even at a version below the deleted row's (a new incarnation)."""
    sink.apply([item("a", "live", 300)])
    sink.apply([item_deleted("a", ts_ms=500)])
    sink.apply([item("a", "again", 200, ts_ms=600)])
    assert names(path) == {"a": "again"}


def test_redelivered_delete_does_not_remove_a_reinserted_row(sink: D1Sink, path: Path) -> None:
    sink.apply([item_deleted("a", ts_ms=500), item("a", "again", 200, ts_ms=600)])
    sink.apply([item_deleted("a", ts_ms=500)])
    assert names(path) == {"a": "again"}


def test_null_version_is_the_lowest_version(sink: D1Sink, path: Path) -> None:
    """SQLite's `NULL >= x` is NULL: without the NULL-safe guard these updates were skipped."""

    def note(body: str, rev: int | None, ts: int) -> None:
        sink.apply([reverse_change("note", "upsert", "n", {"body": body, "rev": rev}, ts_ms=ts)])

    def body() -> str:
        return str(table_rows(path, "note")["n"]["body"])

    note("null", None, 1)
    note("null tie", None, 2)
    assert body() == "null tie"  # NULL = NULL: a tie applies
    note("versioned", 1, 3)
    assert body() == "versioned"  # 1 > NULL
    note("null again", None, 4)
    assert body() == "versioned"  # NULL < 1: stale


def test_table_without_versions_is_ordered_by_ts_ms(sink: D1Sink, path: Path) -> None:
    sink.apply([reverse_change("tag", "upsert", "t", {"label": "new"}, ts_ms=200)])
    result = sink.apply([reverse_change("tag", "upsert", "t", {"label": "old"}, ts_ms=100)])
    assert table_rows(path, "tag")["t"]["label"] == "new"
    assert result.stale["tag"] == 1


def test_rows_needing_more_than_100_parameters_land_within_d1_limits(
    writer: RecordingWriter, path: Path
) -> None:
    """300 rows x 3 columns = 900 parameters: ≤100 per statement, ≤ max_statements per
    batch (a small cap here, so the apply must split into several batches)."""
    sink = D1Sink(writer, MAPPING, max_statements=6)
    changes = [item(f"k{i:03d}", f"n{i}", 1000 + i) for i in range(300)]
    result = sink.apply(changes)
    assert result.applied[("item", "upsert")] == 300
    assert len(table_rows(path, "item")) == 300
    data_batches = writer.batches[1:]  # the first creates the marker and states tables
    assert len(data_batches) >= 3
    assert all(len(b) <= 6 for b in data_batches)
    assert all(len(params) <= 100 for b in data_batches for _sql, params in b)
    assert all(b[0][0] == "PRAGMA defer_foreign_keys = on" for b in data_batches)
    assert all(b[1][0].startswith(f'INSERT INTO "{MARKER_TABLE}"') for b in data_batches)
    assert all(b[-1][0].startswith(f'DELETE FROM "{MARKER_TABLE}"') for b in data_batches)


def test_default_limits_send_one_batch_per_apply(writer: RecordingWriter, path: Path) -> None:
    sink = D1Sink(writer, MAPPING)
    sink.apply([item(f"k{i:03d}", "n", 1000 + i) for i in range(500)])  # 16 statements
    assert len(writer.batches) == 2  # DDL once, then one batch
    assert len(table_rows(path, "item")) == 500


def test_a_refused_row_is_dead_lettered_alone(sink: D1Sink, path: Path) -> None:
    changes = [item(f"k{i:02d}", f"n{i}", 1000 + i) for i in range(40)]
    changes[17] = item("k17", None, 1017)  # D1's column is NOT NULL
    result = sink.apply(changes)
    assert len(table_rows(path, "item")) == 39 and "k17" not in table_rows(path, "item")
    assert [d.source for d in result.dead] == [changes[17].source]
    reason = result.dead[0].reason
    assert "item" in reason and '{"id":"k17"}' in reason and "NOT NULL" in reason
    assert "\n" not in reason
    assert result.applied[("item", "upsert")] == 39


def test_an_outage_is_a_service_error(path: Path) -> None:
    class Down(RecordingWriter):
        def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
            raise ServiceError("source batch failed on sqlite:x: disk I/O error")

    with pytest.raises(ServiceError, match="disk I/O"):
        D1Sink(Down(path), MAPPING).apply([item("a", "x", 1)])


def test_sink_writes_are_not_captured(sink: D1Sink, path: Path) -> None:
    """No echo: capture triggers log nothing for the sink's writes, the app's still are."""
    db = sqlite3.connect(path, isolation_level=None)
    for sql in install_statements(MAPPING):
        db.execute(sql)
    sink.apply([item(f"k{i}", "n", 100 + i) for i in range(30)])
    sink.apply([item("k1", "newer", 900), item_deleted("k2", ts_ms=950)])
    sink.apply([reverse_change("tag", "upsert", "t", {"label": "x"}, ts_ms=1)])
    assert db.execute(f'SELECT count(*) FROM "{CHANGES_TABLE}"').fetchone() == (0,)
    assert db.execute(f'SELECT count(*) FROM "{MARKER_TABLE}"').fetchone() == (0,)
    db.execute('UPDATE "item" SET name = ? WHERE id = ?', ("by the app", "k3"))
    assert db.execute(f'SELECT op, pk FROM "{CHANGES_TABLE}"').fetchall() == [
        ("upsert", '{"id":"k3"}')
    ]
    db.close()


def test_tombstones_live_in_the_side_table(sink: D1Sink, path: Path) -> None:
    sink.apply([item_deleted("a", ts_ms=500)])
    db = sqlite3.connect(path)
    assert db.execute(f'SELECT table_name, pk, op, ts_ms FROM "{STATES_TABLE}"').fetchall() == [
        ("item", '{"id":"a"}', "delete", 500)
    ]
    db.close()


# -- the in-memory twin ---------------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "c"])
_EVENT = st.tuples(
    st.sampled_from(["item", "tag"]),
    st.sampled_from(["upsert", "upsert", "delete", "delete_image"]),
    _KEYS,
    st.integers(1, 6),  # version (updatedAt): small, so ties happen
    st.integers(1, 6),  # ts_ms
)


def _change(table: str, op: str, key: str, version: int, ts: int, n: int) -> Any:
    if table == "tag":
        row = {"label": f"l{n}"} if op == "upsert" else None
        return reverse_change("tag", "upsert" if op == "upsert" else "delete", key, row, ts_ms=ts)
    if op == "upsert":
        return item(key, f"v{n}", version, ts_ms=ts)
    if op == "delete":
        return item_deleted(key, ts)
    image = {"name": "before", "updatedAt": version}  # a delete with its before-image
    return reverse_change("item", "delete", key, image, ts_ms=ts)


@settings(max_examples=50)
@given(batches=st.lists(st.lists(_EVENT, min_size=1, max_size=6), max_size=6))
def test_d1_sink_ends_like_the_memory_sink(
    batches: list[list[tuple[str, str, str, int, int]]],
) -> None:
    """Random reverse histories, batch by batch: the same rows in D1 as in MemorySink."""
    numbered = iter(range(10_000))
    memory = MemorySink(MAPPING)
    with tempfile.TemporaryDirectory() as folder:
        path = create_database(Path(folder) / "d1.sqlite")
        source = SqliteSource(path, writable=True)
        sink = D1Sink(source, MAPPING)
        for events in batches:
            batch = coalesce_batch([_change(*e, next(numbered)) for e in events])
            memory.apply(batch)
            sink.apply(batch)
        source.close()
        for table in ("item", "tag"):
            expected = {
                ident[1]: unconvert_row(MAPPING.table(table), row)
                for ident, row in memory.rows.items()
                if ident[0] == table
            }
            got = {f'{{"id":"{k}"}}': r for k, r in table_rows(path, table).items()}
            assert got == expected, table


def test_a_leftover_marker_row_is_deleted_at_start_not_blamed_on_rows(
    sink: D1Sink, path: Path
) -> None:
    """A marker row left by hand made every batch's marker insert fail with UNIQUE, read as a
    row refusal: every row was dead-lettered. The start deletes it, with a warning."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(MARKER_DDL)
    db.execute(f'INSERT INTO "{MARKER_TABLE}" (id) VALUES (1)')
    with capture_logs() as logs:
        result = sink.apply([item(f"k{i}", "n", 100 + i) for i in range(5)])
    assert not result.dead and len(table_rows(path, "item")) == 5
    assert [e["log_level"] for e in logs if MARKER_TABLE in e["event"]] == ["warning"]
    db.execute(f'INSERT INTO "{MARKER_TABLE}" (id) VALUES (1)')  # while the sink runs
    with pytest.raises(ServiceError, match=f"marker statement on {MARKER_TABLE}") as info:
        sink.apply([item("k9", "n", 1)])
    assert "\n" not in str(info.value)
    result = sink.apply([item("k9", "n", 1)])  # the loop's retry: the start runs again
    assert not result.dead and "k9" in table_rows(path, "item")
    assert db.execute(f'SELECT count(*) FROM "{MARKER_TABLE}"').fetchone() == (0,)
    db.close()


def test_a_batch_of_refused_rows_costs_about_one_request_per_row(
    writer: RecordingWriter, path: Path
) -> None:
    """64 rows, every one refused: halving spent 2n - 1 = 127 requests (500 rows: 999, most of
    D1's budget); narrowing by prefixes spends the first batch, log2 n to reach the first
    row alone, then one per row."""
    sink = D1Sink(writer, MAPPING)
    result = sink.apply([item(f"k{i:02d}", None, 100 + i) for i in range(64)])
    assert len(result.dead) == 64 and table_rows(path, "item") == {}
    assert len(writer.batches) - 1 == 1 + 6 + 63  # after the start's DDL


def test_a_few_refused_rows_cost_a_few_requests_each(writer: RecordingWriter, path: Path) -> None:
    """Three refused rows among 256: a few requests each (30; halving 31), the rest
    applied, the dead letters exactly those three."""
    sink = D1Sink(writer, MAPPING)
    bad = {3, 130, 131}
    changes = [item(f"k{i:03d}", None if i in bad else "n", 100 + i) for i in range(256)]
    result = sink.apply(changes)
    assert sorted(d.source for d in result.dead) == sorted(changes[i].source for i in bad)
    assert len(table_rows(path, "item")) == 253
    assert result.applied[("item", "upsert")] == 253
    assert len(writer.batches) - 1 <= 40


@pytest.fixture
def fk_sink(tmp_path: Path) -> Iterator[tuple[D1Sink, Path]]:
    """A D1 sink whose connection enforces foreign keys, as D1 does (sqlite3 does not)."""
    path = create_database(tmp_path / "fk.sqlite", FK_SCHEMA)
    source = SqliteSource(path, writable=True)
    source.query("PRAGMA foreign_keys = on")
    assert source.query("PRAGMA foreign_keys") == [{"foreign_keys": 1}]
    yield D1Sink(source, FK_MAPPING), path
    source.close()


def _team(key: str, name: str | None, at: int) -> Any:
    row = {"team": name, "updatedAt": at}
    return reverse_change("team", "upsert", key, row, ts_ms=at, mapping=FK_MAPPING)


def _member(key: str, team: str, at: int) -> Any:
    row = {"team": team, "updatedAt": at}
    return reverse_change("member", "upsert", key, row, ts_ms=at, mapping=FK_MAPPING)


def test_a_child_ahead_of_its_parent_in_a_batch_applies(fk_sink: tuple[D1Sink, Path]) -> None:
    """Reverse topics are per table: a member may come before its team in one batch.
    Foreign keys are deferred to the batch's commit, so the order does not matter."""
    sink, path = fk_sink
    result = sink.apply([_member("m1", "t1", 10), _team("t1", "blue", 10)])
    assert not result.dead
    assert table_rows(path, "member")["m1"]["team"] == "t1" and "t1" in table_rows(path, "team")


def test_narrowing_a_refused_batch_keeps_children_after_their_parents(
    fk_sink: tuple[D1Sink, Path],
) -> None:
    """A batch refused for another row is retried by prefixes: in the batch's order the first
    prefix would be the member alone, refused for want of its team and dead-lettered."""
    sink, path = fk_sink
    changes = [_member("m1", "t1", 10), _team("t0", None, 10), _team("t1", "blue", 10)]
    result = sink.apply(changes)
    assert [d.source for d in result.dead] == [changes[1].source]
    assert sorted(table_rows(path, "team")) == ["t1"] and sorted(table_rows(path, "member")) == [
        "m1"
    ]


def test_a_child_in_an_earlier_batch_than_its_parent_is_dead_lettered_then_replays(
    fk_sink: tuple[D1Sink, Path],
) -> None:
    """What deferring cannot fix: the child's batch commits without its parent. It is
    dead-lettered with SQLite's reason; replayed once the parent is there, it applies."""
    sink, path = fk_sink
    child = _member("m1", "t1", 10)
    result = sink.apply([child])
    assert [d.source for d in result.dead] == [child.source]
    assert "FOREIGN KEY" in result.dead[0].reason
    sink.apply([_team("t1", "blue", 10)])
    assert not sink.apply([child]).dead  # what `d1cdc dlq replay` does
    assert sorted(table_rows(path, "member")) == ["m1"]
