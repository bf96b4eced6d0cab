"""The demo database's ground truth: the mapping a perfect `schema infer` would propose."""

from __future__ import annotations

from worker.demo.catalog import DEMO_TABLES
from worker.demo.model import DemoTable
from worker.schema.mapping import (
    ColumnMapping,
    ForeignKeyMapping,
    IndexMapping,
    LogicalType,
    Mapping,
    TableMapping,
)
from worker.schema.order import dependency_levels


def _table_mapping(table: DemoTable, level: int) -> TableMapping:
    columns = {
        c.name: ColumnMapping(c.name, LogicalType.parse(c.truth), c.nullable, c.default)
        for c in table.all_columns
    }
    return TableMapping(
        name=table.name,
        columns=columns,
        primary_key=table.primary_key,
        version_columns=("updatedAt", "updateCounter") if table.versioned else (),
        indexes=tuple(IndexMapping(i.name, i.columns, i.unique) for i in table.indexes),
        foreign_keys=tuple(
            ForeignKeyMapping((c.name,), c.ref, ("id",)) for c in table.all_columns if c.ref
        ),
        level=level,
    )


def ground_truth_mapping() -> Mapping:
    """Every demo table and column with its true logical type, keys, indexes and level."""
    references = {t.name: [c.ref for c in t.all_columns if c.ref] for t in DEMO_TABLES}
    levels = dependency_levels(references).levels
    return Mapping({t.name: _table_mapping(t, levels[t.name]) for t in DEMO_TABLES})
