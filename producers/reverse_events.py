"""MySQL rows → v1 reverse envelopes (`origin: "reverse"`), in the source representation.

The reverse pipeline (issue 16) runs from cut-over until cleanup and keeps D1 current with
PlanetScale. Its events use the same v1 contract as the forward ones, so the D1 side can
reuse the envelope decoder and the version rules; only the topic (`{prefix}.reverse.{table}`)
and the origin differ. Rows are turned back into what the app writes into D1 by
`worker.schema.unconvert`. Pure: the MySQL reader and the Kafka producer sit at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.envelope import ChangeEvent, new_event
from worker.schema.mapping import TableMapping
from worker.schema.unconvert import unconvert_row, unconvert_value

REVERSE_ORIGIN = "reverse"


def reverse_upsert(table: TableMapping, mysql_row: Mapping[str, Any]) -> ChangeEvent:
    """An upsert event for a row read from MySQL, row and key in source representation."""
    row = unconvert_row(table, mysql_row)
    key = {name: row[name] for name in table.primary_key}
    return new_event(table.name, "upsert", key, row, origin=REVERSE_ORIGIN)


def reverse_delete(table: TableMapping, mysql_key: Mapping[str, Any]) -> ChangeEvent:
    """A delete event for a key that vanished from MySQL (found by the key-set diff)."""
    key = {
        name: unconvert_value(table, table.columns[name], mysql_key[name], mysql_key)
        for name in table.primary_key
    }
    return new_event(table.name, "delete", key, None, origin=REVERSE_ORIGIN)
