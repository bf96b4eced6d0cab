"""Write a mapping as the TOML file a person reviews (the format `load_mapping` reads).

Tables come in dependency-level order. A column whose type inference was not certain
carries `reason = "…"` and a `# REVIEW` comment, so a reviewer can grep for what needs
a look; dependency-order notes go at the top of the file.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.items import Table

from worker.errors import ConfigError
from worker.schema.mapping import ColumnMapping, Mapping, TableMapping

HEADER = (
    "d1cdc mapping file: what every source (SQLite) column is and what it becomes in MySQL.",
    "Proposed by `d1cdc schema infer`; review every `reason` (marked REVIEW), then commit it.",
    "Types: string(n) text integer bigint boolean timestamp_s timestamp_ms timestamp_text",
    "       json real decimal(p,s) blob -- see docs/mapping.md",
)


def _column_table(column: ColumnMapping) -> Table:
    item = tomlkit.table()
    item.add("type", str(column.type))
    item.add("nullable", column.nullable)
    if column.default is not None:
        item.add("default", column.default)
    if column.reason is not None:
        item.add("reason", column.reason)
        item["reason"].comment("REVIEW")
    return item


def _table(table: TableMapping) -> Table:
    item = tomlkit.table()
    item.add("primary_key", list(table.primary_key))
    item.add("version_columns", list(table.version_columns))
    if not table.version_columns:
        item["version_columns"].comment("none: events are ordered by ts_ms")
    item.add("level", table.level)
    columns = tomlkit.table()
    for name, column in table.columns.items():
        columns.add(name, _column_table(column))
    item.add("columns", columns)
    if table.indexes:
        indexes = tomlkit.aot()
        for index in table.indexes:
            indexes.append(
                tomlkit.item(
                    {"name": index.name, "columns": list(index.columns), "unique": index.unique}
                )
            )
        item.add("indexes", indexes)
    if table.foreign_keys:
        keys = tomlkit.aot()
        for fk in table.foreign_keys:
            keys.append(
                tomlkit.item(
                    {
                        "columns": list(fk.columns),
                        "ref_table": fk.ref_table,
                        "ref_columns": list(fk.ref_columns),
                    }
                )
            )
        item.add("foreign_keys", keys)
    return item


def mapping_to_toml(mapping: Mapping, notes: list[str] | None = None) -> str:
    """The mapping as TOML text; `notes` become comments at the top."""
    document = tomlkit.document()
    for line in HEADER:
        document.add(tomlkit.comment(line))
    for note in notes or ():
        document.add(tomlkit.comment(f"NOTE: {note}"))
    tables = tomlkit.table(is_super_table=True)
    for table in mapping.in_level_order():
        tables.add(table.name, _table(table))
    document.add("tables", tables)
    return tomlkit.dumps(document)


def write_mapping(
    mapping: Mapping, path: Path, *, notes: list[str] | None = None, force: bool = False
) -> None:
    """Write the mapping file; an existing file (a reviewed mapping) is kept unless `force`."""
    if path.exists() and not force:
        raise ConfigError(f"mapping file {path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mapping_to_toml(mapping, notes), encoding="utf-8")
