"""Multi-row upserts rendered with PyMySQL's own escaping, minus its per-value dispatch.

PyMySQL's `executemany` turns `INSERT … VALUES (%s, …) ON DUPLICATE KEY UPDATE …` into one
multi-row statement, but escapes every value through `Connection.escape` → `escape_item` →
the encoder of its type, then `%`-formats each row: about 15 µs of CPU per 15-column row,
the largest single cost of the apply (py-spy on `d1cdc consume` of ops/bench/bench_apply.py's
events). The rows a sink writes hold a handful of types (the converters' outputs), so here
each value goes through one dict lookup to the very escape function PyMySQL would reach
(`escape_string`, `escape_float`, …); any other type, and a server in `NO_BACKSLASH_ESCAPES`
mode, is left to PyMySQL itself. The bytes sent are identical to PyMySQL's (tested in
tests/test_literals.py); only the route to them is shorter, about half the CPU.

`row_renderer` goes one step further for a table whose column types are known: it
generates one function rendering a whole row, with each column's usual type escaped inline
(6.6 → 5.3 µs per 15-column row with `timeit`; most of what is left is `isoformat`, `repr` of
floats and `escape_string` themselves) and anything else through `literal`.

Why the statement is rendered by hand at all (the one place that says it): PyMySQL's
`executemany` is the library's own path, and the only cost it adds is CPU, which in one
`d1cdc consume` process is shared with decoding under one GIL. This module builds on PyMySQL
internals — `RE_INSERT_VALUES`, `escape_string`/`escape_float`, the cut at
`max_stmt_length` of `_do_execute_many` — that a major release may change, so PyMySQL's major
version is pinned in pyproject.toml, and tests/test_literals.py compares the bytes sent with
PyMySQL's own on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast

from pymysql.connections import Connection
from pymysql.constants import SERVER_STATUS
from pymysql.converters import escape_float, escape_string
from pymysql.cursors import RE_INSERT_VALUES, Cursor


def _text(value: str) -> str:
    return "'" + escape_string(value) + "'"


def _datetime(value: datetime) -> str | None:
    # isoformat(" ") of a naive datetime is byte for byte PyMySQL's escape_datetime format
    # (fraction only when microsecond != 0); an aware one goes to PyMySQL.
    return None if value.tzinfo is not None else "'" + value.isoformat(" ") + "'"


_ESCAPES: dict[type, Callable[[Any], str | None]] = {
    str: _text,
    int: int.__repr__,
    bool: lambda value: "1" if value else "0",
    float: escape_float,
    type(None): lambda _value: "NULL",
    datetime: _datetime,
}


def literal(connection: Connection[Any], value: Any) -> str:
    """`value` as the SQL literal PyMySQL's `connection.escape(value)` returns."""
    escape = _ESCAPES.get(type(value))
    text = escape(value) if escape is not None else None
    return connection.escape(value) if text is None else text


RowRenderer = Callable[[Sequence[Any], Callable[[Any], str]], str]

# Per Python type: the test that a value is of it, and its literal, as PyMySQL writes them.
_INLINE: dict[type, tuple[str, str]] = {
    str: ("type({v}) is str", "_q + _escape_string({v}) + _q"),
    int: ("type({v}) is int", "_int_repr({v})"),
    bool: ("type({v}) is bool", "('1' if {v} else '0')"),
    float: ("type({v}) is float", "_escape_float({v})"),
    datetime: (
        "type({v}) is datetime and {v}.tzinfo is None",
        "_q + {v}.isoformat(_space) + _q",
    ),
}


def row_renderer(types: Sequence[type]) -> RowRenderer:
    """A function `(row, literal) → "(v0, v1, …)"` for rows whose column i usually holds a
    `types[i]`: such values are rendered inline, None as NULL, any other through `literal`.
    The result equals joining `literal(v)` for every value (tested)."""
    namespace: dict[str, Any] = {
        "_escape_string": escape_string,
        "_escape_float": escape_float,
        "_int_repr": int.__repr__,
        "datetime": datetime,
        "_q": "'",
        "_space": " ",
    }
    names = [f"a{i}" for i in range(len(types))]
    lines = ["def render(row, literal):", f"    [{', '.join(names)}] = row"]
    for name, kind in zip(names, types, strict=True):
        inline = _INLINE.get(kind)
        other = f"('NULL' if {name} is None else literal({name}))"
        if inline is None:
            lines.append(f"    s{name} = {other}")
        else:
            test, text = (part.format(v=name) for part in inline)
            lines.append(f"    s{name} = {text} if {test} else {other}")
    parts = ", ".join(f"{{s{name}}}" for name in names)
    lines.append(f'    return f"({parts})"')
    exec("\n".join(lines), namespace)  # generated from Python types only
    render: RowRenderer = namespace["render"]
    return render


class RowTooLarge(Exception):
    """One row's statement is bigger than the server's max_allowed_packet: MySQL would drop
    the connection (2006/2013, which look transient) on every retry, forever."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the row's upsert is {size} bytes, over the target's max_allowed_packet ({limit})"
        )


def execute_upsert(
    cursor: Cursor,
    statement: str,
    rows: Sequence[Sequence[Any]],
    render: RowRenderer | None = None,
    *,
    max_packet: int | None = None,
) -> None:
    """`cursor.executemany(statement, rows)` for an `INSERT … VALUES (%s, …) …` statement;
    `render` (from `row_renderer`) renders a row faster when the column types are known.
    A row whose statement alone exceeds `max_packet` raises `RowTooLarge` before sending."""
    connection = cursor.connection
    match = RE_INSERT_VALUES.match(statement)
    status: int = getattr(connection, "server_status", 0)  # not in PyMySQL's stubs
    no_backslash = status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
    template = match.group(2).rstrip() if match is not None else ""
    width = template.count("%s")
    if no_backslash or template != "(" + ", ".join(["%s"] * width) + ")":
        cursor.executemany(statement, rows)  # another form, or another escaping mode
        return
    if not rows or any(len(row) != width for row in rows):
        cursor.executemany(statement, rows)  # PyMySQL says what is wrong
        return
    assert match is not None
    encoding = connection.encoding
    prefix = (match.group(1) % ()).encode(encoding)
    postfix = (match.group(3) or "").encode(encoding)
    # The same cut as PyMySQL's _do_execute_many: never above `max_stmt_length` bytes unless a
    # single row is (then it goes alone), so max_allowed_packet behaves as with executemany.
    limit = cursor.max_stmt_length
    # Bytes, as PyMySQL's executemany sends them (strictly encoded); its stubs say str only.
    execute = cast(Callable[[bytes], int], cursor.execute)
    sql = bytearray(prefix)
    first = True
    escape = partial(literal, connection)
    for row in rows:
        if render is not None:
            values = render(row, escape).encode(encoding)
        else:
            values = ("(" + ", ".join([escape(v) for v in row]) + ")").encode(encoding)
        if max_packet is not None and len(prefix) + len(values) + len(postfix) > max_packet:
            raise RowTooLarge(len(prefix) + len(values) + len(postfix), max_packet)
        if first:
            first = False
        elif len(sql) + len(values) + len(postfix) + 1 > limit:
            execute(bytes(sql + postfix))
            sql = bytearray(prefix)
        else:
            sql += b","
        sql += values
    execute(bytes(sql + postfix))
