"""The D1 HTTP source against a local server speaking the documented D1 query API."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from d1_api_server import D1ApiServer, serve_d1_api

from consumers.d1_statements import guarded_delete_statement
from worker.errors import ConfigError, ServiceError
from worker.schema.mapping import mapping_from_dict
from worker.sources.base import MAX_PARAMS, column_names, rows_by_keys
from worker.sources.budget import RequestBudget
from worker.sources.d1http import D1HttpSource, inline_unsafe_params

TOKEN = "tok-very-secret-123"


@pytest.fixture
def source_db(tmp_path: Path) -> Path:
    path = tmp_path / "d1.sqlite"
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE "user" (id TEXT PRIMARY KEY, n INTEGER, avatar BLOB)')
    conn.executemany(
        'INSERT INTO "user" VALUES (?, ?, ?)',
        [(f"u{i:04d}", i, bytes([i % 256, 0])) for i in range(250)],
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def server(source_db: Path) -> Iterator[D1ApiServer]:
    with serve_d1_api(source_db, token=TOKEN) as running:
        yield running


def _source(server: D1ApiServer, **kwargs: object) -> D1HttpSource:
    return D1HttpSource("acct", "db1", TOKEN, server.base_url, backoff_initial=0.01, **kwargs)  # type: ignore[arg-type]


def test_query_returns_rows_in_source_representation(server: D1ApiServer) -> None:
    """Rows come back as dicts; D1's byte arrays become bytes again."""
    rows = _source(server).query('SELECT * FROM "user" WHERE id = ?', ["u0003"])
    assert rows == [{"id": "u0003", "n": 3, "avatar": b"\x03\x00"}]


def test_lookup_of_more_than_100_keys_is_split_into_allowed_queries(server: D1ApiServer) -> None:
    """250 keys (+ 5 missing) are fetched in queries of ≤ 100 parameters; all present ones found."""
    keys = [(f"u{i:04d}",) for i in range(250)] + [(f"missing{i}",) for i in range(5)]
    rows = rows_by_keys(_source(server), "user", ["id"], keys)
    assert sorted(r["id"] for r in rows) == [f"u{i:04d}" for i in range(250)]
    assert len(server.queries) == 3
    assert all(len(params) <= MAX_PARAMS for _, params in server.queries)


def test_composite_key_lookup_binds_whole_keys_per_chunk(server: D1ApiServer) -> None:
    """A two-column key uses row values and never splits one key across two queries."""
    keys = [(f"u{i:04d}", i) for i in range(120)]
    rows = rows_by_keys(_source(server), "user", ["id", "n"], keys)
    assert len(rows) == 120
    assert all(len(params) % 2 == 0 and len(params) <= 100 for _, params in server.queries)


def test_429_then_success_is_retried(server: D1ApiServer) -> None:
    """Two throttled answers, then the query succeeds: the caller only sees the rows."""
    server.fail_next = [429, 503]
    source = _source(server)
    assert column_names(source, "user") == ["id", "n", "avatar"]
    assert source.retries == 2 and source.requests == 3


def test_persistent_5xx_gives_up_with_a_service_error(server: D1ApiServer) -> None:
    """Retries are bounded; then one ServiceError names the source, not the token."""
    server.fail_next = [500] * 10
    with pytest.raises(ServiceError, match=r"D1 API .*kept failing") as info:
        _source(server, max_attempts=3).query("SELECT 1 AS one")
    assert TOKEN not in str(info.value)


def test_wrong_token_is_refused_without_retry_or_leak(server: D1ApiServer) -> None:
    """HTTP 401 is not transient: one request, an error quoting D1's reason, no token."""
    source = D1HttpSource("acct", "db1", "wrong-token-456", server.base_url)
    with pytest.raises(ServiceError, match=r"HTTP 401.*Authentication error") as info:
        source.query("SELECT 1 AS one")
    assert "wrong-token-456" not in str(info.value) and source.requests == 1


def test_missing_account_setting_names_the_variable() -> None:
    """An empty account id is a ConfigError naming D1CDC_D1_ACCOUNT_ID."""
    with pytest.raises(ConfigError, match="D1CDC_D1_ACCOUNT_ID"):
        D1HttpSource("", "db1", TOKEN)


