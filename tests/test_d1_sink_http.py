"""D1Sink over D1HttpSource against the local stand-in of the D1 API: one batch request per
apply plus one state read per table, D1's limits kept, refusals and retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.change import Change
from consumers.d1_sink import D1Sink
from tests.d1_api_server import D1ApiServer, serve_d1_api
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
from worker.sources.budget import RequestBudget
from worker.sources.d1http import D1HttpSource

TOKEN = "sink-token"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return create_database(tmp_path / "d1.sqlite")


@pytest.fixture
def server(path: Path) -> Iterator[D1ApiServer]:
    with serve_d1_api(path, token=TOKEN) as running:
        yield running


@pytest.fixture
def source(server: D1ApiServer) -> Iterator[D1HttpSource]:
    client = D1HttpSource(
        server.account,
        server.database,
        TOKEN,
        server.base_url,
        budget=RequestBudget(1000),
        backoff_initial=0.01,
    )
    yield client
    client.close()


def test_one_batch_request_per_apply_and_one_state_read(
    server: D1ApiServer, source: D1HttpSource, path: Path
) -> None:
    """1,000 rows in two applies of 500 (the consume loop's default batch): 1,500 parameters
    each, sent as one batch of ≤100-parameter statements, plus one read of the side table."""
    sink = D1Sink(source, MAPPING)
    sink.apply([item(f"k{i:04d}", f"n{i}", 1000 + i) for i in range(500)])
    first = server.requests
    sink.apply([item(f"k{i:04d}", f"n{i}", 1000 + i) for i in range(500, 1000)])
    assert len(table_rows(path, "item")) == 1000
    assert first == 3  # the side tables' DDL (once), the state read, the batch
    assert server.requests - first == 2
    assert source.requests == server.requests  # the client counts what it sent
    assert all(len(params) <= 100 for _sql, params in server.queries)


def test_tombstones_hold_over_http(source: D1HttpSource, path: Path) -> None:
    sink = D1Sink(source, MAPPING)
    sink.apply([item("a", "live", 100), item("b", "live", 100)])
    sink.apply([item_deleted("a", ts_ms=500)])
    result = sink.apply([item("a", "replayed", 100, ts_ms=400), item("b", "newer", 200)])
    assert {k: r["name"] for k, r in table_rows(path, "item").items()} == {"b": "newer"}
    assert result.stale["item"] == 1


def test_a_row_d1_refuses_is_dead_lettered_alone(source: D1HttpSource, path: Path) -> None:
    sink = D1Sink(source, MAPPING)
    changes = [item(f"k{i}", f"n{i}", 10 + i) for i in range(8)]
    changes[5] = item("k5", None, 15)
    result = sink.apply(changes)
    assert [d.source for d in result.dead] == [changes[5].source]
    assert "NOT NULL" in result.dead[0].reason and '{"id":"k5"}' in result.dead[0].reason
    assert sorted(table_rows(path, "item")) == [f"k{i}" for i in range(8) if i != 5]


def test_a_throttled_batch_is_retried_and_applied_once(
    server: D1ApiServer, source: D1HttpSource, path: Path
) -> None:
    sink = D1Sink(source, MAPPING)
    sink.apply([item("a", "x", 1)])
    server.fail_next = [429, 503]
    sink.apply([item("b", "y", 2)])
    assert sorted(table_rows(path, "item")) == ["a", "b"]
    assert source.retries == 2


def test_a_batch_is_all_or_nothing(source: D1HttpSource, path: Path) -> None:
    insert = 'INSERT INTO "item" (id, name, "updatedAt") VALUES (?, ?, ?)'
    with pytest.raises(ServiceError, match="NOT NULL"):
        source.batch([(insert, ["ok", "n", 1]), (insert, ["bad", None, 1])])
    assert table_rows(path, "item") == {}
    assert source.batch([(insert, ["ok", "n", 1]), (insert, ["ok2", "n", 1])]) == [1, 1]
    assert sorted(table_rows(path, "item")) == ["ok", "ok2"]


def test_children_ahead_of_their_parents_apply_where_d1_enforces_foreign_keys(
    tmp_path: Path,
) -> None:
    """Over the API with foreign keys enforced, as D1 does: members before their teams in one
    batch apply (deferred to the commit); one batch request."""
    path = create_database(tmp_path / "fk.sqlite", FK_SCHEMA)

    def change(table: str, key: str, team: str) -> Change:
        row = {"team": team, "updatedAt": 5}
        return reverse_change(table, "upsert", key, row, ts_ms=5, mapping=FK_MAPPING)

    members = [change("member", f"m{i}", f"t{i % 3}") for i in range(6)]
    teams = [change("team", f"t{i}", "name") for i in range(3)]
    with serve_d1_api(path, token=TOKEN, foreign_keys=True) as server:
        source = D1HttpSource(server.account, server.database, TOKEN, server.base_url)
        result = D1Sink(source, FK_MAPPING).apply([*members, *teams])
        source.close()
        assert server.requests == 4  # start, one state read per table, the batch
    assert not result.dead
    assert len(table_rows(path, "member")) == 6 and len(table_rows(path, "team")) == 3
