"""Coalesce a batch to at most two changes per key, equal to applying it event by event. Pure.

Per key the result is the winner under `supersedes` — plus, when the winner replaced a
delete without before-image, that delete first: such a delete removes the row
unconditionally, and what follows it must meet the empty slot, not the old row's version
guard. Fewer rows per statement, same final state (property-tested).

The result keeps the order in which each key first appeared in the batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.change import Change, supersedes


def coalesce_batch(changes: Iterable[Change]) -> list[Change]:
    """Winners per (table, key); `changes` must be in stream (offset) order per key."""
    winners: dict[tuple[str, str], Change] = {}
    barriers: dict[tuple[str, str], Change] = {}
    for change in changes:
        ident = change.identity
        current = winners.get(ident)
        if current is not None and not supersedes(change, current):
            continue
        if current is not None and current.op == "delete" and current.version is None:
            barriers[ident] = current  # it removes the row unconditionally: it must still run
        elif change.op == "delete" and change.version is None:
            barriers.pop(ident, None)  # this one removes the row unconditionally itself
        winners[ident] = change
    result: list[Change] = []
    for ident, winner in winners.items():
        if ident in barriers:
            result.append(barriers[ident])
        result.append(winner)
    return result
