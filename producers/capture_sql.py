"""The capture schema: a change-log table and per-table triggers that fill it, as SQL text.

Pure functions from the mapping to statements; nothing here touches a database. Each
captured table gets three `AFTER` triggers appending one entry per changed row to
`_d1cdc_changes` in the same transaction as the write, so an entry exists if and only if
the write committed (D1 has no other transaction than the statement or `batch()`).

An entry holds the table, the op (`upsert` / `delete`), the key and the row as JSON in the
source representation of the v1 envelope, and a timestamp from D1's own clock. Facts of
D1 that shape the text (DESIGN.md, "Capture inside D1"; issue 12):

- SQL functions take at most 32 arguments, so `json_object` holds at most 15 pairs; wider
  rows continue with `json_set(…, '$."col"', value, …)` (15 more pairs per call). Not
  `json_patch`: a merge patch removes the keys whose value is null.
- `json_object` refuses BLOBs and prints REALs with 15 digits (0.1+0.2 became 0.3 on
  SQLite 3.40, measured), and any column of SQLite can hold any storage class. So every
  value goes through `iif(typeof(v)='blob', {"$hex"}, iif(typeof(v)='real', {"$real"}, v))`;
  `$real` is `quote(v)` (21 significant digits). Measured on SQLite 3.40 over 200k random
  doubles: `quote` is exact for every value between 1e-100 and 1e100 (tested as a property)
  and wrong in the last bit for 0.04 % of random bit patterns, all at extreme exponents;
  `printf("%!.17g")` was wrong for 0.3 %. A
  trigger that failed on an unexpected value would fail the application's own write.
- Remote D1 splits statements on the server, with bugs around lowercase `begin`, CRLF and
  `CASE … END`: every statement is one line, uppercase `BEGIN`/`END`, no comments, no
  `CASE`.
- Rows the reverse pipeline's D1 sink writes are not captured (no echo back to MySQL): every
  trigger is `WHEN NOT EXISTS` the marker row the sink holds during its batch
  (worker/no_echo.py).
- An UPDATE that changes the primary key is a delete of the old key, then an upsert of
  the new one (the delete is written only when the key changed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from worker.chunking import chunks
from worker.errors import SchemaError
from worker.no_echo import MARKER_DDL, NOT_REVERSE
from worker.schema.mapping import Mapping, TableMapping
from worker.sources.base import quote_sqlite

CHANGES_TABLE = "_d1cdc_changes"
LEASE_TABLE = "_d1cdc_relay_lease"
TRIGGER_PREFIX = "_d1cdc_"
OPS = {"ins": "INSERT", "upd": "UPDATE", "del": "DELETE"}
_PAIRS_PER_CALL = 15  # 32 arguments per SQL function on D1: 15 pairs (+ json_set's first)

# D1's clock in Unix milliseconds. `unixepoch('subsec')` needs SQLite 3.42; julianday does not.
NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

CHANGES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {quote_sqlite(CHANGES_TABLE)} ("
    '"seq" INTEGER PRIMARY KEY AUTOINCREMENT, "tbl" TEXT NOT NULL, "op" TEXT NOT NULL, '
    '"pk" TEXT NOT NULL, "row" TEXT, "ts_ms" INTEGER NOT NULL)'
)
LEASE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {quote_sqlite(LEASE_TABLE)} ("
    '"id" INTEGER PRIMARY KEY CHECK ("id" = 1), "owner" TEXT NOT NULL, '
    '"expires_ms" INTEGER NOT NULL)'
)


def trigger_name(table: str, op: str) -> str:
    return f"{TRIGGER_PREFIX}{table}_{op}"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _value(ref: str) -> str:
    """One column value as the JSON the relay decodes exactly (see the module docstring)."""
    return (
        f"iif(typeof({ref}) = 'blob', json_object('$hex', hex({ref})), "
        f"iif(typeof({ref}) = 'real', json_object('$real', quote({ref})), {ref}))"
    )


def _json_of(columns: Sequence[str], alias: str) -> str:
    """A JSON object of `alias`.column for every column, within 32 arguments per call."""
    pairs = [(name, _value(f"{alias}.{quote_sqlite(name)}")) for name in columns]
    first, rest = pairs[:_PAIRS_PER_CALL], pairs[_PAIRS_PER_CALL:]
    expr = "json_object(" + ", ".join(f"{_sql_string(n)}, {v}" for n, v in first) + ")"
    for chunk in chunks(rest, _PAIRS_PER_CALL):
        paths = ", ".join(f"{_sql_string(_json_path(n))}, {v}" for n, v in chunk)
        expr = f"json_set({expr}, {paths})"
    return expr


def _json_path(column: str) -> str:
    if '"' in column or "\\" in column:
        raise SchemaError(f"column {column!r}: a name with '\"' or '\\' cannot be captured")
    return f'$."{column}"'


def _entry(table: TableMapping, op: str, alias: str, where: str = "") -> str:
    """`INSERT INTO _d1cdc_changes …` of one row image (`NEW` or `OLD`)."""
    row = _json_of(table.column_names, alias)
    pk = _json_of(table.primary_key, alias)
    values = f"{_sql_string(table.name)}, {_sql_string(op)}, {pk}, {row}, {NOW_MS}"
    target = f'{quote_sqlite(CHANGES_TABLE)} ("tbl", "op", "pk", "row", "ts_ms")'
    if where:
        return f"INSERT INTO {target} SELECT {values} WHERE {where};"
    return f"INSERT INTO {target} VALUES ({values});"


def table_triggers(table: TableMapping) -> dict[str, str]:
    """Trigger name → its `CREATE TRIGGER` statement (one line), for one table."""
    if not table.primary_key:
        raise SchemaError(f"table {table.name!r} has no primary key: it cannot be captured")
    for column in table.column_names:
        _json_path(column)
    on = quote_sqlite(table.name)
    key_changed = " OR ".join(
        f"OLD.{quote_sqlite(c)} IS NOT NEW.{quote_sqlite(c)}" for c in table.primary_key
    )
    bodies = {
        "ins": _entry(table, "upsert", "NEW"),
        "upd": _entry(table, "delete", "OLD", key_changed) + " " + _entry(table, "upsert", "NEW"),
        "del": _entry(table, "delete", "OLD"),
    }
    return {
        trigger_name(table.name, op): (
            f"CREATE TRIGGER IF NOT EXISTS {quote_sqlite(trigger_name(table.name, op))} "
            f"AFTER {OPS[op]} ON {on} FOR EACH ROW WHEN {NOT_REVERSE} BEGIN {body} END;"
        )
        for op, body in bodies.items()
    }


def capture_triggers(mapping: Mapping) -> dict[str, tuple[str, str]]:
    """Trigger name → (table, statement) for every table of the mapping."""
    return {
        name: (table.name, sql)
        for table in mapping.in_level_order()
        for name, sql in table_triggers(table).items()
    }


def install_statements(mapping: Mapping) -> Iterator[str]:
    """The statements that install (or bring current) capture, one per request: the log
    and lease tables, then for each trigger a drop and a create (a stale trigger of an
    older mapping is replaced; `IF NOT EXISTS` alone would keep it)."""
    yield CHANGES_DDL + ";"
    yield LEASE_DDL + ";"
    yield MARKER_DDL + ";"  # before the triggers that name it
    for name, (_table, sql) in capture_triggers(mapping).items():
        yield f"DROP TRIGGER IF EXISTS {quote_sqlite(name)};"
        yield sql


def uninstall_statements(trigger_names: Sequence[str]) -> Iterator[str]:
    """Drop the given triggers; the log table stays (it may hold unshipped entries)."""
    for name in trigger_names:
        yield f"DROP TRIGGER IF EXISTS {quote_sqlite(name)};"


def migration_text(mapping: Mapping) -> str:
    """The migration file the user commits next to Drizzle's: one statement per line (D1's
    `exec()` and its server-side splitter both cut on statement boundaries), no comments."""
    return "\n".join(install_statements(mapping)) + "\n"


def normalized(sql: str) -> str:
    """A trigger's text as SQLite stores it in `sqlite_master` (without `IF NOT EXISTS`,
    without the final `;`), whitespace collapsed: what `capture check` compares."""
    text = " ".join(sql.split()).rstrip(";")
    return text.replace("CREATE TRIGGER IF NOT EXISTS ", "CREATE TRIGGER ", 1)
