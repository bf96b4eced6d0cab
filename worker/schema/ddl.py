"""MySQL DDL for a mapping, and applying it idempotently with drift reporting.

The DDL is MySQL 8 (what PlanetScale runs) and also runs on MariaDB 10.11. Choices:

- Every identifier is backtick-quoted (the user's schema has tables `limit`, `plan`, `feature`).
- Text keys are `VARCHAR(n)` with a binary, NO PAD collation, never a `TEXT` key with a
  prefix (PlanetScale rejects those). SQLite compares text byte for byte, so `'Foo'`/`'foo'`
  and `'a'`/`'a '` are different keys there. `utf8mb4_bin` is a PAD SPACE collation on both
  servers (`'a' = 'a '` is true), so keys use `utf8mb4_0900_bin` on MySQL 8 and
  `utf8mb4_nopad_bin` on MariaDB, which are NO PAD.
- Source DEFAULT expressions are SQLite SQL and are not copied: every row arrives complete
  through an event, so the target never has to fill a default.
- No FOREIGN KEY constraints unless asked (PlanetScale's default; the consumer applies tables
  in parallel and would trip over them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from worker.errors import SchemaError
from worker.schema.mapping import ColumnMapping, LogicalType, Mapping, TableMapping

DIALECTS = ("mysql", "mariadb")
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
KEY_COLLATION = {"mysql": "utf8mb4_0900_bin", "mariadb": "utf8mb4_nopad_bin"}
_MAX_IDENTIFIER = 64  # MySQL limit for table, column and index names

_SQL_TYPES = {
    "text": "LONGTEXT",  # no size is recorded for text: the largest is the safe choice
    "integer": "INT",
    "bigint": "BIGINT",
    "boolean": "TINYINT(1)",
    "timestamp_s": "DATETIME(3)",
    "timestamp_ms": "DATETIME(3)",
    "timestamp_text": "DATETIME(3)",
    "json": "JSON",
    "real": "DOUBLE",
    "blob": "LONGBLOB",
}
_UNINDEXABLE = frozenset({"text", "json", "blob"})


def quote_mysql(identifier: str) -> str:
    """A backtick-quoted MySQL identifier (backticks inside are doubled)."""
    if not identifier or len(identifier) > _MAX_IDENTIFIER:
        raise SchemaError(f"identifier {identifier!r} must be 1..{_MAX_IDENTIFIER} characters")
    return "`" + identifier.replace("`", "``") + "`"


def sql_type(logical: LogicalType) -> str:
    """The MySQL column type of a logical type (without collation)."""
    if logical.kind == "string":
        return f"VARCHAR({logical.length})"
    if logical.kind == "decimal":
        return f"DECIMAL({logical.precision},{logical.scale})"
    return _SQL_TYPES[logical.kind]


def key_columns(table: TableMapping) -> frozenset[str]:
    """Columns whose equality decides identity: primary key and unique-index columns."""
    unique = (c for index in table.indexes if index.unique for c in index.columns)
    return frozenset((*table.primary_key, *unique))


def _check_indexable(table: TableMapping) -> None:
    indexed = {*table.primary_key, *(c for i in table.indexes for c in i.columns)}
    for name in sorted(indexed):
        if name not in table.columns:
            raise SchemaError(f"table {table.name!r}: indexed column {name!r} is not mapped")
        kind = table.columns[name].type.kind
        if kind in _UNINDEXABLE:
            raise SchemaError(
                f"table {table.name!r}: column {name!r} is indexed but mapped as {kind}; "
                "map it as string(n) (a prefix index on TEXT is not allowed on PlanetScale)"
            )


def _column_sql(column: ColumnMapping, *, binary: bool, dialect: str) -> str:
    parts = [quote_mysql(column.name), sql_type(column.type)]
    if binary and column.type.kind == "string":
        parts.append(f"CHARACTER SET utf8mb4 COLLATE {KEY_COLLATION[dialect]}")
    parts.append("NULL" if column.nullable else "NOT NULL")
    return " ".join(parts)


def _columns_list(names: tuple[str, ...]) -> str:
    return "(" + ", ".join(quote_mysql(n) for n in names) + ")"


def create_table_sql(
    table: TableMapping, *, dialect: str = "mysql", foreign_keys: bool = False
) -> str:
    """`CREATE TABLE IF NOT EXISTS` for one mapped table."""
    if dialect not in DIALECTS:
        raise SchemaError(f"unknown SQL dialect {dialect!r}; expected one of {DIALECTS}")
    _check_indexable(table)
    binary = key_columns(table)
    lines = [
        _column_sql(column, binary=name in binary, dialect=dialect)
        for name, column in table.columns.items()
    ]
    lines.append(f"PRIMARY KEY {_columns_list(table.primary_key)}")
    for index in table.indexes:
        kind = "UNIQUE KEY" if index.unique else "KEY"
        lines.append(f"{kind} {quote_mysql(index.name)} {_columns_list(index.columns)}")
    if foreign_keys:
        for fk in table.foreign_keys:
            lines.append(
                f"FOREIGN KEY {_columns_list(fk.columns)} "
                f"REFERENCES {quote_mysql(fk.ref_table)} {_columns_list(fk.ref_columns)}"
            )
    body = ",\n  ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {quote_mysql(table.name)} (\n  {body}\n) {TABLE_OPTIONS}"


def ddl_for_mapping(
    mapping: Mapping, *, dialect: str = "mysql", foreign_keys: bool = False
) -> list[str]:
    """One CREATE TABLE per mapped table, in dependency-level order."""
    return [
        create_table_sql(t, dialect=dialect, foreign_keys=foreign_keys)
        for t in mapping.in_level_order()
    ]


# -- applying and drift ---------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """A live table differs from its mapping in one way."""

    table: str
    column: str
    problem: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}: {self.problem}"


@dataclass
class ApplyReport:
    dialect: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)


def server_dialect(conn: Connection) -> str:
    """'mariadb' or 'mysql', from the server's version string."""
    version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
    return "mariadb" if "mariadb" in version.lower() else "mysql"


