"""consumers.literals: multi-row upserts byte for byte as PyMySQL's executemany builds them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pymysql
from hypothesis import given
from hypothesis import strategies as st
from pymysql import converters
from pymysql.constants import SERVER_STATUS
from pymysql.cursors import Cursor

from consumers.literals import execute_upsert, literal, row_renderer

STATEMENT = (
    "INSERT INTO `t` (`a`, `b`, `c`) VALUES (%s, %s, %s) "
    "ON DUPLICATE KEY UPDATE `b` = VALUES(`b`), `c` = VALUES(`c`)"
)


class _Connection:
    """Just what PyMySQL's escaping and executemany read from a connection; no server."""

    encoding = "utf8"
    encoders = converters.encoders

    def __init__(self, server_status: int = 0) -> None:
        self.server_status = server_status

    escape = pymysql.connections.Connection.escape
    _escape_string = pymysql.connections.Connection._escape_string  # type: ignore[attr-defined]


class _RecordingCursor(Cursor):
    """A PyMySQL cursor whose `execute` records the statement instead of sending it."""

    def __init__(self, connection: _Connection, max_stmt_length: int = 1_024_000) -> None:
        super().__init__(connection)  # type: ignore[arg-type]
        self.max_stmt_length = max_stmt_length  # type: ignore[misc]
        self.sent: list[bytes] = []

    def _get_db(self) -> Any:
        return self.connection

    def execute(self, query: Any, args: Any = None) -> int:
        assert args is None
        self.sent.append(bytes(query))
        return 0


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
    st.datetimes(min_value=datetime(1000, 1, 1)),
    st.datetimes(timezones=st.just(UTC)),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=8),
)


@given(VALUES)
def test_literal_is_what_pymysql_escape_returns(value: Any) -> None:
    """Every value renders exactly as PyMySQL's own Connection.escape renders it."""
    connection: Any = _Connection()
    assert literal(connection, value) == connection.escape(value)


def test_quotes_and_backslashes_are_escaped() -> None:
    """Text that tries to leave its literal stays inside it."""
    assert literal(_Connection(), "x'); DROP TABLE t; --\\") == "'x\\'); DROP TABLE t; --\\\\'"  # type: ignore[arg-type]


@given(st.lists(st.tuples(VALUES, VALUES, VALUES), min_size=1, max_size=40), st.integers(200, 5000))
def test_statements_are_the_ones_executemany_sends(
    rows: list[tuple[Any, Any, Any]], max_stmt_length: int
) -> None:
    """Same statements, cut at the same places, as PyMySQL's executemany rewrite."""
    ours, theirs = (
        _RecordingCursor(_Connection(), max_stmt_length),
        _RecordingCursor(_Connection(), max_stmt_length),
    )
    execute_upsert(ours, STATEMENT, rows)
    theirs.executemany(STATEMENT, rows)
    assert ours.sent == theirs.sent
    assert all(s.startswith(b"INSERT INTO `t`") and b"ON DUPLICATE KEY" in s for s in ours.sent)


def test_no_backslash_escapes_mode_is_left_to_pymysql() -> None:
    """With NO_BACKSLASH_ESCAPES a quote is doubled, as PyMySQL does in that mode."""
    connection = _Connection(SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
    cursor = _RecordingCursor(connection)
    execute_upsert(cursor, STATEMENT, [("it's", Decimal("1.5"), None)])
    assert cursor.sent == [STATEMENT.replace("(%s, %s, %s)", "('it''s', 1.5, NULL)").encode()]


ROW_TYPES = st.lists(st.sampled_from([str, int, bool, float, datetime, Decimal, bytes]), max_size=6)


@given(st.data(), ROW_TYPES)
def test_a_rendered_row_is_its_literals_joined(data: st.DataObject, types: list[type]) -> None:
    """Whatever a column holds (its usual type, NULL or anything else), the generated
    renderer writes exactly what `literal` writes for each value."""
    connection: Any = _Connection()
    row = data.draw(st.tuples(*[VALUES for _ in types]))
    render = row_renderer(types)
    expected = "(" + ", ".join(literal(connection, v) for v in row) + ")"
    assert render(row, lambda v: literal(connection, v)) == expected


def test_the_usual_types_are_rendered_inline() -> None:
    """str, int, bool, float and naive datetimes never reach the fallback (the speed-up)."""
    row = ("it's", -5, True, 0.5, datetime(2025, 1, 2, 3, 4, 5, 6000), None)
    render = row_renderer([str, int, bool, float, datetime, str])

    def refuse(value: Any) -> str:
        raise AssertionError(f"{value!r} reached the fallback")

    assert render(row, refuse) == "('it\\'s', -5, 1, 0.5e0, '2025-01-02 03:04:05.006000', NULL)"


@given(st.lists(st.tuples(VALUES, VALUES, VALUES), min_size=1, max_size=40))
def test_rendered_statements_are_the_ones_executemany_sends(
    rows: list[tuple[Any, Any, Any]],
) -> None:
    """With a renderer the statements are still byte for byte PyMySQL's."""
    ours, theirs = _RecordingCursor(_Connection()), _RecordingCursor(_Connection())
    execute_upsert(ours, STATEMENT, rows, row_renderer([str, int, datetime]))
    theirs.executemany(STATEMENT, rows)
    assert ours.sent == theirs.sent
