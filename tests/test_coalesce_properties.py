"""Properties of the apply rules over random histories, on the in-memory twin of the sink.

- Batching is invisible: coalescing any split of a history into batches gives the same
  target as applying its events one by one (duplicates, equal versions, deletes with and
  without before-image included).
- P1: delivering a history twice gives the same target as delivering it once.
- P2: any per-key reordering of a history with distinct versions ends in the state of the
  in-order history — deletes included (no resurrection).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.change import Change
from consumers.coalesce import coalesce_batch
from consumers.memory_sink import MemorySink
from tests.change_factory import MAPPING, item_change, tag_change

KEYS = ("a", "b", "c")


@st.composite
def any_history(draw: st.DrawFn) -> list[Change]:
    """Random upserts/deletes over few keys and tiny version spaces (many ties)."""
    changes = []
    for ts_ms in range(draw(st.integers(0, 25))):
        key = draw(st.sampled_from(KEYS))
        op = draw(st.sampled_from(["upsert", "upsert", "delete"]))
        if draw(st.booleans()):
            version = (draw(st.integers(0, 3)), draw(st.integers(0, 2)))
            imageless = op == "delete" and draw(st.booleans())
            name = draw(st.sampled_from(["p", "q"]))
            changes.append(
                item_change(key, op, None if imageless else version, name=name, ts_ms=ts_ms)
            )
        else:
            changes.append(tag_change(key, op, draw(st.integers(0, 5)), label=str(ts_ms)))
    return changes


def _split(draw: st.DrawFn, changes: list[Change]) -> list[list[Change]]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(changes) - 1)), max_size=5)))
    bounds = [0, *cuts, len(changes)]
    return [changes[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def _one_by_one(changes: list[Change]) -> dict[Any, Any]:
    sink = MemorySink(MAPPING)
    for change in changes:
        sink.apply([change])
    return sink.rows


def _batched(batches: list[list[Change]]) -> dict[Any, Any]:
    sink = MemorySink(MAPPING)
    for batch in batches:
        sink.apply(coalesce_batch(batch))
    return sink.rows


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_coalesced_batches_equal_event_by_event_application(data: st.DataObject) -> None:
    """However a history is cut into batches, coalescing does not change the final target."""
    history = data.draw(any_history())
    batches = _split(data.draw, history)
    assert _batched(batches) == _one_by_one(history)


@settings(max_examples=200, deadline=None)
@given(any_history())
def test_redelivering_a_history_changes_nothing(history: list[Change]) -> None:
    """P1: at-least-once delivery (the whole history again) yields the same target."""
    assert _batched([history, history]) == _batched([history])
    assert _one_by_one(history + history) == _one_by_one(history)


@st.composite
def versioned_history(draw: st.DrawFn) -> list[Change]:
    """A plausible source history: strictly increasing versions, deletes carry the version
    of the row they remove (their before-image)."""
    changes: list[Change] = []
    live: dict[str, tuple[int, int]] = {}
    for step in range(1, draw(st.integers(1, 20)) + 1):
        key = draw(st.sampled_from(KEYS))
        if key in live and draw(st.booleans()):
            changes.append(item_change(key, "delete", live.pop(key), ts_ms=step))
        else:
            live[key] = (step, 0)
            changes.append(item_change(key, "upsert", live[key], name=f"n{step}", ts_ms=step))
    return changes


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_reordering_ends_in_the_in_order_state(data: st.DataObject) -> None:
    """P2: shuffled delivery of distinct versions → the final state of the in-order history."""
    history = data.draw(versioned_history())
    shuffled = data.draw(st.permutations(history))
    expected = _one_by_one(history)
    assert _batched(_split(data.draw, list(shuffled))) == expected
    assert _one_by_one(list(shuffled)) == expected