def test_budget_waits_once_the_window_is_full() -> None:
    """The (limit+1)-th request within the window waits until the oldest one ages out."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = RequestBudget(limit=3, window=10.0, clock=lambda: now[0], sleep=sleep, burst=3)
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        assert budget.acquire() == 0.0
    now[0] = 3.0
    assert budget.acquire() == pytest.approx(7.0)
    assert slept == [pytest.approx(7.0)]


def test_budget_paces_requests_instead_of_spending_the_window_at_once() -> None:
    """A burst of a tenth of the limit, then one request per (window / (limit - burst)):
    a busy caller waits a little per request instead of stalling for most of the window
    once it is spent, and no window ever holds more than the limit."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = RequestBudget(limit=20, window=90.0, clock=lambda: now[0], sleep=sleep)
    assert (budget.burst, budget.rate) == (2, 0.2)
    waits = [budget.acquire() for _ in range(5)]
    assert waits == [0.0, 0.0, pytest.approx(5.0), pytest.approx(5.0), pytest.approx(5.0)]
    sent = []
    for _ in range(200):
        budget.acquire()
        sent.append(now[0])
    assert max(sum(1 for t in sent if start <= t < start + 90) for start in sent) <= 20


def test_blobs_and_integers_beyond_2_53_are_written_as_literals_not_json() -> None:
    sql, params = inline_unsafe_params(
        "INSERT INTO \"t?\" (a, b, c, d) VALUES (?, ?, ?, '?') -- ?", [b"\x00\xff", 2**53 + 1, 7]
    )
    assert sql == "INSERT INTO \"t?\" (a, b, c, d) VALUES (X'00ff', 9007199254740993, ?, '?') -- ?"
    assert params == [7]
    assert inline_unsafe_params("SELECT ?", [2**53 - 1]) == ("SELECT ?", [2**53 - 1])


def test_a_batch_round_trips_blobs_and_large_integers_exactly(tmp_path: Path) -> None:
    db = tmp_path / "d1.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, big INTEGER, data BLOB)")
    values = [(1, -(2**63), b"\x00\x01binary\xff"), (2, 2**63 - 1, bytes(range(256)))]
    with serve_d1_api(db) as server:
        source = D1HttpSource(server.account, server.database, server.token, server.base_url)
        source.batch([("INSERT INTO t VALUES (?, ?, ?)", row) for row in values])
        with pytest.raises(ServiceError, match="string or blob too big"):
            source.batch([("INSERT INTO t VALUES (3, 0, ?)", [b"x" * 60_000])])
        source.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == values


def test_numbered_placeholders_become_plain_ones_in_occurrence_order() -> None:
    """`?NNN` is parameter NNN and a bare `?` the next after the largest (SQLite): a parameter
    named twice is bound or written out twice, a literal never runs into following digits."""
    sql, params = inline_unsafe_params(
        "SELECT ?2, ?1, ?2, ?, ?10 -- ?9", [2**60, "s", b"\x01", *range(4, 11)]
    )
    assert sql == "SELECT ?, 1152921504606846976, ?, X'01', ? -- ?9"
    assert params == ["s", "s", 10]
    assert inline_unsafe_params("SELECT 1 - ?", [-(2**63)]) == (
        "SELECT 1 - (-9223372036854775808)",
        [],
    )


def test_a_placeholder_without_its_parameter_is_a_one_line_service_error() -> None:
    """No traceback out of `batch()` (an IndexError crash-looped the D1 sink): a ServiceError
    saying what does not match, before any request."""
    source = D1HttpSource("acct", "db1", TOKEN, "http://127.0.0.1:9")
    with pytest.raises(ServiceError, match=r"placeholder \?3 but 2 parameters") as info:
        source.batch([("DELETE FROM t WHERE a = ?1 AND b = ?3", [2**60, 1])])
    assert "\n" not in str(info.value) and source.requests == 0
    with pytest.raises(ServiceError, match="3 parameters for 1 placeholders"):
        source.batch([("DELETE FROM t WHERE a = ?", [b"x", 1, 2])])
    source.close()


def test_a_guarded_delete_with_a_big_integer_key_and_a_blob_version(tmp_path: Path) -> None:
    """The D1 sink's guarded delete (numbered placeholders, each version named twice) over the
    HTTP API: key 2^60 + 1 and a BLOB version, written as literals, guard applied exactly."""
    table = mapping_from_dict(
        {
            "tables": {
                "doc": {
                    "primary_key": ["id"],
                    "version_columns": ["stamp"],
                    "columns": {
                        "id": {"type": "bigint", "nullable": False},
                        "stamp": {"type": "blob"},
                    },
                }
            }
        }
    ).table("doc")
    big = 2**60 + 1
    db = tmp_path / "d1.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE doc (id INTEGER PRIMARY KEY, stamp BLOB)")
        conn.executemany("INSERT INTO doc VALUES (?, ?)", [(big, b"\x02"), (big + 1, b"\x02")])
    with serve_d1_api(db) as server:
        source = D1HttpSource(server.account, server.database, server.token, server.base_url)
        older = guarded_delete_statement(table, {"id": big}, [b"\x01"])
        newer = guarded_delete_statement(table, {"id": big + 1}, [b"\x03"])
        assert source.batch([older, newer]) == [0, 1]
        source.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, stamp FROM doc").fetchall() == [(big, b"\x02")]
