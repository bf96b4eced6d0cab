"""Coalescing a batch: one winner per key under the documented version rule."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from consumers.change import key_identity, supersedes
from consumers.coalesce import coalesce_batch
from tests.change_factory import item_change, tag_change


def test_newest_version_wins_regardless_of_arrival_order() -> None:
    """Within a batch, the upsert with the greatest version is the one kept."""
    newer = item_change("a", "upsert", (5, 0), name="new")
    older = item_change("a", "upsert", (3, 9), name="old")
    assert coalesce_batch([newer, older]) == [newer]
    assert coalesce_batch([older, newer]) == [newer]


def test_version_columns_compare_lexicographically() -> None:
    """(updatedAt, counter): the counter only breaks ties of updatedAt."""
    a = item_change("a", "upsert", (5, 1))
    b = item_change("a", "upsert", (5, 2))
    assert coalesce_batch([b, a]) == [b]


def test_equal_versions_let_the_later_event_win() -> None:
    """Tie rule: equal versions → the incoming (later) event applies."""
    first = item_change("a", "upsert", (5, 0), name="first")
    second = item_change("a", "upsert", (5, 0), name="second")
    assert coalesce_batch([first, second]) == [second]


def test_delete_after_upsert_of_same_version_wins() -> None:
    """A delete whose before-image has the row's version removes that row."""
    upsert = item_change("a", "upsert", (5, 0))
    delete = item_change("a", "delete", (5, 0))
    assert coalesce_batch([upsert, delete]) == [delete]


def test_upsert_of_the_deleted_version_does_not_resurrect() -> None:
    """An upsert equal to a delete's before-image is the deleted row: the delete stays."""
    delete = item_change("a", "delete", (5, 0))
    late = item_change("a", "upsert", (5, 0))
    assert coalesce_batch([delete, late]) == [delete]


def test_newer_insert_after_delete_wins_and_the_delete_still_runs() -> None:
    """A re-insert of a deleted key is kept; the delete runs first and leaves its tombstone."""
    delete = item_change("a", "delete", (5, 0), ts_ms=10)
    reinsert = item_change("a", "upsert", (6, 0), ts_ms=11)
    assert coalesce_batch([delete, reinsert]) == [delete, reinsert]


def test_same_second_reinsert_wins_even_at_an_equal_or_lower_version() -> None:
    """Issue 11 defect 2: updatedAt in seconds, counter restarting at 0 on insert."""
    delete = item_change("a", "delete", (5, 3), ts_ms=10)
    same = item_change("a", "upsert", (5, 3), name="again", ts_ms=11)
    reset = item_change("a", "upsert", (5, 0), name="again", ts_ms=11)
    assert coalesce_batch([delete, same]) == [delete, same]
    assert coalesce_batch([delete, reset]) == [delete, reset]


def test_a_replay_of_the_deleted_row_stays_deleted_whatever_its_version() -> None:
    """Written (or read by backfill) before the delete: never a resurrection."""
    delete = item_change("a", "delete", (5, 0), ts_ms=10)
    replay = item_change("a", "upsert", (5, 0), ts_ms=9)
    newer_looking = item_change("a", "upsert", (7, 0), ts_ms=9)
    assert coalesce_batch([delete, replay]) == [delete]
    assert coalesce_batch([delete, newer_looking]) == [delete]


def test_upsert_after_imageless_delete_keeps_the_delete_first() -> None:
    """A delete without before-image must still clear the stored row before a later upsert."""
    delete = item_change("a", "delete", None, ts_ms=10)
    reinsert = item_change("a", "upsert", (1, 0), ts_ms=11)
    assert coalesce_batch([delete, reinsert]) == [delete, reinsert]


def test_keys_are_coalesced_independently_and_keep_first_appearance_order() -> None:
    """Different keys (and tables) never interfere; order follows first appearance."""
    a1, b1, t1 = (
        item_change("a", "upsert", (1, 0)),
        item_change("b", "upsert", (1, 0)),
        tag_change("a", "upsert", 1),
    )
    a2 = item_change("a", "upsert", (2, 0))
    assert coalesce_batch([a1, b1, t1, a2]) == [a2, b1, t1]


def test_unversioned_tables_use_ts_ms() -> None:
    """Tables without version columns compare ts_ms."""
    late = tag_change("a", "upsert", 200, label="late")
    early = tag_change("a", "upsert", 100, label="early")
    assert coalesce_batch([late, early]) == [late]
    assert supersedes(tag_change("a", "delete", 300), late)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.text(max_size=20), st.integers(-(2**70), 2**70)),
        min_size=1,
        max_size=3,
    )
)
def test_key_identity_is_the_stored_form_of_the_key(key: dict[str, object]) -> None:
    """The identity is stored in the side table, so for a given key it must never change:
    sorted, no spaces, ASCII-escaped (what it has been since the side table exists)."""
    assert key_identity(key) == json.dumps(key, sort_keys=True, separators=(",", ":"))


def test_key_identity_of_converted_values_is_pinned() -> None:
    """Converted values (timestamps, decimals, bytes) have one spelling in the identity."""
    key = {
        "ts": datetime(2026, 1, 2, 3, 4, 5, 600000),
        "amount": Decimal("1.50"),
        "raw": b"\x00\xff",
        "name": "caf\u00e9",
    }
    assert key_identity(key) == (
        '{"amount":"1.50","name":"caf\\u00e9","raw":{"$base64":"AP8="},'
        '"ts":"2026-01-02T03:04:05.600000"}'
    )
