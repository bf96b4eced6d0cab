"""The one small interface every source sits behind, and the helpers built only on it.

A source answers SQL in SQLite's dialect — the local file and D1 are both SQLite — and
returns rows as dicts in the source's own representation (int, float, str, bytes, None).
Nothing is converted here: the consumer converts, per the mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from worker.chunking import chunks

# D1 binds at most 100 parameters per query (DESIGN.md, "Source side facts"); the SQLite
# source keeps to the same limit so both behave the same.
MAX_PARAMS = 100
Row = dict[str, Any]


class Source(Protocol):
    """Read access to the source database."""

    name: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read-only statement with at most MAX_PARAMS bound parameters."""
        ...

    def close(self) -> None: ...


class WritableSource(Source, Protocol):
    """A source d1cdc may also write to: its own capture tables and triggers, and (the D1
    sink of the reverse pipeline, after cut-over) the app's tables."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one writing statement in its own transaction; return the rows changed."""
        ...

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run (sql, params) statements, each ≤ MAX_PARAMS parameters, as ONE transaction
        (D1's `batch()`, its only one): all or nothing; the rows changed by each."""
        ...


def quote_sqlite(name: str) -> str:
    """An SQLite identifier, always quoted (tables are named `limit`, `plan`, …)."""
    return '"' + name.replace('"', '""') + '"'


def column_names(source: Source, table: str) -> list[str]:
    rows = source.query(f"PRAGMA table_info({quote_sqlite(table)})")
    return [str(r["name"]) for r in sorted(rows, key=lambda r: int(r["cid"]))]


def check_param_count(params: Sequence[Any]) -> None:
    if len(params) > MAX_PARAMS:
        raise ValueError(f"{len(params)} bound parameters; D1 allows at most {MAX_PARAMS}")


def key_chunks(
    keys: Sequence[tuple[Any, ...]], key_width: int
) -> Iterator[Sequence[tuple[Any, ...]]]:
    """Split `keys` so each chunk binds at most MAX_PARAMS parameters."""
    return chunks(keys, max(1, MAX_PARAMS // key_width))


def rows_by_keys(
    source: Source, table: str, key_columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> list[Row]:
    """Rows of `table` whose primary key is in `keys`, in as many ≤100-parameter queries as
    needed. Keys that no longer exist are simply absent from the result."""
    cols = ", ".join(quote_sqlite(c) for c in key_columns)
    rows: list[Row] = []
    for chunk in key_chunks(keys, len(key_columns)):
        if len(key_columns) == 1:
            match = f"{cols} IN ({', '.join('?' for _ in chunk)})"
        else:
            one = "(" + ", ".join("?" for _ in key_columns) + ")"
            match = f"({cols}) IN (VALUES {', '.join(one for _ in chunk)})"
        params = [value for key in chunk for value in key]
        rows.extend(source.query(f"SELECT * FROM {quote_sqlite(table)} WHERE {match}", params))
    return rows
