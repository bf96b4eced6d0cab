"""Equal versions: a same-second delete and re-insert (issue 11, defect 2).

Drizzle's `updatedAt` is in whole seconds and its `updateCounter` restarts at 0 on insert.
So a row can be deleted and re-inserted within one second, and the new row's version is
then equal to the tombstone's, or lower. Before, "an upsert after a delete applies only at
a strictly greater version" dropped such a re-insert for good: backfill and `verify --fix`
re-sent the same version and were dropped again, until the tombstone was pruned.

The rule (`consumers.change.supersedes`) orders deletes against other writes by source time.
Source histories here have the real shape:
- writes a few hundred ms apart, with versions (second, counter);
- raw updates that change the content and keep the version;
- deletes carrying their before-image.

On the in-memory twin of the sink, with random batch cuts:
- (a) in-order delivery, duplicated, equals the source: re-inserts apply;
- (b) redelivery of any suffix, any number of times (Kafka's at-least-once), and a full
  replay change nothing: no resurrection, no lost re-insert;
- (c) with backfill snapshots taken at any time and delivered any time later, whatever
  differs afterwards is repaired by one round of `verify --fix` events;
- (d) and in fact nothing differs: a snapshot loses version ties to captured writes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.change import Change
from consumers.coalesce import coalesce_batch
from consumers.memory_sink import MemorySink
from tests.change_factory import MAPPING, item_change

KEYS = ("a", "b")


@dataclass
class Source:
    """The source's final rows and every event it produced, in commit order."""

    rows: dict[str, tuple[tuple[int, int], str]]
    events: list[Change]
    snapshots: list[tuple[int, Change]]  # (index in events it was read after, backfill event)


@st.composite
def histories(draw: st.DrawFn) -> Source:
    rows: dict[str, tuple[tuple[int, int], str]] = {}
    events: list[Change] = []
    snapshots: list[tuple[int, Change]] = []
    ts = 1_000
    for step in range(draw(st.integers(1, 25))):
        ts += draw(st.sampled_from([1, 200, 400, 1_000]))  # often within the same second
        key = draw(st.sampled_from(KEYS))
        second = ts // 1000
        action = draw(st.sampled_from(["write", "write", "raw", "delete", "snapshot"]))
        if action == "snapshot":  # backfill reads the row (ts = read time)
            if key in rows:
                version, name = rows[key]
                snap = replace(
                    item_change(key, "upsert", version, name=name, ts_ms=ts), backfill=True
                )
                snapshots.append((len(events), snap))
            continue
        if action == "delete" and key in rows:
            version, _ = rows.pop(key)
            events.append(item_change(key, "delete", version, ts_ms=ts))
        elif action == "raw" and key in rows:  # raw SQL: content changes, version does not
            version, _ = rows[key]
            rows[key] = (version, f"raw{step}")
            events.append(item_change(key, "upsert", version, name=f"raw{step}", ts_ms=ts))
        else:
            counter = rows[key][0][1] + 1 if key in rows else 0  # $onUpdate / a fresh insert
            rows[key] = ((second, counter), f"n{step}")
            events.append(item_change(key, "upsert", rows[key][0], name=f"n{step}", ts_ms=ts))
    return Source(rows, events, snapshots)


def expected(source: Source) -> dict[Any, Any]:
    return {
        ("item", f'{{"id":"{key}"}}'): {
            "id": key,
            "name": name,
            "updatedAt": version[0],
            "counter": version[1],
        }
        for key, (version, name) in source.rows.items()
    }


def apply_in_batches(sink: MemorySink, stream: list[Change], cuts: set[int]) -> None:
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(stream)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        sink.apply(coalesce_batch(stream[a:b]))


def later_insertions(
    draw: st.DrawFn, stream: list[Change], extra: list[tuple[int, Change]]
) -> list[Change]:
    """`stream` with each (after, event) of `extra` delivered somewhere after the first
    `after` events of the stream (a late backfill event, a replay)."""
    placed = [(float(i), i, event) for i, event in enumerate(stream)]
    for n, (after, event) in enumerate(extra):
        position = draw(st.integers(after, len(stream)))
        placed.append((position - 0.5, len(stream) + n, event))
    return [event for _, _, event in sorted(placed, key=lambda p: (p[0], p[1]))]


@settings(max_examples=400, deadline=None)
@given(histories(), st.sets(st.integers(1, 60)))
def test_a_in_order_delivery_applies_same_second_reinserts(source: Source, cuts: set[int]) -> None:
    sink = MemorySink(MAPPING)
    apply_in_batches(sink, source.events + source.events, cuts)  # at least once: duplicated
    assert sink.rows == expected(source)


@settings(max_examples=400, deadline=None)
@given(histories(), st.data())
def test_b_redelivery_and_replay_never_resurrect(source: Source, data: st.DataObject) -> None:
    """Kafka redelivers a suffix (from the last committed offset), any number of times, and
    a rebuild replays everything again: deletes stay deleted, re-inserts stay."""
    n = len(source.events)
    starts = data.draw(st.lists(st.integers(0, n), max_size=4))
    stream = list(source.events)
    for start in starts:
        stream += source.events[start:]
    sink = MemorySink(MAPPING)
    apply_in_batches(sink, stream, data.draw(st.sets(st.integers(1, 80))))
    assert sink.rows == expected(source)


@settings(max_examples=400, deadline=None)
@given(histories(), st.data())
def test_d_backfill_snapshots_never_overwrite_newer_captured_writes(
    source: Source, data: st.DataObject
) -> None:
    """Issue 12: capture and backfill together. However late a snapshot arrives — read
    before a raw update at the same version, or before a delete — the target ends equal to
    the source without any fix: snapshots lose version ties and are dated by their read."""
    stream = later_insertions(data.draw, source.events, source.snapshots)
    sink = MemorySink(MAPPING)
    apply_in_batches(sink, stream, data.draw(st.sets(st.integers(1, 60))))
    assert sink.rows == expected(source)


@settings(max_examples=400, deadline=None)
@given(histories(), st.data())
def test_c_verify_fix_repairs_whatever_backfill_left_different(
    source: Source, data: st.DataObject
) -> None:
    stream = later_insertions(data.draw, source.events, source.snapshots)
    sink = MemorySink(MAPPING)
    apply_in_batches(sink, stream, data.draw(st.sets(st.integers(1, 60))))
    # verify: compare every key; --fix re-emits the source row (or a delete), read now.
    now = (source.events[-1].ts_ms if source.events else 0) + 5_000
    want = expected(source)
    fixes = []
    for key in KEYS:
        ident = ("item", f'{{"id":"{key}"}}')
        if sink.rows.get(ident) == want.get(ident):
            continue
        if key in source.rows:
            version, name = source.rows[key]
            fixes.append(item_change(key, "upsert", version, name=name, ts_ms=now))
        else:
            fixes.append(item_change(key, "delete", None, ts_ms=now))
    sink.apply(coalesce_batch(fixes))
    assert sink.rows == want
