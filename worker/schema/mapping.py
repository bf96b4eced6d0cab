"""The mapping file: per table and column, what a source value is and what it becomes.

This is the contract between `schema infer` (which proposes it), a person (who reviews
it), and everything that converts or writes rows (which only ever uses names present
here: nothing from an event is spliced into SQL text).

File shape (TOML)::

    [tables.user]
    primary_key = ["id"]
    version_columns = ["updatedAt", "updateCounter"]
    level = 0

    [tables.user.columns.id]
    type = "string(50)"
    nullable = false

    [tables.user.columns.createdAt]
    type = "timestamp_s"
    nullable = false
    reason = "values 1.7e9..1.8e9 look like Unix seconds"   # why it is not certain

    [[tables.user.indexes]]
    name = "email_idx"
    columns = ["email"]
    unique = true
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.errors import SchemaError

# Logical types a column can have. Parameterised ones carry their arguments.
SIMPLE_KINDS = frozenset(
    {
        "text",
        "integer",
        "bigint",
        "boolean",
        "timestamp_s",
        "timestamp_ms",
        "timestamp_text",
        "json",
        "real",
        "blob",
    }
)
_STRING = re.compile(r"^string\((\d+)\)$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class LogicalType:
    """`kind` is one of SIMPLE_KINDS, `string` (with `length`) or `decimal` (precision, scale)."""

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def parse(cls, text: str) -> LogicalType:
        text = text.strip()
        if text in SIMPLE_KINDS:
            return cls(text)
        if m := _STRING.match(text):
            length = int(m.group(1))
            if not 1 <= length <= 16383:
                raise SchemaError(f"string length must be 1..16383, not {length}")
            return cls("string", length=length)
        if m := _DECIMAL.match(text):
            precision, scale = int(m.group(1)), int(m.group(2))
            if not (1 <= precision <= 65 and 0 <= scale <= min(precision, 30)):
                raise SchemaError(f"invalid decimal({precision},{scale})")
            return cls("decimal", precision=precision, scale=scale)
        raise SchemaError(
            f"unknown logical type {text!r}; expected string(n), decimal(p,s) or one of "
            + ", ".join(sorted(SIMPLE_KINDS))
        )

    def __str__(self) -> str:
        if self.kind == "string":
            return f"string({self.length})"
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.kind

    @property
    def is_timestamp(self) -> bool:
        return self.kind in ("timestamp_s", "timestamp_ms", "timestamp_text")


@dataclass(frozen=True)
class ColumnMapping:
    name: str
    type: LogicalType
    nullable: bool = True
    default: str | None = None  # the source's DEFAULT expression, verbatim
    reason: str | None = None  # why inference was not certain; None when it was


@dataclass(frozen=True)
class IndexMapping:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class ForeignKeyMapping:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableMapping:
    name: str
    columns: dict[str, ColumnMapping]  # in source column order
    primary_key: tuple[str, ...]
    version_columns: tuple[str, ...] = ()
    indexes: tuple[IndexMapping, ...] = ()
    foreign_keys: tuple[ForeignKeyMapping, ...] = ()
    level: int = 0

    def __post_init__(self) -> None:
        if not self.primary_key:
            raise SchemaError(
                f"table {self.name!r} has no primary key in the mapping (PlanetScale requires "
                'one): set primary_key = ["…"] to columns that identify a row'
            )
        for col in (*self.primary_key, *self.version_columns):
            if col not in self.columns:
                raise SchemaError(f"table {self.name!r}: column {col!r} is not in its columns")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns)


@dataclass(frozen=True)
class Mapping:
    tables: dict[str, TableMapping] = field(default_factory=dict)

    def table(self, name: str) -> TableMapping:
        try:
            return self.tables[name]
        except KeyError:
            from worker.errors import UnknownTableError

            raise UnknownTableError(f"table {name!r} is not in the mapping") from None

    def in_level_order(self) -> list[TableMapping]:
        return sorted(self.tables.values(), key=lambda t: (t.level, t.name))


def mapping_from_dict(data: dict[str, Any]) -> Mapping:
    tables: dict[str, TableMapping] = {}
    for tname, t in data.get("tables", {}).items():
        try:
            columns = {
                cname: ColumnMapping(
                    name=cname,
                    type=LogicalType.parse(c["type"]),
                    nullable=bool(c.get("nullable", True)),
                    default=c.get("default"),
                    reason=c.get("reason"),
                )
                for cname, c in t["columns"].items()
            }
            tables[tname] = TableMapping(
                name=tname,
                columns=columns,
                primary_key=tuple(t["primary_key"]),
                version_columns=tuple(t.get("version_columns", ())),
                indexes=tuple(
                    IndexMapping(i["name"], tuple(i["columns"]), bool(i.get("unique", False)))
                    for i in t.get("indexes", ())
                ),
                foreign_keys=tuple(
                    ForeignKeyMapping(tuple(f["columns"]), f["ref_table"], tuple(f["ref_columns"]))
                    for f in t.get("foreign_keys", ())
                ),
                level=int(t.get("level", 0)),
            )
        except SchemaError as exc:
            raise SchemaError(f"mapping table {tname!r}: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"mapping table {tname!r}: missing or invalid {exc}") from None
    return Mapping(tables)


def load_mapping(path: Path) -> Mapping:
    if not path.is_file():
        raise SchemaError(
            f"mapping file {path} (D1CDC_MAPPING_PATH) does not exist; "
            "run `d1cdc schema infer` to create it"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"mapping file {path} is not valid TOML: {exc}") from None
    return mapping_from_dict(data)
