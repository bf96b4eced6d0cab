"""Decide, per table, which coalesced changes reach SQL and what the side table records. Pure.

Tables **with** version columns keep their version in the row: upserts and deletes are
guarded in SQL (`consumers.sql`), and the side table only holds tombstones, so an old
upsert arriving after a delete cannot resurrect the row (checked here, before SQL).

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
        # The SQL delete is guarded by the row's own version; the tombstone keeps the newest
        # delete seen, even when the row was already gone (a replay may deliver the row's
        # older upserts later).
        plan.deletes.append(change)
        if state is None or supersedes(change, state):
            known[ident] = plan.state_writes[ident] = _state_of(change)
            plan.state_clears.discard(ident)
        return
    if state is not None and not supersedes(change, state):
        plan.stale.append(change)  # older than (or the same as) the row a delete removed
        return
    plan.upserts.append(change)
    if state is not None:  # a genuinely newer insert after a delete clears the tombstone
        known[ident] = None
        plan.state_writes.pop(ident, None)
        plan.state_clears.add(ident)
