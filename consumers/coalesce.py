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
    """Winners per (table, key); `changes` must be in stream (offset) order per key.

    A delete that a later change supersedes still runs, before the winner: it removes the
    row it names and leaves its tombstone, which the winner (a re-insert) is then judged
    against — exactly as if the events had arrived in separate batches.
    """
    winners: dict[tuple[str, str], Change] = {}
    barriers: dict[tuple[str, str], list[Change]] = {}
    for change in changes:
        ident = change.identity
        current = winners.get(ident)
        if current is not None and not supersedes(change, current):
            continue
        ran = barriers.get(ident)
        if ran and not supersedes(change, ran[-1]):
            continue  # not later than a delete in this batch: judged as its tombstone would
        if current is not None and current.op == "delete":
            barriers.setdefault(ident, []).append(current)
        winners[ident] = change
    result: list[Change] = []
    for ident, winner in winners.items():
        result.extend(barriers.get(ident, ()))
        result.append(winner)
    return result
