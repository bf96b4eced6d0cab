"""Share a coalesced batch among MySQL connections that apply their parts at the same time.

Why: one connection spends half the apply waiting for MariaDB's answers (README, issue 15's
profile). With two, one lane renders its statements while the other's are in MariaDB.

What keeps this as correct as one connection:
- A key's changes (a delete barrier and its winner, `consumers.coalesce`) stay in one lane,
  in order; keys are disjoint across lanes, so no two lanes write the same row, of the
  target or of the side table.
- A table with a secondary UNIQUE index stays whole in one lane: its collision check
  (`consumers.unique`) looks at the batch's values and MySQL's, which assumes that no other
  writer claims a value meanwhile. So does a table with a decimal or real key column (two
  identities, 1.5 and 1.50, can be one row to MySQL). `MySQLSink` names them (`whole`).
- The caller uses one lane when the target has FOREIGN KEY constraints: a child row's check
  locks its parent, another lane may be writing it, and the two would wait on each other.
- The batch is done (and its offsets may be committed) only once every lane is: lanes end
  in their own transactions, and a failed lane fails the batch, which is delivered again.

Pure: which change goes where. The threads are `consumers.sink.MySQLSink`'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from consumers.change import Change


def split_lanes(
    changes: Sequence[Change], lanes: int, *, whole: Collection[str], split_from: int
) -> list[list[Change]]:
    """`changes` in at most `lanes` non-empty parts of about equal size, each key's in order.

    A table in `whole`, with a delete in this batch, or with fewer than `split_from`
    changes (splitting would only make two short statements of one) goes to one lane; the
    others are spread by key. Deletes: under REPEATABLE READ a delete of an absent key
    locks the gap where it would be, and another lane's inserts into that gap deadlocked
    (errno 1213, retried) about once per batch with 40 % deletes, and 8 times in 40 batches
    with 5 %; with such a table in one lane, never. Parts are then given to the
    least-loaded lane, the largest first.
    """
    if lanes <= 1 or len(changes) < 2:
        return [list(changes)] if changes else []
    by_table: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_table[change.table].append(change)
    parts: list[list[Change]] = []
    for name, table_changes in by_table.items():
        if (
            name in whole
            or len(table_changes) < split_from
            or any(c.op == "delete" for c in table_changes)
        ):
            parts.append(table_changes)
            continue
        shares: list[list[Change]] = [[] for _ in range(lanes)]
        for change in table_changes:
            shares[hash(change.identity) % lanes].append(change)
        parts.extend(share for share in shares if share)
    loads = [0] * lanes
    result: list[list[Change]] = [[] for _ in range(lanes)]
    for part in sorted(parts, key=len, reverse=True):
        lightest = loads.index(min(loads))
        result[lightest].extend(part)
        loads[lightest] += len(part)
    return [lane for lane in result if lane]
