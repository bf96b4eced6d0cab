"""MemorySink: the in-memory twin of `MySQLSink`, for property tests of the apply rules.

It runs the same pure planner (`consumers.plan`) and mirrors, in Python, what the SQL of
`consumers.sql` does on the server: an upsert of a versioned table changes the stored row
unless the stored version is newer (or equal, for a backfill snapshot); a delete with a version
removes the row unless the
stored version is newer; an unguarded statement always applies. Versions compare as their
`consumers.versions` encodings, which order like the SQL guard (NULL lowest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from consumers.change import Change, StoredState
from consumers.plan import Ident, plan_table
from worker.schema.mapping import Mapping


class MemorySink:
    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.rows: dict[Ident, dict[str, Any]] = {}
        self.row_versions: dict[Ident, bytes | None] = {}
        self.states: dict[Ident, StoredState] = {}

    def apply(self, changes: Sequence[Change]) -> None:
        by_table: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            by_table[change.table].append(change)
        for name, table_changes in by_table.items():
            versioned = bool(self.mapping.table(name).version_columns)
            known = {
                c.identity: self.states[c.identity]
                for c in table_changes
                if c.identity in self.states
            }
            plan = plan_table(table_changes, known, versioned=versioned)
            for change in plan.deletes:
                guarded = versioned and change.version_values is not None
                if not guarded or not self._stored_newer(change):
                    self.rows.pop(change.identity, None)
                    self.row_versions.pop(change.identity, None)
            for change in plan.upserts:
                if not versioned or not self._stored_newer(change):
                    assert change.row is not None
                    self.rows[change.identity] = dict(change.row)
                    self.row_versions[change.identity] = change.version
            self.states.update(plan.state_writes)
            for ident in plan.state_clears:
                self.states.pop(ident, None)

    def _stored_newer(self, change: Change) -> bool:
        if change.identity not in self.rows:
            return False
        stored = self.row_versions[change.identity]
        if stored is None or change.version is None:
            return False
        return stored >= change.version if change.backfill else stored > change.version
