"""Propose a logical type for each source column, with a reason wherever it is not certain.

SQLite cannot say what an `integer` column means (Drizzle decides in JavaScript), so the
evidence is, in order of weight: the declared type, the column's default, its name
(`createdAt`, `isActive`), and the sampled values' storage classes (`typeof()`) and ranges.
`propose_type` is pure; `infer_mapping` gathers the evidence from an SQLite connection.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from worker.schema.introspect import SourceTable, max_text_length, sample_values
from worker.schema.mapping import (
    ColumnMapping,
    ForeignKeyMapping,
    IndexMapping,
    LogicalType,
    Mapping,
    TableMapping,
)
from worker.schema.order import dependency_levels

# Unix seconds from 2000-01-01 to 2100-01-01, and the same in milliseconds. A value in
# neither band is not a plausible app timestamp without a name saying so.
SECONDS_BAND = (946_684_800, 4_102_444_800)
MS_BAND = (SECONDS_BAND[0] * 1000, SECONDS_BAND[1] * 1000)
# |v| below this is seconds even for a timestamp-named column (1e11 s is the year 5138).
MS_THRESHOLD = 100_000_000_000
# InnoDB keys are at most 3072 bytes; utf8mb4 takes up to 4 bytes per character.
MAX_KEY_CHARS = 768
_LENGTH_STEPS = (64, 191, 255, 512, MAX_KEY_CHARS)  # 191: the old utf8mb4 767-byte limit

_TIMESTAMP_NAME = re.compile(
    r"(At|_at|Date|_date|^date|Time|_time|^time|On|_on|Until|Since|Expires|expires)$"
    r"|^(dateOf|date_of|expires|timestamp)",
)
_BOOLEAN_NAME = re.compile(
    r"^(is|has|can|should|allow|was|did)([A-Z_]|$)|(Enabled|_enabled|Active|_active)$"
)
_JSON_NAME = re.compile(
    r"(settings|permissions|metadata|config|json|options|data|details|payload|attributes"
    r"|properties|preferences|profile)$",
    re.I,
)
# Integers that count or measure: never a 0/1 flag, however few values were sampled (a
# fresh `update_counter` is 0 or 1 for a while).
_QUANTITY_NAME = re.compile(
    r"(count|counter|version|total|amount|number|cents|credits|balance|spots|quantity|qty"
    r"|size|level|rank|position|index|score|value)$",
    re.I,
)
# Auth.js / Lucia's `emailVerified` is the moment of verification, stored like any
# Drizzle timestamp (a boolean is spelled `isVerified`, which the flag rule catches first).
_VERIFIED_NAME = re.compile(r"(Verified|_verified)$")
_DATETIME_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
_VERSION_COLUMNS = (("updated_at", "updatedAt"), ("update_counter", "updateCounter"))


@dataclass(frozen=True)
class ColumnEvidence:
    name: str
    declared_type: str
    default: str | None
    keyed: bool  # in the primary key, an index or a foreign key: must become VARCHAR
    samples: tuple[tuple[str, Any], ...]  # (typeof, value), non-NULL only
    max_text_length: int = 0


@dataclass(frozen=True)
class Proposal:
    type: LogicalType
    reason: str | None  # None when certain


def affinity(declared: str) -> str:
    """SQLite's column affinity rules (https://sqlite.org/datatype3.html §3.1)."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not upper or "BLOB" in upper:
        return "blob"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def string_length(longest: int) -> int:
    """A VARCHAR length with headroom: the first step >= 1.5 times the longest value."""
    wanted = max(1, (longest * 3 + 1) // 2)
    return next((step for step in _LENGTH_STEPS if step >= wanted), MAX_KEY_CHARS)


def _is_json_container(text: str) -> bool:
    if not text.startswith(("{", "[")):
        return False
    try:
        return isinstance(json.loads(text), dict | list)
    except json.JSONDecodeError:
        return False


def _proposal(kind: str, reason: str | None = None) -> Proposal:
    return Proposal(LogicalType.parse(kind), reason)


def _timestamp_from_integers(ints: list[int], texts: int, named: bool) -> Proposal:
    mixed = f"; {texts} value(s) are 'YYYY-MM-DD HH:MM:SS' text" if texts else ""
    if not ints:
        return _proposal("timestamp_s", f"no integer values seen, assumed Unix seconds{mixed}")
    biggest = max(abs(i) for i in ints)
    if biggest >= MS_THRESHOLD:
        smallest = min(abs(i) for i in ints if i)
        note = "" if smallest >= MS_THRESHOLD else "; some values are small: review"
        return _proposal("timestamp_ms", f"values up to {biggest:.2e} look like ms{note}{mixed}")
    reason = None if named and not mixed else f"values up to {biggest:.2e} look like seconds"
    return _proposal("timestamp_s", (reason or "") + mixed or None)


def _integer_proposal(ev: ColumnEvidence, ints: list[int], texts: list[str]) -> Proposal:
    date_texts = [t for t in texts if _DATETIME_TEXT.match(t)]
    flag_named = bool(_BOOLEAN_NAME.search(ev.name))
    timestamp_named = bool(_TIMESTAMP_NAME.search(ev.name)) or (
        bool(_VERIFIED_NAME.search(ev.name)) and not flag_named
    )
    defaults_now = (ev.default or "").upper().strip("()") == "CURRENT_TIMESTAMP"
    if len(date_texts) < len(texts):
        return _proposal("text", "an integer column holding non-numeric text: review")
    if timestamp_named or defaults_now or date_texts:
        return _timestamp_from_integers(ints, len(date_texts), timestamp_named)
    flag_default = (ev.default or "").lower() in ("true", "false")
    if flag_named or flag_default:
        if set(ints) <= {0, 1}:
            return _proposal("boolean")
        return _proposal("bigint", "boolean-looking name but values other than 0/1")
    quantity = bool(_QUANTITY_NAME.search(ev.name)) or any(
        ev.name in spellings for spellings in _VERSION_COLUMNS
    )
    if not quantity and ints and set(ints) <= {0, 1} and len(ints) >= 2 and len(set(ints)) == 2:
        return _proposal("boolean", "only 0 and 1 seen")
    if ints and all(SECONDS_BAND[0] <= i <= SECONDS_BAND[1] for i in ints):
        return _proposal("timestamp_s", "every value lies in the Unix-seconds range 2000..2100")
    if ints and all(MS_BAND[0] <= i <= MS_BAND[1] for i in ints):
        return _proposal("timestamp_ms", "every value lies in the Unix-ms range 2000..2100")
    if not ints:
        return _proposal("bigint", "no values seen")
    return _proposal("bigint")


_DECLARED_LENGTH = re.compile(r"\(\s*(\d+)\s*\)")


def _text_proposal(ev: ColumnEvidence, texts: list[str]) -> Proposal:
    if ev.keyed:
        # Drizzle's text({ length: n }) writes `text(n)`: SQLite ignores it, the app means it.
        declared = _DECLARED_LENGTH.search(ev.declared_type)
        if declared and 0 < int(declared.group(1)) <= MAX_KEY_CHARS:
            length = max(int(declared.group(1)), ev.max_text_length)
            return _proposal(f"string({length})")
        length = string_length(ev.max_text_length)
        if ev.max_text_length > MAX_KEY_CHARS:
            return _proposal(
                f"string({length})",
                f"longest value ({ev.max_text_length}) exceeds the {MAX_KEY_CHARS}-character "
                "key limit: shorten the data or drop the index",
            )
        reason = None if texts else "no values seen; length is a guess"
        return _proposal(f"string({length})", reason)
    if _DECLARED_LENGTH.search(ev.declared_type):
        # `text(n)`: Drizzle's text({ length }) — its json mode takes no length, so the app
        # reads this column as a string, JSON-looking or not (MySQL's JSON would re-serialise).
        return _proposal("text")
    if texts and all(_is_json_container(t) for t in texts):
        few = len(texts) < 5 and not _JSON_NAME.search(ev.name)
        return _proposal("json", f"only {len(texts)} value(s) seen, all JSON" if few else None)
    if texts and all(_DATETIME_TEXT.match(t) for t in texts):
        return _proposal("timestamp_text", "every value is an ISO-8601 date/time text")
    if not texts and _JSON_NAME.search(ev.name):
        return _proposal("json", "no values seen; JSON-looking name")
    return _proposal("text")


def propose_type(ev: ColumnEvidence) -> Proposal:
    """The most plausible logical type for one column, given its evidence."""
    classes = {kind for kind, _ in ev.samples}
    ints = [int(v) for k, v in ev.samples if k == "integer"]
    texts = [str(v) for k, v in ev.samples if k == "text"]
    declared = affinity(ev.declared_type)
    if "blob" in classes or (declared == "blob" and not classes and ev.declared_type):
        if classes - {"blob"}:
            return _proposal("blob", f"mixed storage classes {sorted(classes)}: review")
        return _proposal("blob")
    if "real" in classes or declared == "real":
        if classes - {"real", "integer"}:
            return _proposal("real", f"mixed storage classes {sorted(classes)}: review")
        return _proposal("real")
    if declared == "text" or (classes == {"text"} and declared != "integer"):
        return _text_proposal(ev, texts)
    if ev.keyed and declared != "integer" and texts:
        return _text_proposal(ev, texts)
    return _integer_proposal(ev, ints, texts)


def version_columns(column_names: list[str]) -> tuple[str, ...]:
    """updated_at/updatedAt, then update_counter/updateCounter, those present."""
    present = set(column_names)
    chosen: list[str] = []
    for spellings in _VERSION_COLUMNS:
        chosen.extend(name for name in spellings if name in present)
    return tuple(chosen)


# -- gathering evidence from the source (the I/O edge) ------------------------------------------


@dataclass
class InferenceResult:
    mapping: Mapping
    notes: list[str]  # dependency-order notes and skipped tables, for the person reviewing


def _keyed_columns(table: SourceTable) -> set[str]:
    keyed = set(table.primary_key)
    keyed.update(c for index in table.indexes for c in index.columns)
    keyed.update(c for fk in table.foreign_keys for c in fk.columns)
    return keyed


def _table_mapping(
    conn: sqlite3.Connection, table: SourceTable, pks: dict[str, tuple[str, ...]], samples: int
) -> TableMapping:
    keyed = _keyed_columns(table)
    columns: dict[str, ColumnMapping] = {}
    for col in table.columns:
        evidence = ColumnEvidence(
            name=col.name,
            declared_type=col.declared_type,
            default=col.default,
            keyed=col.name in keyed,
            samples=tuple(sample_values(conn, table.name, col.name, samples)),
            max_text_length=max_text_length(conn, table.name, col.name) if col.name in keyed else 0,
        )
        proposal = propose_type(evidence)
        nullable = not col.not_null and not col.pk_position
        columns[col.name] = ColumnMapping(
            col.name, proposal.type, nullable, col.default, proposal.reason
        )
    return TableMapping(
        name=table.name,
        columns=columns,
        primary_key=table.primary_key,
        version_columns=version_columns([c.name for c in table.columns]),
        indexes=tuple(
            IndexMapping(i.name, i.columns, i.unique) for i in table.indexes if i.origin != "pk"
        ),
        foreign_keys=tuple(
            ForeignKeyMapping(fk.columns, fk.ref_table, fk.ref_columns or pks.get(fk.ref_table, ()))
            for fk in table.foreign_keys
        ),
    )


def infer_mapping(
    conn: sqlite3.Connection, tables: list[SourceTable], *, samples: int = 2000
) -> InferenceResult:
    """A proposed mapping for `tables`, levels included, plus notes for the reviewer."""
    notes: list[str] = []
    keyed_tables = []
    for table in tables:
        if table.primary_key:
            keyed_tables.append(table)
        else:
            notes.append(f"{table.name}: no primary key, so rows have no stable identity; skipped")
    pks = {t.name: t.primary_key for t in keyed_tables}
    order = dependency_levels(
        {t.name: [fk.ref_table for fk in t.foreign_keys] for t in keyed_tables}
    )
    notes.extend(order.notes())
    mapped = {}
    for table in keyed_tables:
        mapped[table.name] = replace(
            _table_mapping(conn, table, pks, samples), level=order.levels[table.name]
        )
    return InferenceResult(Mapping(mapped), notes)
