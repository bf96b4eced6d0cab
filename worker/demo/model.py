"""The demo schema's building blocks: a column knows its SQLite declaration, its true
logical type (the ground truth inference is measured against) and how its values are made."""

from __future__ import annotations

from dataclasses import dataclass

from worker.demo import values as v
from worker.demo.values import Generator

ID_TYPE = "string(64)"  # ids are `pfx_` + 24 characters; 64 leaves room for other id schemes


@dataclass(frozen=True)
class DemoColumn:
    name: str
    declared: str  # SQLite declared type, as Drizzle's migrations write it
    truth: str  # the true logical type (mapping syntax)
    generate: Generator | None = None  # None: an id or a foreign key, filled by the generator
    nullable: bool = False
    default: str | None = None  # SQL DEFAULT expression
    ref: str | None = None  # referenced table (foreign key to its `id`)
    null_rate: float = 0.0  # share of rows holding NULL (nullable columns only)


@dataclass(frozen=True)
class DemoIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class DemoTable:
    name: str
    prefix: str  # id prefix, e.g. "usr"; "" for tables keyed by a composite primary key
    rows: int  # row count at scale 1.0
    columns: tuple[DemoColumn, ...]
    indexes: tuple[DemoIndex, ...] = ()
    primary_key: tuple[str, ...] = ("id",)
    versioned: bool = True  # has updatedAt + updateCounter (Drizzle commonColumns)

    @property
    def all_columns(self) -> tuple[DemoColumn, ...]:
        """Drizzle's commonColumns first, then the table's own columns."""
        common: list[DemoColumn] = []
        if self.prefix:
            common.append(DemoColumn("id", "text", ID_TYPE))
        common.append(DemoColumn("createdAt", "integer", "timestamp_s", v.seconds))
        if self.versioned:
            common.append(DemoColumn("updatedAt", "integer", "timestamp_s", v.seconds))
            common.append(
                DemoColumn(
                    "updateCounter",
                    "integer",
                    "bigint",
                    v.counter(0, 40),
                    nullable=True,
                    default="0",
                )
            )
        return (*common, *self.columns)


# -- column shorthands used by the table list ------------------------------------------------


def ref(name: str, table: str, *, null_rate: float = 0.0) -> DemoColumn:
    """A text foreign key to `table.id` (nullable when some rows have none)."""
    return DemoColumn(name, "text", ID_TYPE, nullable=null_rate > 0, ref=table, null_rate=null_rate)


def text(
    name: str, gen: Generator, *, null_rate: float = 0.0, default: str | None = None
) -> DemoColumn:
    return DemoColumn(name, "text", "text", gen, null_rate > 0, default, null_rate=null_rate)


def key_text(name: str, gen: Generator, length: int, *, null_rate: float = 0.0) -> DemoColumn:
    """Indexed text: its true type is a VARCHAR of `length`."""
    return DemoColumn(name, "text", f"string({length})", gen, null_rate > 0, null_rate=null_rate)


def boolean(name: str, default: str = "false") -> DemoColumn:
    return DemoColumn(name, "integer", "boolean", v.flag, default=default)


def stamp(name: str, *, null_rate: float = 0.0, gen: Generator = v.seconds) -> DemoColumn:
    """Drizzle integer({mode: "timestamp"}): Unix seconds."""
    return DemoColumn(name, "integer", "timestamp_s", gen, null_rate > 0, null_rate=null_rate)


def stamp_ms(name: str, *, null_rate: float = 0.0) -> DemoColumn:
    """Drizzle integer({mode: "timestamp_ms"}): Unix milliseconds."""
    return DemoColumn(
        name, "integer", "timestamp_ms", v.milliseconds, null_rate > 0, null_rate=null_rate
    )


def json_text(name: str, gen: Generator, *, null_rate: float = 0.0) -> DemoColumn:
    """Drizzle text({mode: "json"}): JSON.stringify output."""
    return DemoColumn(name, "text", "json", gen, null_rate > 0, null_rate=null_rate)


def number(name: str, low: int, high: int, *, default: str | None = None) -> DemoColumn:
    return DemoColumn(name, "integer", "bigint", v.counter(low, high), default=default)


def real(name: str, low: float, high: float, *, null_rate: float = 0.0) -> DemoColumn:
    return DemoColumn(
        name, "real", "real", v.real_between(low, high), null_rate > 0, null_rate=null_rate
    )


def date_text(name: str, *, null_rate: float = 0.0) -> DemoColumn:
    """A calendar date kept as 'YYYY-MM-DD' text."""
    return DemoColumn(
        name, "text", "timestamp_text", v.iso_date, null_rate > 0, null_rate=null_rate
    )
