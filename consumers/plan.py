"""Decide, per table, which coalesced changes reach SQL and what the side table records. Pure.

Tables **with** version columns keep their version in the row: upserts and deletes are
guarded in SQL (`consumers.sql`), and the side table only holds tombstones, so an old
upsert arriving after a delete cannot resurrect the row (checked here, before SQL, by
source time: see `consumers.change.supersedes`). A re-insert does not clear the
tombstone; pruning does, after `tombstone_retention_hours`.

Tables **without** version columns fall back to `ts_ms` (DESIGN.md, P2). The target schema
has no column for it, so the side table holds the last applied `ts_ms` of every key —
live or deleted — and every decision for such a table is made here; their SQL is unguarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from consumers.change import Change, StoredState, supersedes

Ident = tuple[str, str]


@dataclass
class TablePlan:
    deletes: list[Change] = field(default_factory=list)
    upserts: list[Change] = field(default_factory=list)
    stale: list[Change] = field(default_factory=list)  # skipped: older than the target
    state_writes: dict[Ident, StoredState] = field(default_factory=dict)
    state_clears: set[Ident] = field(default_factory=set)


def _state_of(change: Change) -> StoredState:
    return StoredState(change.op, change.version, change.ts_ms)


def plan_table(
    changes: Iterable[Change], states: Mapping[Ident, StoredState], *, versioned: bool
) -> TablePlan:
    """`changes` of one table, coalesced and in order; `states` = side-table rows of their keys."""
    plan = TablePlan()
    known: dict[Ident, StoredState | None] = dict(states)
    for change in changes:
        ident = change.identity
        state = known.get(ident)
        if versioned:
            _plan_versioned(plan, change, state, known)
        elif state is None or supersedes(change, state):
            (plan.deletes if change.op == "delete" else plan.upserts).append(change)
            known[ident] = plan.state_writes[ident] = _state_of(change)
        else:
            plan.stale.append(change)
    return plan


def _plan_versioned(
    plan: TablePlan,
    change: Change,
    state: StoredState | None,
    known: dict[Ident, StoredState | None],
) -> None:
    ident = change.identity
    if change.op == "delete":
        if state is not None and not supersedes(change, state):
            # Older than the latest delete of this key: whatever it removed is gone, and
            # the row there now (if any) was written after it. Running it again would
            # remove a re-inserted row (a redelivered delete without before-image).
            plan.stale.append(change)
            return
        # The SQL delete is guarded by the row's own version; the tombstone keeps the latest
        # delete seen, even when the row was already gone.
        plan.deletes.append(change)
        known[ident] = plan.state_writes[ident] = _state_of(change)
        plan.state_clears.discard(ident)
        return
    if state is not None and not supersedes(change, state):
        plan.stale.append(change)  # seen at the source before the delete: the deleted row
        return
    # A re-insert keeps the tombstone (until it is pruned): a replay of the old incarnation
    # may still arrive, with a version above the new one's, and must stay stale.
    plan.upserts.append(change)
