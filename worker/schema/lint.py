"""PlanetScale's schema rules, checked on a mapping before any DDL reaches the target.

`schema lint` prints these; `schema apply` runs them first and touches nothing when one
fails, so a table that MySQL would refuse (error 1118, 1071, 1059) cannot leave the
target half created. Each problem is one line naming the table and column, and what to
change in the mapping.

The rules (PlanetScale's documented limits, and MySQL 8 / InnoDB's where they bind first):
- every table has a primary key (enforced when the mapping is loaded);
- no TEXT, BLOB or JSON column in a primary key, unique key or index, and no prefix
  index (the mapping cannot express one; the generated DDL is checked for it);
- an index's key is at most 3,072 bytes (InnoDB DYNAMIC; utf8mb4 counts 4 bytes a char);
- at most 1,017 columns per table (InnoDB) and 2,048 tables;
- identifiers (tables, columns, indexes) of 1..64 characters;
- foreign keys only when asked for, and then pointing at mapped columns of a key;
- utf8mb4 in every character set the DDL names;
- a row of at most 65,535 bytes, counted as MySQL does: VARCHAR(n) costs 4n plus 1 or 2
  length bytes, LONGTEXT/LONGBLOB/JSON 12, plus one NULL bit per nullable column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.schema.ddl import DIALECTS, create_table_sql
from worker.schema.mapping import LogicalType, Mapping, TableMapping

MAX_ROW_BYTES = 65_535
MAX_KEY_BYTES = 3_072
MAX_COLUMNS = 1_017
MAX_TABLES = 2_048
MAX_IDENTIFIER = 64
_UNINDEXABLE = frozenset({"text", "json", "blob"})
_FIXED_BYTES = {
    "integer": 4,
    "bigint": 8,
    "boolean": 1,
    "real": 8,
    "timestamp_s": 7,  # DATETIME(3): 5 bytes + 2 for the milliseconds
    "timestamp_ms": 7,
    "timestamp_text": 7,
    "text": 12,  # LONGTEXT / LONGBLOB / JSON: 4 length bytes + an 8-byte pointer
    "json": 12,
    "blob": 12,
}
_DECIMAL_DIGIT_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


@dataclass(frozen=True)
class LintProblem:
    table: str
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        return f"{where}: {self.message}"


def row_bytes(logical: LogicalType) -> int:
    """Bytes a value of this type counts toward MySQL's 65,535-byte row limit."""
    if logical.kind == "string":
        assert logical.length is not None
        data = 4 * logical.length  # utf8mb4: up to 4 bytes a character
        return data + (1 if data < 256 else 2)
    if logical.kind == "decimal":
        assert logical.precision is not None and logical.scale is not None
        whole, frac = logical.precision - logical.scale, logical.scale
        return sum(4 * (d // 9) + _DECIMAL_DIGIT_BYTES[d % 9] for d in (whole, frac))
    return _FIXED_BYTES[logical.kind]


def table_row_bytes(table: TableMapping) -> int:
    nullable = sum(1 for c in table.columns.values() if c.nullable)
    return (nullable + 7) // 8 + sum(row_bytes(c.type) for c in table.columns.values())


def _key_bytes(logical: LogicalType) -> int:
    if logical.kind == "string":
        assert logical.length is not None
        return 4 * logical.length
    return row_bytes(logical)


def lint_mapping(mapping: Mapping, *, foreign_keys: bool = False) -> list[LintProblem]:
    """Every rule broken by `mapping`, tables in level order; [] when it is fit to apply."""
    problems: list[LintProblem] = []
    if len(mapping.tables) > MAX_TABLES:
        problems.append(
            LintProblem(
                "*",
                None,
                f"{len(mapping.tables)} tables, over PlanetScale's {MAX_TABLES} per database; "
                "split the mapping or --exclude tables",
            )
        )
    for table in mapping.in_level_order():
        found = _lint_table(table, mapping, foreign_keys=foreign_keys)
        if not found:
            found = _lint_ddl(table, foreign_keys=foreign_keys)
        problems.extend(found)
    return problems


def _lint_table(table: TableMapping, mapping: Mapping, *, foreign_keys: bool) -> list[LintProblem]:
    name = table.name
    out: list[LintProblem] = []

    def problem(column: str | None, message: str) -> None:
        out.append(LintProblem(name, column, message))

    for kind, identifier in (
        ("table", name),
        *(("column", c) for c in table.columns),
        *(("index", i.name) for i in table.indexes),
    ):
        if not 1 <= len(identifier) <= MAX_IDENTIFIER:
            column = None if kind == "table" else identifier[:MAX_IDENTIFIER] + "…"
            problem(
                column,
                f"{kind} name is {len(identifier)} characters, over MySQL's {MAX_IDENTIFIER}; "
                f"rename it (the mapping's {kind} name must match the target's)",
            )
    if len(table.columns) > MAX_COLUMNS:
        problem(
            None,
            f"{len(table.columns)} columns, over InnoDB's {MAX_COLUMNS}; "
            "map fewer columns or split the table",
        )
    keys = [("primary key", table.primary_key)] + [
        (f"{'unique key' if i.unique else 'index'} {i.name}", i.columns) for i in table.indexes
    ]
    for label, columns in keys:
        missing = [c for c in columns if c not in table.columns]
        for column in missing:
            problem(column, f"{label} names a column that is not mapped; map it or drop it")
        if missing:
            continue
        for column in columns:
            kind = table.columns[column].type.kind
            if kind in _UNINDEXABLE:
                problem(
                    column,
                    f"in the {label} but mapped as {kind}; map it as string(n) "
                    "(PlanetScale refuses TEXT/BLOB/JSON keys and prefix indexes)",
                )
        key_bytes = sum(_key_bytes(table.columns[c].type) for c in columns)
        if key_bytes > MAX_KEY_BYTES and not any(
            table.columns[c].type.kind in _UNINDEXABLE for c in columns
        ):
            problem(
                ",".join(columns),
                f"{label} is {key_bytes} bytes in utf8mb4, over InnoDB's {MAX_KEY_BYTES}-byte "
                f"key limit (error 1071); shorten its string(n) lengths "
                f"(string(n) costs 4n bytes in a key)",
            )
    if foreign_keys:
        for fk in table.foreign_keys:
            target = mapping.tables.get(fk.ref_table)
            label = f"foreign key ({', '.join(fk.columns)}) → {fk.ref_table}"
            if target is None:
                problem(None, f"{label}: {fk.ref_table} is not in the mapping; map it or drop FKs")
            elif fk.ref_columns not in {target.primary_key, *(i.columns for i in target.indexes)}:
                problem(
                    None,
                    f"{label}: ({', '.join(fk.ref_columns)}) is not a key of {fk.ref_table}; "
                    "MySQL needs an index on the referenced columns",
                )
    size = table_row_bytes(table)
    if size > MAX_ROW_BYTES:
        strings = sorted(
            (c for c in table.columns.values() if c.type.kind == "string"),
            key=lambda c: -(c.type.length or 0),
        )
        widest = ", ".join(f"{c.name} string({c.type.length})" for c in strings[:3])
        problem(
            None,
            f"row is up to {size} bytes, over MySQL's {MAX_ROW_BYTES} (error 1118); map "
            f"long non-key string(n) columns as text (widest: {widest})",
        )
    return out


_CHARSET = re.compile(r"(?:CHARACTER SET|CHARSET=)\s*(\w+)", re.IGNORECASE)
_PREFIX_PART = re.compile(r"`\s*\(\d+\)")


def _lint_ddl(table: TableMapping, *, foreign_keys: bool) -> list[LintProblem]:
    """What the generated DDL itself says: utf8mb4 only, no prefix index (both dialects)."""
    out: list[LintProblem] = []
    for dialect in DIALECTS:
        sql = create_table_sql(table, dialect=dialect, foreign_keys=foreign_keys)
        for charset in {m.lower() for m in _CHARSET.findall(sql)} - {"utf8mb4"}:
            out.append(LintProblem(table.name, None, f"{dialect} DDL uses charset {charset}"))
        lines = (line.lstrip() for line in sql.splitlines())
        if any(_PREFIX_PART.search(x) for x in lines if x.startswith(("PRIMARY", "UNIQUE", "KEY"))):
            out.append(LintProblem(table.name, None, f"{dialect} DDL has a prefix index"))
    return out