def _normalise_live_type(column_type: str, dialect: str) -> str:
    text = column_type.lower()
    # MariaDB and MySQL < 8.0.19 show integer display widths; tinyint(1) is meaningful.
    text = re.sub(r"\b(smallint|mediumint|int|bigint)\(\d+\)", r"\1", text)
    if dialect == "mariadb" and text == "longtext":
        return "json-or-longtext"  # MariaDB's JSON is LONGTEXT with a json_valid CHECK
    return text


def _expected_type(logical: LogicalType, dialect: str) -> str:
    text = sql_type(logical).lower()
    if dialect == "mariadb" and text in ("json", "longtext"):
        return "json-or-longtext"
    return text


def table_drift(conn: Connection, table: TableMapping, dialect: str) -> list[Drift]:
    """Differences between the live table `table.name` and its mapping (columns only)."""
    rows = conn.execute(
        sa.text(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLLATION_NAME "
            "FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
        ),
        {"t": table.name},
    ).all()
    live = {r[0]: (str(r[1]), r[2] == "YES", r[3]) for r in rows}
    binary = key_columns(table)
    drift: list[Drift] = []
    for name, column in table.columns.items():
        if name not in live:
            drift.append(Drift(table.name, name, "missing in the target"))
            continue
        live_type, live_nullable, collation = live[name]
        expected = _expected_type(column.type, dialect)
        if _normalise_live_type(live_type, dialect) != expected:
            drift.append(Drift(table.name, name, f"type is {live_type}, mapping says {expected}"))
        if live_nullable != column.nullable:
            want = "NULL" if column.nullable else "NOT NULL"
            drift.append(Drift(table.name, name, f"nullability differs (mapping says {want})"))
        if name in binary and column.type.kind == "string" and collation != KEY_COLLATION[dialect]:
            drift.append(
                Drift(table.name, name, f"key collation is {collation}, not a binary NO PAD one")
            )
    for name in live.keys() - table.columns.keys():
        drift.append(Drift(table.name, name, "extra column in the target, not in the mapping"))
    return drift


def apply_mapping(engine: Engine, mapping: Mapping, *, foreign_keys: bool = False) -> ApplyReport:
    """Create missing tables; report (never alter) live tables that differ from the mapping."""
    with engine.begin() as conn:
        dialect = server_dialect(conn)
        report = ApplyReport(dialect)
        live_tables = set(
            conn.execute(
                sa.text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE()"
                )
            ).scalars()
        )
        for table in mapping.in_level_order():
            if table.name in live_tables:
                report.existing.append(table.name)
                report.drift.extend(table_drift(conn, table, dialect))
            else:
                sql = create_table_sql(table, dialect=dialect, foreign_keys=foreign_keys)
                conn.exec_driver_sql(sql)
                report.created.append(table.name)
    return report
